"""What ``build`` leaves for ``send``: each email edition as the renderer made it (HTML with its
CSS inlined, text, the per-recipient slots, the digests the send log records), in
``build/<issue-id>/.mail.json``, with a manifest of every input the rendering read.

``send`` takes the editions from there when no input changed, and so never imports the renderer
(premailer, lxml, Jinja2, Babel and the Markdown parser are most of a send's start-up); when one
did, or the issue was never built, it renders as before. Either way the messages are the same:
the cache holds the renderer's own output, and the digests come with it.

An input is unchanged when its size and modification time are those recorded, or else when its
content has the recorded SHA-256 (a checkout that rewrote a file as it was). The inputs: every
file of the issue folder; the workspace's templates/ and locale/ and the logo; the settings the
renderer reads; the workspace secret when counted links are signed with it (a keyed fingerprint,
never the secret); the package's templates, catalogues and rendering code, its version, Python's,
and the installed distributions (a library upgraded may render otherwise).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..checkedsettings import CHECKING_CODE
from ..installed import distributions
from ..workspace import Workspace, load_secret, package_templates_dir
from .rendered import RenderedEdition
from .slots import SlotSpec

if TYPE_CHECKING:
    from .issue import Issue

CACHE_NAME = ".mail.json"
CACHE_FORMAT = 1
# The sections of hebdo.toml the renderer reads (tests/test_mailcache.py checks the code for any
# other): a change to [send] or [dkim] leaves the rendered issue as it was.
RENDER_SETTINGS = ("newsletter", "style", "tracking")
PACKAGE = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class MailIssue:
    """What a send needs of the issue besides its editions."""

    id: str
    default_language: str
    warnings: tuple[str, ...]

    @classmethod
    def of(cls, issue: Issue) -> MailIssue:
        return cls(issue.id, issue.default_language, tuple(issue.warnings))


def mail_editions(
    folder: Path, workspace: Workspace
) -> tuple[MailIssue, dict[str, RenderedEdition]]:
    """The issue's email editions: from its build when nothing the build read has changed since,
    else rendered now."""
    cached = read_cache(workspace.build_dir / folder.name / CACHE_NAME, folder, workspace)
    if cached is not None:
        return cached
    from .build import render_issue

    issue, editions = render_issue(folder, workspace)
    return MailIssue.of(issue), editions


# -- the inputs -------------------------------------------------------------------------------


def _files_under(folder: Path) -> list[Path]:
    found = []
    for top, _, names in os.walk(folder):
        found += [Path(top) / name for name in names]
    return found


def input_files(folder: Path, workspace: Workspace) -> list[Path]:
    files = _files_under(folder) + _files_under(workspace.templates_dir)
    files += _files_under(workspace.locale_dir)
    if workspace.settings.style.logo:
        files.append(workspace.root / workspace.settings.style.logo)
    files += _files_under(PACKAGE / "locale") + sorted((PACKAGE / "publish").glob("*.py"))
    files += [PACKAGE / name for name in (*CHECKING_CODE, "workspace.py")]
    files += _files_under(package_templates_dir())
    return sorted(set(files))


def input_values(workspace: Workspace) -> dict[str, str]:
    """The inputs that are not files of their own."""
    settings = {name: getattr(workspace.settings, name) for name in RENDER_SETTINGS}
    dumped = json.dumps(
        {name: section.checked_values() for name, section in settings.items()},
        sort_keys=True,
    )
    values = {
        "settings": hashlib.sha256(dumped.encode()).hexdigest(),
        "hebdo-mail": __version__,
        "python": sys.version,
        "distributions": hashlib.sha256("\n".join(distributions()).encode()).hexdigest(),
    }
    if workspace.settings.tracking.clicks:  # counted links are signed with the secret
        secret, _ = load_secret(workspace.root)
        values["secret"] = hmac.new(secret, b"hebdo-mail build inputs", "sha256").hexdigest()
    return values


def _digest_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def manifest(folder: Path, workspace: Workspace) -> dict[str, Any]:
    """The inputs as they are now (read before rendering: a file changed meanwhile is then seen
    as changed, never the other way round)."""
    files = {}
    for path in input_files(folder, workspace):
        status = path.stat()
        files[str(path)] = [status.st_size, status.st_mtime_ns, _digest_of(path)]
    return {"files": files, "values": input_values(workspace)}


def manifest_holds(recorded: dict[str, Any], folder: Path, workspace: Workspace) -> bool:
    files: dict[str, list[Any]] = recorded["files"]
    current = input_files(folder, workspace)
    if [str(path) for path in current] != list(files):
        return False
    for path in current:
        size, mtime, digest = files[str(path)]
        try:
            status = path.stat()
            if (status.st_size, status.st_mtime_ns) != (size, mtime) and _digest_of(path) != digest:
                return False
        except OSError:
            return False
    return bool(recorded["values"] == input_values(workspace))


# -- the cache file ---------------------------------------------------------------------------


def cache_bytes(
    issue: MailIssue, editions: dict[str, RenderedEdition], inputs: dict[str, Any]
) -> bytes:
    record = {
        "format": CACHE_FORMAT,
        "inputs": inputs,
        "issue": asdict(issue),
        "editions": [
            {
                "lang": edition.lang,
                "subject": edition.subject,
                "html": edition.html,
                "text": edition.text,
                "slots": [asdict(slot) for slot in edition.slots],
                "marker_pattern": edition.marker_pattern.pattern,
                "digests": dict(edition.digests),
            }
            for edition in editions.values()
        ],
    }
    return json.dumps(record, ensure_ascii=False).encode()


def read_cache(
    path: Path, folder: Path, workspace: Workspace
) -> tuple[MailIssue, dict[str, RenderedEdition]] | None:
    """The cached editions, or None when there are none or an input changed since."""
    try:
        record = json.loads(path.read_bytes())
        if record.get("format") != CACHE_FORMAT or not manifest_holds(
            record["inputs"], folder, workspace
        ):
            return None
        issue = MailIssue(
            id=record["issue"]["id"],
            default_language=record["issue"]["default_language"],
            warnings=tuple(record["issue"]["warnings"]),
        )
        editions = {item["lang"]: _edition(issue.id, item) for item in record["editions"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no build, or one this version does not read: render
    return issue, editions


def _edition(issue_id: str, item: dict[str, Any]) -> RenderedEdition:
    return RenderedEdition(
        issue_id=issue_id,
        lang=item["lang"],
        subject=item["subject"],
        html=item["html"],
        text=item["text"],
        web_html="",
        slots=tuple(SlotSpec(**slot) for slot in item["slots"]),
        marker_pattern=re.compile(item["marker_pattern"]),
        digests=item["digests"],
    )
