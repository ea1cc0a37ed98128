"""Stage 2: ``issue.toml`` and the articles become an ``Issue``: its editions, one per language,
each with its lead story, its sections in order and its media, ready to render.
"""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from ..checks import check_language, check_single_line
from ..config import StrictModel, validate_model
from ..errors import ConfigError, IssueError
from ..tomlfile import read_toml, toml_key_line
from ..workspace import Workspace
from .articles import Article, Media, front_matter_line, load_article
from .files import IssueFiles, slug
from .i18n import N_, format_date, translations
from .pictures import PictureError, read_picture

ISSUE_FILE = "issue.toml"
# The default subject goes through the catalogues: "{name} n°{number} — {date}" in French.
DEFAULT_SUBJECT = N_("{name}, issue {number} — {date}")
SUBJECT_FIELDS = ("name", "number", "date")
ISSUE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# A value that may be given once, or once per language: subject = "…" or [subject] fr = "…".
PerLanguage = str | dict[str, str]


class IssueConfig(StrictModel):
    number: int = Field(ge=0)
    date: dt.date
    # When `send --due` mails it; without an offset, the machine's local time.
    send_at: dt.datetime | None = None
    preheader: PerLanguage = ""
    subject: PerLanguage | None = None
    # A list of names, or per language a table of section ids and their names:
    # [sections.fr] news = "Nouvelles" / [sections.en] news = "News".
    sections: list[str] | dict[str, dict[str, str]]

    @field_validator("preheader", "subject")
    @classmethod
    def _per_language_lines(cls, value: PerLanguage | None) -> PerLanguage | None:
        for text in [value] if isinstance(value, str) else (value or {}).values():
            check_single_line(str(text))
        if isinstance(value, dict):
            for lang in value:
                check_language(lang)
        return value

    @field_validator("subject")
    @classmethod
    def _subject_fields(cls, value: PerLanguage | None) -> PerLanguage | None:
        for template in [value] if isinstance(value, str) else (value or {}).values():
            check_subject(template)
        return value

    @field_validator("sections")
    @classmethod
    def _sections(
        cls, value: list[str] | dict[str, dict[str, str]]
    ) -> list[str] | dict[str, dict[str, str]]:
        tables = {"": {name: name for name in value}} if isinstance(value, list) else value
        if not tables or not any(tables.values()):
            raise ValueError("list at least one section")
        first_ids = list(next(iter(tables.values())))
        for lang, table in tables.items():
            if lang:
                check_language(lang)
            names = [name.casefold() for name in table.values()]
            for section_id, name in table.items():
                check_single_line(name)
                if not name.strip():
                    raise ValueError(f"section {section_id!r} has an empty name")
                if names.count(name.casefold()) > 1:
                    raise ValueError(f"section {name!r} is listed twice")
                if section_id not in first_ids:
                    raise ValueError(
                        f"section {section_id!r} of [sections.{lang}] is missing from the first "
                        "language's table; every language lists the same sections"
                    )
        if isinstance(value, list) and len(set(map(str.casefold, value))) < len(value):
            raise ValueError("a section is listed twice")
        return value

    def _tables(self) -> dict[str, dict[str, str]]:
        """Section id -> name, per language ("" when the sections are one list of names)."""
        if isinstance(self.sections, list):
            return {"": {name: name for name in self.sections}}
        return self.sections

    def section_ids(self, default: str) -> list[str]:
        tables = self._tables()
        return list(tables.get(default) or next(iter(tables.values())))

    def section_name(self, section_id: str, lang: str, default: str) -> str:
        """The section's name in ``lang``, else in the default language, else its id."""
        tables = self._tables()
        for candidate in (lang, lang.split("-")[0], default, ""):
            name = tables.get(candidate, {}).get(section_id)
            if name:
                return name
        return section_id

    def resolve_section(self, given: str) -> str | None:
        """An article's ``section:`` is a section id, or its name in any language."""
        tables = self._tables().values()
        if any(given in table for table in tables):
            return given
        for table in tables:
            for section_id, name in table.items():
                if name.casefold() == given.casefold():
                    return section_id
        return None


def per_language(value: PerLanguage | None, lang: str, default: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    for candidate in (lang, lang.split("-")[0], default):
        if candidate in value:
            return value[candidate]
    return None


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
    newsletter_name: str
    subject: str
    preheader: str
    date_text: str
    lead: Article
    sections: tuple[Section, ...]  # every section with articles, the lead story not repeated
    media: tuple[MediaItem, ...]
    section_names: Mapping[str, str]  # every section id -> its name in this language

    @property
    def articles(self) -> tuple[Article, ...]:
        return (self.lead, *(a for s in self.sections for a in s.articles))


@dataclass(frozen=True)
class Issue:
    id: str
    folder: Path
    number: int
    date: dt.date
    send_at: dt.datetime | None  # aware: a time without offset is the machine's local time
    editions: Mapping[str, Edition]
    default_language: str
    files: IssueFiles  # files of the issue folder the editions show or link to
    warnings: tuple[str, ...]


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
    articles = [
        _with_section_id(load_article(path, folder, default), config, default) for path in paths
    ]

    languages = sorted(
        {a.lang or default for a in articles}, key=lambda lang: (lang != default, lang)
    )
    editions: dict[str, Edition] = {}
    warnings: list[str] = []
    for lang in languages:
        chosen = _articles_for(lang, default, articles, settings.fallback, warnings)
        if not chosen:
            warnings.append(f"the {lang} edition has no article left; it is not built")
            continue
        editions[lang] = _edition(lang, chosen, config, workspace)
    articles_shown = [a for e in editions.values() for a in e.articles]
    files = IssueFiles.of(
        folder,
        pictures=(name for a in articles_shown for name in a.pictures),
        downloads=(name for a in articles_shown for name in a.downloads),
        logo=logo_path(workspace),
    )
    return Issue(
        id=issue_id,
        folder=folder,
        number=config.number,
        date=config.date,
        send_at=config.send_at.astimezone() if config.send_at else None,
        editions=editions,
        default_language=default,
        files=files,
        warnings=tuple(warnings),
    )


def logo_path(workspace: Workspace) -> Path | None:
    """The [style] logo, checked: a picture mail clients show, inside the workspace."""
    logo = workspace.settings.style.logo
    if logo is None:
        return None
    path = (workspace.root / logo).resolve()
    line = toml_key_line(workspace.config_path.read_text(encoding="utf-8"), ("style", "logo"))
    if not path.is_relative_to(workspace.root.resolve()) or not path.is_file():
        raise ConfigError(
            f"style.logo: {logo!r} is not a file of the workspace; put the logo beside hebdo.toml",
            path=workspace.config_path,
            line=line,
        )
    try:
        read_picture(path)
    except PictureError as exc:
        raise ConfigError(
            f"style.logo: {logo!r} {exc}", path=workspace.config_path, line=line
        ) from None
    return path


def _with_section_id(article: Article, config: IssueConfig, default: str) -> Article:
    section_id = config.resolve_section(article.section)
    if section_id is None:
        known = ", ".join(
            config.section_name(i, default, default) for i in config.section_ids(default)
        )
        raise IssueError(
            f"section {article.section!r} is not one of the issue's sections ({known}); "
            f"fix the article or add the section to {ISSUE_FILE}",
            path=article.path,
            line=front_matter_line(article.path, "section:"),
        )
    return replace(article, section=section_id)


def _articles_for(
    lang: str, default: str, articles: list[Article], fallback: str, warnings: list[str]
) -> list[Article]:
    """The articles of one edition: each in ``lang``, else (fallback = "default") in the default
    language; a missing translation is named in a warning either way."""
    by_stem: dict[str, dict[str, Article]] = {}
    for article in articles:
        by_stem.setdefault(article.stem, {})[article.lang or default] = article
    chosen: list[Article] = []
    for stem, versions in by_stem.items():
        if lang in versions:
            chosen.append(versions[lang])
            continue
        some = next(iter(versions.values()))
        if default in versions and fallback == "default":
            chosen.append(versions[default])
            warnings.append(
                f"{versions[default].path.name}: no {lang} translation of {stem!r}; "
                f"the {lang} edition uses the {default} text"
            )
        else:
            warnings.append(
                f"{some.path.name}: no {lang} version of {stem!r}; left out of the {lang} edition"
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
    lang: str, articles: list[Article], config: IssueConfig, workspace: Workspace
) -> Edition:
    settings = workspace.settings.newsletter
    default = settings.language
    section_ids = config.section_ids(default)
    ordered = sorted(articles, key=lambda a: _sort_key(a, section_ids))
    lead = ordered[0]
    date_text = format_date(config.date, lang, settings.date_format)
    sections = tuple(
        Section(
            name=config.section_name(section_id, lang, default),
            anchor=f"section-{slug(section_id, 'section')}",
            articles=tuple(a for a in ordered[1:] if a.section == section_id),
        )
        for section_id in section_ids
    )
    media = tuple(MediaItem(a, m) for a in ordered for m in a.media)
    name = settings.name_in(lang)
    template = per_language(config.subject, lang, default)
    if template is None:
        template = translations(lang, workspace.locale_dir).gettext(DEFAULT_SUBJECT)
    subject = template.format(name=name, number=config.number, date=date_text)
    return Edition(
        lang=lang,
        newsletter_name=name,
        subject=subject,
        preheader=per_language(config.preheader, lang, default) or "",
        date_text=date_text,
        lead=lead,
        sections=tuple(s for s in sections if s.articles),
        media=media,
        section_names={i: config.section_name(i, lang, default) for i in section_ids},
    )
