"""The archive: the issues already sent, newest first, their web pages and their files.

web.py serves it and ``build --site DIR`` writes it as static files. An issue is published once
its send log records a message accepted: the "read online" link of a mail always leads somewhere.
Its files (pictures, downloads) are online from the start, under names that carry a hash of their
content (files.py): a proof copy shows its pictures, and nobody finds an unsent issue's page.
Issues are rendered on demand and kept until a file of theirs, a template or a setting changes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HebdoError
from ..workspace import Workspace
from .files import IssueFile
from .issue import ISSUE_ID, Issue, load_issue
from .render import render_web
from .templating import render, workspace_environment

log = logging.getLogger(__name__)


@dataclass
class _Cached:
    signature: tuple[object, ...]
    issue: Issue
    pages: dict[str, str] = field(default_factory=dict)


def is_published(workspace: Workspace, issue_id: str) -> bool:
    log = workspace.logs_dir / f"{issue_id}.jsonl"
    try:
        with log.open("rb") as handle:
            return b'"event":"sent"' in handle.read(1 << 20)
    except OSError:
        return False


def _signature(*folders: Path, files: tuple[Path, ...] = ()) -> tuple[object, ...]:
    entries: list[object] = []
    for folder in folders:
        if folder.is_dir():
            for root, _, names in os.walk(folder):
                for name in sorted(names):
                    stat = (Path(root) / name).stat()
                    entries.append((root, name, stat.st_mtime_ns, stat.st_size))
    for path in files:
        entries.append((str(path), path.stat().st_mtime_ns if path.exists() else 0))
    return tuple(entries)


class Archive:
    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._cache: dict[str, _Cached] = {}

    def _load(self, issue_id: str, *, published: bool = True) -> Issue | None:
        """The issue, if its folder loads (and, with ``published``, once it has been sent)."""
        # Only what an issue folder may be called: no path tricks, and no name the file system
        # refuses (ENAMETOOLONG) ever reaches it.
        if not ISSUE_ID.fullmatch(issue_id):
            return None
        folder = self.workspace.issues_dir / issue_id
        if not folder.is_dir() or (published and not is_published(self.workspace, issue_id)):
            return None
        ws = self.workspace
        signature = _signature(folder, ws.templates_dir, ws.locale_dir, files=(ws.config_path,))
        cached = self._cache.get(issue_id)
        if cached is None or cached.signature != signature:
            try:
                cached = _Cached(signature, load_issue(folder, ws))
            except HebdoError as exc:
                # A broken issue: leave it out and go on; say why if readers could expect it.
                (log.warning if published else log.debug)("archive: %s", exc)
                return None
            self._cache[issue_id] = cached
        return cached.issue

    def issues(self) -> list[Issue]:
        """Published issues, newest first."""
        if not self.workspace.issues_dir.is_dir():
            return []
        found = [
            issue
            for folder in self.workspace.issues_dir.iterdir()
            if folder.is_dir() and (issue := self._load(folder.name)) is not None
        ]
        return sorted(found, key=lambda i: (i.date, i.number, i.id), reverse=True)

    def issue(self, issue_id: str, *, published: bool = True) -> Issue | None:
        return self._load(issue_id, published=published)

    def web_page(self, issue_id: str, lang: str, *, published: bool = True) -> str | None:
        """The edition's page; ``published=False`` for a proof copy's link before the send."""
        issue = self.issue(issue_id, published=published)
        if issue is None or lang not in issue.editions:
            return None
        cached = self._cache[issue_id]
        if lang not in cached.pages:
            cached.pages[lang] = render_web(issue, lang, self.workspace)
        return cached.pages[lang]

    def file(self, issue_id: str, public_name: str) -> IssueFile | None:
        """A picture or download of the issue, sent or not, by its public name; nothing else of
        the folder is served."""
        issue = self._load(issue_id, published=False)
        return issue.files.public(public_name) if issue is not None else None

    def publishable_files(self) -> list[tuple[Issue, IssueFile]]:
        """Every file of every issue that loads, sent or not (build --site publishes them)."""
        if not self.workspace.issues_dir.is_dir():
            return []
        return [
            (issue, entry)
            for folder in sorted(self.workspace.issues_dir.iterdir())
            if folder.is_dir() and (issue := self._load(folder.name, published=False)) is not None
            for entry in issue.files
        ]

    def cover_page(self, lang: str, *, subscribe_url: str | None) -> str:
        settings = self.workspace.settings.newsletter
        env = workspace_environment(self.workspace, lang)
        entries = []
        for issue in self.issues():
            edition = issue.editions.get(lang) or issue.editions[issue.default_language]
            entries.append(
                {
                    "id": issue.id,
                    "number": issue.number,
                    "date": issue.date,
                    "subject": edition.subject,
                    "preheader": edition.preheader,
                    "editions": [
                        {"lang": code, "url": f"issues/{issue.id}/{code}/"}
                        for code in issue.editions
                    ],
                    "url": f"issues/{issue.id}/{edition.lang}/",
                }
            )
        return render(
            env,
            "archive.html",
            {
                "page_lang": lang,
                "newsletter": {"name": settings.name_in(lang), "base_url": settings.base_url},
                "issues": entries,
                "subscribe_url": subscribe_url,
            },
        )


SITE_MARKER = ".hebdo-site"


def write_site(workspace: Workspace, target: Path) -> list[Path]:
    """The whole archive as static files under ``target`` (written in place of what was there)."""
    from .build import write_tree

    if target.exists() and not target.is_dir():
        raise HebdoError("is not a folder; give a new or empty folder for the site", path=target)
    if target.exists() and any(target.iterdir()) and not (target / SITE_MARKER).exists():
        raise HebdoError(
            "is not empty and was not written by `build --site`; give a new or empty folder "
            "(the archive replaces the folder's whole content)",
            path=target,
        )
    archive = Archive(workspace)
    files: dict[str, bytes] = {SITE_MARKER: b"written by hebdo-mail build --site\n"}
    default = workspace.settings.newsletter.language
    subscribe = f"{workspace.settings.newsletter.base_url}/subscribe"
    files["index.html"] = archive.cover_page(default, subscribe_url=subscribe).encode()
    for issue in archive.issues():
        for lang in issue.editions:
            page = archive.web_page(issue.id, lang)
            assert page is not None
            files[f"issues/{issue.id}/{lang}/index.html"] = page.encode()
    for issue, entry in archive.publishable_files():
        files[f"issues/{issue.id}/files/{entry.public_name}"] = entry.content()
    write_tree(target, files)
    return [target / name for name in files if name != SITE_MARKER]


def available_languages(workspace: Workspace) -> list[str]:
    """Languages the pages can be shown in: the shipped catalogues and the workspace's own."""
    from .i18n import PACKAGE_LOCALE_DIR

    found = {workspace.settings.newsletter.language}
    for folder in (PACKAGE_LOCALE_DIR, workspace.locale_dir):
        if folder.is_dir():
            found |= {
                p.name for p in folder.iterdir() if (p / "LC_MESSAGES" / "messages.po").is_file()
            }
    return sorted(found)
