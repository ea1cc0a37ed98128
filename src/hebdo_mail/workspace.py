"""The workspace: the folder holding ``hebdo.toml``, the places every stage reads and writes in it,
its secret (the key of unsubscribe and confirmation links), and ``hebdo-mail init``, which creates one.

Every later stage receives a ``Workspace``; nothing else looks for ``hebdo.toml``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError
from .storeurl import check_store_url
from .tomlfile import read_toml

if TYPE_CHECKING:  # the settings' models load only when a command reads its settings
    from .config import Settings

CONFIG_NAME = "hebdo.toml"

SECRET_ENV = "HEBDO_SECRET"
STORE_URL_ENV = "HEBDO_STORE_URL"
MIN_SECRET_LENGTH = 16


@dataclass(frozen=True)
class Workspace:
    """A folder holding hebdo.toml, and the places every stage reads and writes. Its settings are
    read and checked when first asked for (load_workspace asks at once, unless a command such as
    ``status`` needs none of them)."""

    root: Path

    @cached_property
    def settings(self) -> Settings:
        from .checkedsettings import workspace_settings

        return workspace_settings(self.config_path, self.build_dir)

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def issues_dir(self) -> Path:
        return self.root / "issues"

    @property
    def build_dir(self) -> Path:
        return self.root / "build"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def locale_dir(self) -> Path:
        return self.root / "locale"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def outbox_dir(self) -> Path:
        return self.root / "outbox"

    @property
    def secret_path(self) -> Path:
        return self.root / SECRET_NAME

    @property
    def store_path(self) -> Path:
        return self.root / self.settings.store.path

    @cached_property
    def store_url(self) -> str | None:
        """The PostgreSQL store's URL (HEBDO_STORE_URL, else [store] url), or None for SQLite.
        Read from the file by itself (the settings check it too): a command that needs nothing
        else does not load the settings for it."""
        from_env = os.environ.get(STORE_URL_ENV)
        if from_env:
            try:
                return check_store_url(from_env)
            except ValueError as exc:
                raise ConfigError(f"{STORE_URL_ENV}: {exc}") from None
        data, _ = read_toml(self.config_path, ConfigError)
        store = data.get("store")
        url = store.get("url") if isinstance(store, dict) else None
        if url is None:
            return None
        try:
            return check_store_url(str(url))
        except ValueError as exc:
            raise ConfigError(f"[store] url: {exc}", path=self.config_path) from None

    def store_exists(self) -> bool:
        """Whether there is a store to read (a server is assumed to be there)."""
        return self.store_url is not None or self.store_path.exists()

    def issue_folder(self, name_or_path: str) -> Path:
        """An issue given as a folder path, or as an id under issues/."""
        candidate = Path(name_or_path)
        if candidate.is_dir():
            return candidate.resolve()
        under_issues = self.issues_dir / name_or_path
        if under_issues.is_dir():
            return under_issues.resolve()
        raise ConfigError(
            f"no issue folder {name_or_path!r} (looked in the current folder and in "
            f"{under_issues.parent}); give the folder of the issue, e.g. issues/2006-50"
        )


def find_workspace_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` that holds hebdo.toml, the way git finds .git."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    raise ConfigError(
        f"no {CONFIG_NAME} in {start} or above; run `hebdo-mail init DIR` to create a workspace "
        "or pass --workspace DIR"
    )


def load_workspace(
    folder: Path | None = None, *, explicit: bool = False, settings: bool = True
) -> Workspace:
    """The workspace at ``folder`` (or the nearest above the current folder), its settings
    read and checked at once unless ``settings`` is false."""
    if explicit and folder is not None:
        if not (folder / CONFIG_NAME).is_file():
            raise ConfigError(
                f"no {CONFIG_NAME} in {folder}; run `hebdo-mail init {folder}` to create one"
            )
        root = folder.resolve()
    else:
        root = find_workspace_root(folder or Path.cwd())
    workspace = Workspace(root=root)
    if settings:
        workspace.settings  # noqa: B018  (a mistake in hebdo.toml stops the command here)
    return workspace


def check_private(path: Path) -> None:
    """Refuse a key file others could read: the key is no longer the owner's alone."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"is readable by other users (mode {mode:o}); run `chmod 600 {path.name}`", path=path
        )


def load_secret(workspace_root: Path, *, create: bool = True) -> tuple[bytes, bool]:
    """The workspace secret and whether it was just created."""
    from_env = os.environ.get(SECRET_ENV)
    if from_env:
        if len(from_env) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"{SECRET_ENV} is too short; use at least {MIN_SECRET_LENGTH} random characters"
            )
        return from_env.encode(), False
    path = workspace_root / SECRET_NAME
    created = False
    if not path.exists():
        if not create:
            raise ConfigError(
                f"no secret; set {SECRET_ENV} or run a send once to create it", path=path
            )
        write_secret(path)
        created = True
    check_private(path)
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(
            "holds too short a secret; delete it and let hebdo-mail create a new one", path=path
        )
    return secret.encode(), created


SECRET_NAME = ".hebdo-secret"

CONFIG_TEMPLATE = """\
# hebdo-mail workspace settings. Unknown keys are errors, so a typo never goes unnoticed.
[newsletter]
name = "{name}"
from = "{name} <hebdo@example.org>"
reply_to = "redaction@example.org"
base_url = "https://hebdo.example.org"  # web version, archive and unsubscribe links
language = "fr"

# The brand, without forking a template; see the README.
[style]
accent = "#003366"          # masthead, titles and section labels
# logo = "logo.png"         # a picture beside this file, shown in the masthead
# The postal address US and EU law ask bulk senders to show in every message (`build` warns
# until it is set):
# footer_address = "{name} · 1 rue de l'Exemple · 75000 Paris · France"

# Returned mail (`hebdo-mail bounces process`); see the README.
# [bounces]
# verp = true          # envelope sender bounces+TOKEN@example.org, one per reader
# threshold = 3.0      # hard bounce 1, soft 0.5; at this score a reader is no longer mailed

# DKIM signing: `hebdo-mail dkim keygen` makes the key and prints this section.
# [dkim]
# domain = "example.org"
# selector = "hebdo"
# key_file = "dkim/hebdo.pem"
"""

GITIGNORE = """\
build/
outbox/
logs/
hebdo.db
hebdo.db-*
.hebdo-secret
dkim/
"""


def example_dir() -> Path:
    """The example issue and list: inside the installed package, or the checkout's top level."""
    packaged = Path(__file__).parent / "example"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2]


def package_templates_dir() -> Path:
    """The shipped templates: inside the installed package, or the checkout's top-level folder."""
    package = Path(__file__).resolve().parent
    packaged = package / "templates"
    return packaged if packaged.is_dir() else package.parents[1] / "templates"


EXAMPLE_ISSUE = "2006-50"  # as shipped in the package
EXAMPLE_NAME = "example"  # its folder in a new workspace: a name that says what it is


def write_secret(path: Path) -> None:
    """A random key for unsubscribe tokens, readable by its owner only (0600 from the start)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")


def init_workspace(folder: Path, name: str | None = None) -> list[Path]:
    if (folder / "hebdo.toml").exists():
        raise ConfigError(
            "already holds a workspace (hebdo.toml); pick another folder", path=folder
        )
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError("is not empty; give a new or empty folder", path=folder)
    folder.mkdir(parents=True, exist_ok=True)
    title = name or folder.resolve().name  # as the editor wrote it: "OTAN-Hebdo" stays so
    if '"' in title or "\\" in title or "\n" in title:
        raise ConfigError(
            "the newsletter name may not contain quotes, backslashes or line breaks", path=folder
        )
    created = []
    config = folder / "hebdo.toml"
    config.write_text(CONFIG_TEMPLATE.format(name=title), encoding="utf-8")
    created.append(config)
    (folder / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    write_secret(folder / SECRET_NAME)
    created.append(folder / SECRET_NAME)
    source = example_dir()
    issue_target = folder / "issues" / EXAMPLE_NAME
    shutil.copytree(source / "issues" / EXAMPLE_ISSUE, issue_target)
    created.append(issue_target)
    shutil.copyfile(source / "subscribers.example.csv", folder / "subscribers.example.csv")
    created.append(folder / "subscribers.example.csv")
    return created
