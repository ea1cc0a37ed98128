"""Languages: gettext catalogues for the templates' fixed strings, and locale-aware dates and sizes.

Catalogues are ``.po`` files (the package's own under ``locale/``, and a workspace's ``locale/`` which
wins), compiled in memory when first needed, so adding a language needs no build step.
"""

from __future__ import annotations

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

from .errors import ConfigError

PACKAGE_LOCALE_DIR = Path(__file__).parent / "locale"
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
    result: NullTranslations = _compiled(paths[0], paths[0].stat().st_mtime)
    for path in paths[1:]:
        result.add_fallback(_compiled(path, path.stat().st_mtime))
    return result


def locale(language: str) -> Locale:
    return Locale.parse(language.replace("-", "_"))


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
