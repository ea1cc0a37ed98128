"""``hebdo-mail init``: a new workspace with its settings, secret and an example issue."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from .errors import ConfigError

SECRET_NAME = ".hebdo-secret"

CONFIG_TEMPLATE = """\
# hebdo-mail workspace settings. Unknown keys are errors, so a typo never goes unnoticed.
[newsletter]
name = "{name}"
from = "{name} <hebdo@example.org>"
reply_to = "redaction@example.org"
base_url = "https://hebdo.example.org"  # web version, archive and unsubscribe links
language = "fr"

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


EXAMPLE_ISSUE = "2006-50"


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
    title = name or folder.resolve().name.replace("-", " ").replace("_", " ").title()
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
    issue_target = folder / "issues" / EXAMPLE_ISSUE
    shutil.copytree(source / "issues" / EXAMPLE_ISSUE, issue_target)
    created.append(issue_target)
    shutil.copyfile(source / "subscribers.example.csv", folder / "subscribers.example.csv")
    created.append(folder / "subscribers.example.csv")
    return created
