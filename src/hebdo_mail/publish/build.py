"""The build: every edition of an issue rendered and written to ``build/<issue-id>/``.

Everything is rendered in memory first, then written to a temporary folder that replaces the old
output in one rename, so a failed build never leaves half-written files behind.
"""

from __future__ import annotations

import html as html_lib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import real_folder
from ..errors import BuildError
from ..workspace import Workspace, load_secret
from .files import IssueFile
from .issue import Issue, load_issue
from .mailcache import CACHE_NAME, MailIssue, cache_bytes, manifest
from .pictures import HEAVY_BYTES
from .render import outgoing_links, render_edition
from .rendered import GMAIL_CLIP_BYTES, MAX_LINE_OCTETS, RenderedEdition
from .slots import Personalised


@dataclass(frozen=True)
class BuildOutput:
    path: Path
    size: int
    source: IssueFile | None = None  # for a file of the issue folder: where it came from


@dataclass
class BuildReport:
    issue: Issue
    editions: dict[str, RenderedEdition]
    outputs: list[BuildOutput] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def preview_values(edition: RenderedEdition, workspace: Workspace) -> list[str]:
    """What the built files show in place of per-recipient fields: a sample reader."""
    values = []
    for spec in edition.slots:
        if spec.field == "email":
            values.append(f"reader@{workspace.settings.newsletter.sender_domain}")
        elif spec.field in ("unsubscribe_url", "preferences_url"):
            page = spec.field.removesuffix("_url")
            values.append(f"{workspace.settings.newsletter.base_url}/{page}/preview")
        elif spec.field == "lang":
            values.append(edition.lang)
        elif spec.field == "format":
            values.append("html")
        else:
            values.append(spec.default)
    return values


def preview_email(edition: RenderedEdition, workspace: Workspace) -> tuple[str, str]:
    """The email's HTML and text as a sample reader would get them."""
    values = preview_values(edition, workspace)
    pattern = edition.marker_pattern
    html = Personalised.split(edition.html, pattern).fill(values, html_lib.escape)
    return html, Personalised.split(edition.text, pattern).fill(values)


def render_issue(folder: Path, workspace: Workspace) -> tuple[Issue, dict[str, RenderedEdition]]:
    issue = load_issue(folder, workspace)
    # Counted links are signed with the workspace secret (made now if it is the first use).
    secret = load_secret(workspace.root)[0] if workspace.settings.tracking.clicks else None
    links = outgoing_links(issue, workspace, secret)
    return issue, {
        lang: render_edition(issue, lang, workspace, links=links) for lang in issue.editions
    }


def build_issue(folder: Path, workspace: Workspace) -> BuildReport:
    inputs = manifest(folder, workspace)  # before rendering: a file changed meanwhile shows
    issue, editions = render_issue(folder, workspace)
    report = BuildReport(issue=issue, editions=editions, warnings=list(issue.warnings))
    if not workspace.settings.style.footer_address:
        report.warnings.append(
            f"{workspace.config_path.name}: no [style] footer_address; US (CAN-SPAM) and EU law ask "
            "bulk senders to show their postal address in every message: add it"
        )

    files: dict[str, bytes] = {}
    for lang, edition in editions.items():
        email_html, email_text = preview_email(edition, workspace)
        files[f"{lang}/email.html"] = email_html.encode()
        files[f"{lang}/email.txt"] = email_text.encode()
        files[f"{lang}/index.html"] = edition.web_html.encode()
        report.warnings.extend(_size_warnings(f"{lang}/email.html", email_html))
        report.warnings.extend(_size_warnings(f"{lang}/email.txt", email_text))
    sources: dict[str, IssueFile] = {}
    for entry in issue.files:
        name = f"files/{entry.public_name}"
        files[name] = entry.content()
        sources[name] = entry
        report.warnings.extend(_picture_warnings(entry, len(files[name])))

    # For `send`, which then needs no renderer (mailcache.py): not an output of its own.
    files[CACHE_NAME] = cache_bytes(MailIssue.of(issue), editions, inputs)
    target = workspace.build_dir / issue.id
    write_tree(target, files)
    report.outputs = [
        BuildOutput(target / name, len(data), sources.get(name))
        for name, data in files.items()
        if name != CACHE_NAME
    ]
    return report


def _picture_warnings(entry: IssueFile, size: int) -> list[str]:
    if entry.picture is None or size <= HEAVY_BYTES:
        return []
    megabytes = f"{size / 1024 / 1024:.1f} MB"
    if entry.picture.animated:
        return [
            f"{entry.label}: the animation is {megabytes} (kept as it is); readers on a phone "
            "wait for it: shorten it, or make it smaller or with fewer colours"
        ]
    return [
        f"{entry.label}: {megabytes} even once prepared for mail; readers on a phone wait for "
        "it: crop it, or save a photo as JPEG"
    ]


def _size_warnings(name: str, content: str) -> list[str]:
    warnings = []
    size = len(content.encode())
    if name.endswith(".html") and size > GMAIL_CLIP_BYTES:
        warnings.append(
            f"{name} is {size / 1024:.0f} KB; Gmail clips messages over about 102 KB, "
            "so shorten the issue or move articles to the web version"
        )
    for number, line in enumerate(content.split("\n"), start=1):
        if len(line.encode()) > MAX_LINE_OCTETS:
            warnings.append(
                f"{name}:{number}: line of {len(line.encode())} octets passes the 998 allowed in mail; "
                "the message encoding will fold it, but check the template"
            )
            break
    return warnings


def write_tree(target: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (relative path -> bytes) as the folder ``target``, replacing it atomically
    (through a symbolic link, the folder it points to: the link stays)."""
    target = real_folder(target)
    if target.exists() and not target.is_dir():
        raise BuildError("is not a folder; give a folder to write into", path=target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, data in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        os.chmod(staging, 0o755)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.rename(target, old)
        os.rename(staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BuildError(
            f"cannot write the build ({exc.strerror}); check the folder's permissions", path=target
        ) from exc
