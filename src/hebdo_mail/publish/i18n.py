"""Languages: gettext catalogues for the templates' fixed strings, and locale-aware dates and sizes.

Catalogues are ``.po`` files (the package's own under ``locale/``, and a workspace's ``locale/`` which
wins), compiled in memory when first needed, so adding a language needs no build step.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import re
from functools import cache
from pathlib import Path

from babel import Locale
from babel.dates import format_date as babel_format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

from ..errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PACKAGE_LOCALE_DIR = PACKAGE_DIR / "locale"
DOMAIN = "messages"


def catalogue_paths(language: str, workspace_locale: Path | None) -> list[Path]:
    """The .po files for a language, the workspace's first so it can override any string."""
    folders = [d for d in (workspace_locale, PACKAGE_LOCALE_DIR) if d is not None]
    names = dict.fromkeys([language, language.split("-")[0].split("_")[0]])
    return [
        folder / name / "LC_MESSAGES" / f"{DOMAIN}.po"
        for folder in folders
        for name in names
        if (folder / name / "LC_MESSAGES" / f"{DOMAIN}.po").is_file()
    ]


@cache
def _compiled(path: Path, mtime: float) -> Translations:
    try:
        with path.open("rb") as handle:
            catalog = read_po(handle, abort_invalid=True)
    except Exception as exc:  # babel raises several types for a broken catalogue
        raise ConfigError(
            f"is not a valid gettext catalogue ({exc}); fix or remove it", path=path
        ) from None
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(fp=buffer, domain=DOMAIN)


def translations(language: str, workspace_locale: Path | None = None) -> NullTranslations:
    """Translations for ``language``; strings missing everywhere fall back to the English msgid."""
    paths = catalogue_paths(language, workspace_locale)
    if not paths:
        return NullTranslations()
    # The compiled catalogues are cached and shared: each call chains copies of them, since
    # giving a cached one a fallback would lengthen its chain at every call, or loop it.
    first, *rest = [copy.copy(_compiled(path, path.stat().st_mtime)) for path in paths]
    for fallback in rest:
        first.add_fallback(fallback)
    result: NullTranslations = first
    return result


def locale(language: str) -> Locale:
    return Locale.parse(language.replace("-", "_"))


def language_name(code: str) -> str:
    """A language as its speakers write it: "Français", "English", "Deutsch"."""
    try:
        name = locale(code).get_display_name(locale(code)) or code
    except (ValueError, LookupError):
        return code
    return name[:1].upper() + name[1:]


def format_date(value: dt.date, language: str, pattern: str = "long") -> str:
    """'15 décembre 2006' (fr, long), '15 December 2006' (en), or a Babel pattern like dd-MMM-yyyy."""
    text = str(babel_format_date(value, format=pattern, locale=locale(language)))
    if value.day == 1 and locale(language).language == "fr":
        # French writes the first of the month as an ordinal: "1er décembre".
        text = re.sub(r"^1(?= [^\d\s])", "1er", text)
    return text


def format_size(size: int, language: str) -> str:
    """Binary sizes the way readers expect them: '5,6 Mo' in French, '5.6 MB' in English."""
    units = (
        ["o", "ko", "Mo", "Go"] if locale(language).language == "fr" else ["B", "KB", "MB", "GB"]
    )
    value, index = float(size), 0
    while value >= 1024 and index < len(units) - 1:
        value, index = value / 1024, index + 1
    if index == 0:
        return f"{size}\u00a0{units[0]}"
    return f"{format_decimal(value, format='#,##0.#', locale=locale(language))}\u00a0{units[index]}"


def N_(message: str) -> str:
    """Marks a string for the catalogues where it is translated later (e.g. a default subject)."""
    return message


def extract_messages(template_dirs: list[Path]) -> dict[str, list[str]]:
    """Every translatable string of the templates and of the package's code, with where it is."""
    from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir

    jinja_options = {
        "extensions": "jinja2.ext.i18n",
        "trim_blocks": "True",
        "lstrip_blocks": "True",
    }
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    found: dict[str, list[str]] = {}
    sources: list[tuple[Path, list[tuple[str, str]]]] = [
        (PACKAGE_DIR, [("**.py", "python")]),
        *((d, [("**.html", "jinja2"), ("**.txt", "jinja2")]) for d in template_dirs if d.is_dir()),
    ]
    for folder, method_map in sources:
        options = {pattern: jinja_options for pattern, method in method_map if method == "jinja2"}
        for filename, lineno, message, _, _ in extract_from_dir(
            folder, method_map, options, keywords=keywords
        ):
            if isinstance(message, str):
                found.setdefault(message, []).append(f"{folder.name}/{filename}:{lineno}")
    return found


def write_catalogue(path: Path, language: str, messages: dict[str, list[str]]) -> tuple[int, int]:
    """Create or update a .po file: every message listed, existing translations kept, strings no
    longer used dropped. Returns (strings, strings still to translate)."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    old: dict[str, str] = {}
    if path.is_file():
        with path.open("rb") as handle:
            old = {str(m.id): str(m.string) for m in read_po(handle) if m.id and m.string}
    fixed = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)  # stable headers: regenerating changes nothing
    catalog = Catalog(
        locale=language.replace("-", "_"),
        project="hebdo-mail",
        version="",
        copyright_holder="the hebdo-mail authors",
        msgid_bugs_address="",
        creation_date=fixed,
        revision_date=fixed,
        last_translator="",
        language_team="",
        fuzzy=False,
        header_comment=(
            "# The fixed strings of hebdo-mail's templates and pages, in one language.\n"
            "# Strings left empty fall back to English."
        ),
    )
    english = locale(language).language == "en"
    for message, places in sorted(messages.items()):
        translation = old.get(message) or (message if english else "")
        catalog.add(
            message,
            translation,
            locations=[(p.rsplit(":", 1)[0], int(p.rsplit(":", 1)[1])) for p in places],
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        write_po(handle, catalog, omit_header=False, width=100)
    missing = sum(1 for m in catalog if m.id and not m.string)
    return len(messages), missing
