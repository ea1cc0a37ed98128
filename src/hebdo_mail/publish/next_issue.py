"""``hebdo-mail new``: the next issue's folder, started from the latest one.

Number + 1, date + 7 days, the same sections (with their names per language) and subject pattern;
what belongs to one week only (the preheader, the send time) is written commented out for the
editor to fill in; and one starter article in the first section.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..config import validate_model
from ..errors import ConfigError, HebdoError, IssueError
from ..tomlfile import read_toml
from ..workspace import Workspace
from .issue import ISSUE_FILE, ISSUE_ID, IssueConfig

STARTER_NAME = "article-1.md"
_STARTER = {
    "fr": (
        "Titre de l'article",
        "Écrivez l'article ici, en Markdown : des paragraphes séparés par une ligne vide,\n"
        "des intertitres commençant par « ## », des liens [comme ceci](https://example.org).\n",
    ),
    "en": (
        "Title of the article",
        "Write the article here, in Markdown: paragraphs separated by a blank line,\n"
        'sub-headings starting with "## ", links [like this](https://example.org).\n',
    ),
}


@dataclass(frozen=True)
class Previous:
    id: str
    folder: Path
    config: IssueConfig


def latest_issue(workspace: Workspace) -> Previous:
    """The issue with the latest date (then the highest number)."""
    found = []
    folders = sorted(workspace.issues_dir.iterdir()) if workspace.issues_dir.is_dir() else []
    for folder in folders:
        path = folder / ISSUE_FILE
        if path.is_file():
            data, text = read_toml(path, IssueError)
            config = validate_model(IssueConfig, data, path=path, text=text, error=IssueError)
            found.append(Previous(folder.name, folder, config))
    if not found:
        raise ConfigError(
            f"no issue in {workspace.issues_dir} to start from; `hebdo-mail init` ships an "
            "example to copy"
        )
    return max(found, key=lambda p: (p.config.date, p.config.number))


def next_id(previous: Previous, number: int, date: dt.date) -> str:
    """Follows the previous id's pattern: a date, a year and ISO week (2006-50), or a number
    (no-50); anything else gives the date."""
    old = previous.config
    year, week, _ = old.date.isocalendar()
    if previous.id == old.date.isoformat():
        return date.isoformat()
    if previous.id == f"{year}-{week:02d}":
        new_year, new_week, _ = date.isocalendar()
        return f"{new_year}-{new_week:02d}"
    match = re.fullmatch(r"(.*?)(\d+)", previous.id)
    if match and int(match[2]) == old.number:
        return match[1] + str(number).zfill(len(match[2]))
    return date.isoformat()


def create_next_issue(
    workspace: Workspace, issue_id: str | None = None, date: dt.date | None = None
) -> Path:
    previous = latest_issue(workspace)
    number = previous.config.number + 1
    date = date or previous.config.date + dt.timedelta(days=7)
    issue_id = issue_id or next_id(previous, number, date)
    if not ISSUE_ID.match(issue_id):
        raise ConfigError(
            f"{issue_id!r} cannot be an issue id; use letters, digits, '.', '-' or '_' "
            "(e.g. 2006-51)"
        )
    folder = workspace.issues_dir / issue_id
    if folder.exists():
        raise ConfigError("already exists; give another id: `hebdo-mail new ID`", path=folder)
    default = workspace.settings.newsletter.language
    files = {
        ISSUE_FILE: issue_toml(previous.config, number, date),
        STARTER_NAME: starter_article(previous.config, default),
    }
    folder.mkdir(parents=True)
    try:
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise HebdoError(f"cannot be written ({exc.strerror})", path=folder) from None
    return folder


def _value(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a TOML basic string


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _value(key)


def _per_language(name: str, value: str | dict[str, str], *, commented: bool) -> list[str]:
    mark = "# " if commented else ""
    if isinstance(value, str):
        return [f"{mark}{name} = {_value(value)}"]
    return [f"{mark}[{name}]"] + [f"{mark}{_key(k)} = {_value(v)}" for k, v in value.items()]


def issue_toml(old: IssueConfig, number: int, date: dt.date) -> str:
    lines = [f"number = {number}", f"date = {date.isoformat()}"]
    send_at = (
        old.send_at + (date - old.date)
        if old.send_at
        else dt.datetime.combine(date, dt.time(8)).astimezone()
    )
    lines += [
        "# When `hebdo-mail send --due` mails it; uncomment once the issue is ready:",
        f"# send_at = {send_at.isoformat(timespec='seconds')}",
        "",
    ]
    tables: list[str] = []
    # A subject with {number} or {date} is a pattern that serves every week; a plain one, like
    # the preheader, was written for one issue only: the editor writes this week's.
    for name, value, weekly in (
        ("subject", old.subject, _is_pattern(old.subject)),
        ("preheader", old.preheader, False),
    ):
        if not value:
            continue
        if not weekly:
            lines.append(f"# Last issue's {name}, to rewrite for this one:")
        block = _per_language(name, value, commented=not weekly)
        (tables if isinstance(value, dict) and weekly else lines).extend([*block, ""])
    if isinstance(old.sections, list):
        lines.append("sections = [" + ", ".join(_value(s) for s in old.sections) + "]")
    else:
        for lang, table in old.sections.items():
            tables += [f"[sections.{_key(lang)}]"]
            tables += [f"{_key(k)} = {_value(v)}" for k, v in table.items()] + [""]
    return "\n".join([*lines, "", *tables]).rstrip("\n") + "\n"


def _is_pattern(value: str | dict[str, str] | None) -> bool:
    texts = [value] if isinstance(value, str) else list((value or {}).values())
    return bool(texts) and all("{number}" in t or "{date}" in t for t in texts)


def starter_article(old: IssueConfig, default: str) -> str:
    section_id = old.section_ids(default)[0]
    section = old.section_name(section_id, default, default)
    title, body = _STARTER.get(default.split("-")[0], _STARTER["en"])
    return f"---\ntitle: {title}\nsection: {section}\norder: 1\n---\n{body}"
