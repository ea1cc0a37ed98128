"""Stage 2: ``issue.toml`` and the articles become an ``Issue``: its editions, one per language,
each with its lead story, its sections in order and its media, ready to render.
"""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from .articles import Article, Media, front_matter_line, load_article
from .config import StrictModel, Workspace, check_single_line, read_toml, validate_model
from .errors import IssueError
from .i18n import format_date

ISSUE_FILE = "issue.toml"
DEFAULT_SUBJECT = "{name} n°{number} — {date}"
SUBJECT_FIELDS = ("name", "number", "date")
ISSUE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class IssueConfig(StrictModel):
    number: int = Field(ge=0)
    date: dt.date
    preheader: str = ""
    sections: list[str] = Field(min_length=1)
    subject: str = DEFAULT_SUBJECT

    _single_line = field_validator("preheader", "subject")(check_single_line)

    @field_validator("sections")
    @classmethod
    def _distinct_sections(cls, value: list[str]) -> list[str]:
        seen = [name.casefold() for name in value]
        for name in value:
            check_single_line(name)
            if not name.strip():
                raise ValueError("a section name is empty")
            if seen.count(name.casefold()) > 1:
                raise ValueError(f"section {name!r} is listed twice")
        return value

    @field_validator("subject")
    @classmethod
    def _subject_fields(cls, value: str) -> str:
        check_subject(value)
        return value


def check_subject(template: str) -> None:
    """Only plain {name}, {number} and {date}: str.format would otherwise reach into attributes."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(
            f"subject {template!r} is malformed ({exc}); write braces as {{{{ }}}}"
        ) from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in SUBJECT_FIELDS or spec or conversion:
            raise ValueError(
                f"subject uses {{{field}}}; only {{name}}, {{number}} and {{date}} are available"
            )


@dataclass(frozen=True)
class Section:
    name: str
    anchor: str
    articles: tuple[Article, ...]


@dataclass(frozen=True)
class MediaItem:
    article: Article
    media: Media


@dataclass(frozen=True)
class Edition:
    """The issue in one language: what the templates of that language receive."""

    lang: str
    subject: str
    preheader: str
    date_text: str
    lead: Article
    sections: tuple[Section, ...]  # every section with articles, the lead story not repeated
    media: tuple[MediaItem, ...]

    @property
    def articles(self) -> tuple[Article, ...]:
        return (self.lead, *(a for s in self.sections for a in s.articles))


@dataclass(frozen=True)
class Issue:
    id: str
    folder: Path
    number: int
    date: dt.date
    editions: Mapping[str, Edition]
    default_language: str
    files: tuple[str, ...]  # files of the issue folder the editions show or link to
    warnings: tuple[str, ...]


def slug(text: str) -> str:
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "section"


def load_issue(folder: Path, workspace: Workspace) -> Issue:
    """Read and check everything in the folder; raise IssueError at the first problem."""
    issue_id = folder.name
    if not ISSUE_ID.match(issue_id):
        raise IssueError(
            "the folder name is the issue id used in file names and URLs; rename it with letters, "
            "digits, '.', '-' or '_' only (e.g. 2006-50)",
            path=folder,
        )
    config_path = folder / ISSUE_FILE
    if not config_path.is_file():
        raise IssueError(
            f"no {ISSUE_FILE} in the issue folder; add one with number, date and sections",
            path=folder,
        )
    data, text = read_toml(config_path, IssueError)
    config = validate_model(IssueConfig, data, path=config_path, text=text, error=IssueError)

    paths = sorted(folder.glob("*.md"))
    if not paths:
        raise IssueError("has no articles; add a .md file per article", path=folder)
    settings = workspace.settings.newsletter
    default = settings.language
    articles = [load_article(path, folder, default) for path in paths]
    _check_sections(articles, config, config_path)

    languages = sorted(
        {a.lang or default for a in articles}, key=lambda lang: (lang != default, lang)
    )
    editions: dict[str, Edition] = {}
    warnings: list[str] = []
    for lang in languages:
        chosen = _articles_for(lang, default, articles, warnings)
        editions[lang] = _edition(lang, chosen, config, settings.name, settings.date_format)
    files = tuple(
        dict.fromkeys(f for e in editions.values() for a in e.articles for f in a.local_files)
    )
    return Issue(
        id=issue_id,
        folder=folder,
        number=config.number,
        date=config.date,
        editions=editions,
        default_language=default,
        files=files,
        warnings=tuple(warnings),
    )


def _check_sections(articles: list[Article], config: IssueConfig, config_path: Path) -> None:
    for article in articles:
        if article.section not in config.sections:
            known = ", ".join(config.sections)
            raise IssueError(
                f"section {article.section!r} is not one of the issue's sections ({known}); "
                f"fix the article or add the section to {config_path.name}",
                path=article.path,
                line=front_matter_line(article.path, "section:"),
            )


def _articles_for(
    lang: str, default: str, articles: list[Article], warnings: list[str]
) -> list[Article]:
    """The articles of one edition: each stem in ``lang``, else in the default language."""
    by_stem: dict[str, dict[str, Article]] = {}
    for article in articles:
        by_stem.setdefault(article.stem, {})[article.lang or default] = article
    chosen: list[Article] = []
    for stem, versions in by_stem.items():
        if lang in versions:
            chosen.append(versions[lang])
        elif default in versions:
            chosen.append(versions[default])
            warnings.append(
                f"{versions[default].path.name}: no {lang} translation of {stem!r}; "
                f"the {lang} edition uses the {default} text"
            )
    return chosen


def _sort_key(article: Article, sections: list[str]) -> tuple[Any, ...]:
    return (
        article.order is None,
        article.order or 0,
        sections.index(article.section),
        article.path.name,
    )


def _edition(
    lang: str, articles: list[Article], config: IssueConfig, name: str, date_format: str
) -> Edition:
    ordered = sorted(articles, key=lambda a: _sort_key(a, config.sections))
    lead = ordered[0]
    date_text = format_date(config.date, lang, date_format)
    sections = tuple(
        Section(
            name=section,
            anchor=f"section-{slug(section)}",
            articles=tuple(a for a in ordered[1:] if a.section == section),
        )
        for section in config.sections
    )
    media = tuple(MediaItem(a, m) for a in ordered for m in a.media)
    subject = config.subject.format(name=name, number=config.number, date=date_text)
    return Edition(
        lang=lang,
        subject=subject,
        preheader=config.preheader,
        date_text=date_text,
        lead=lead,
        sections=tuple(s for s in sections if s.articles),
        media=media,
    )
