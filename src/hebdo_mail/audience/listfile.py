"""Subscriber lists as CSV: reading what people's spreadsheets really produce, and writing files
that no spreadsheet will run as formulas.

Reading accepts UTF-8 with or without a BOM and UTF-16 with a BOM (Excel's "Unicode text"), reads
bytes that are not UTF-8 as cp1252 (Excel in Western locales), and streams the rows from the first
(a list of a million readers is never held in memory whole, nor read through before its first
row); detects ``,`` ``;`` or tab; matches header names with
common aliases in English and French; keeps unknown columns as attributes. Each row comes back
either as a ``CsvSubscriber`` or as a ``Rejected`` row with its line number and reason, so callers
can report every bad row and keep going.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import os
import re
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

from ..atomic import atomic_output
from ..checks import check_language
from ..errors import HebdoError
from ..vocabulary import STATUSES
from .addresses import InvalidAddress, check_name, normalise_address

_BREAKS = "[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]"  # what splitlines() breaks on
LINE_BREAK_CHARACTER = re.compile(_BREAKS)
# A line break with the spaces around it (searched for only in a name that has one: a pattern
# that starts with optional spaces is tried at every position of every name).
LINE_BREAK = re.compile(rf"[ \t]*(?:\r\n|{_BREAKS})[ \t]*")
FORMATS = {"html": "html", "text": "text", "texte": "text", "txt": "text", "plain": "text"}

# Header aliases, compared case-insensitively after trimming spaces, '_' and '-'.
ALIASES = {
    "email": {
        "email",
        "e-mail",
        "mail",
        "courriel",
        "adresse",
        "address",
        "emailaddress",
        "adressee-mail",
        "adresseemail",
        "adresseelectronique",
        "adresseélectronique",
    },
    "name": {"name", "nom", "fullname", "nomcomplet", "displayname"},
    "first_name": {"firstname", "prenom", "prénom", "givenname"},
    "last_name": {"lastname", "surname", "familyname", "nomdefamille"},
    "lang": {"lang", "langue", "language", "langage", "locale"},
    "format": {"format", "mailformat"},
    "status": {"status", "statut", "état", "etat"},
}
# Columns our own export writes that are bookkeeping, not subscriber data.
EXPORT_ONLY = {
    "source",
    "created",
    "updated",
    "unsubscribed",
    "bounce_score",
    "created_at",
    "updated_at",
    "unsubscribed_at",
}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A cell written with a leading quote by export: a formula made harmless, or a value that really
# starts with a quote (a name like 't Hooft), which must come back as it was.
ESCAPED = "".join(FORMULA_START) + "'"


class CsvError(HebdoError):
    """The file as a whole cannot be read as a subscriber list."""


def _unreadable(exc: OSError, path: Path) -> CsvError:
    """The file could not be read from the system's point of view (gone, no permission, EIO)."""
    return CsvError(f"cannot be read ({exc.strerror})", path=path)


@dataclass(slots=True)  # not frozen: a frozen dataclass costs a µs a row to build
class CsvSubscriber:
    line: int
    email: str
    name: str = ""
    lang: str | None = None
    format: str | None = None
    status: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    warning: str | None = None  # taken as it is, but worth a look (a name on two lines)


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str


def _canonical(header: str) -> str:
    return "".join(c for c in header.strip().casefold() if c not in " _-.'")


def unescape_formula(value: str) -> str:
    """Undo export's guard: "'=x" was written for "=x", and "''t" for "'t"."""
    if len(value) > 1 and value[0] == "'" and value[1] in ESCAPED:
        return value[1:]
    return value


def escape_formula(value: str) -> str:
    """A leading quote makes spreadsheets show the cell as text instead of running it; a value
    that starts with a quote gets one more, so that import gives it back unchanged."""
    return "'" + value if value.startswith((*FORMULA_START, "'")) else value


CHUNK = 1 << 20  # bytes read at a time when looking for a line


@dataclass(frozen=True)
class Encoding:
    codec: str  # what the rows are decoded with
    start: int  # bytes to skip first (a UTF-8 byte-order mark)


def _as_cp1252(exc: UnicodeError) -> tuple[str, int]:
    """Bytes that are not UTF-8, read as Windows-1252 (Excel's CSV in Western locales): a file
    saved that way is read as it streams, with no pass over it first; one that mixes both (rows
    pasted from another export) reads right in both parts. A byte that is neither stays an
    error."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    try:
        return exc.object[exc.start : exc.end].decode("cp1252"), exc.end
    except UnicodeDecodeError:
        raise exc from None


CP1252_FALLBACK = "hebdo-mail-cp1252"
codecs.register_error(CP1252_FALLBACK, _as_cp1252)


def detect_encoding(handle: BinaryIO, path: Path) -> Encoding:
    """How the file is written, from its first bytes: UTF-16 with a BOM (Excel's "Unicode
    text"), else UTF-8 with or without a BOM, whose rows may turn out to hold Windows-1252 bytes
    (read as such: ``CP1252_FALLBACK``). A NUL byte at the start means a binary file."""
    handle.seek(0)
    head = handle.read(4096)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return Encoding("utf-16", 0)
    if b"\0" in head:
        raise CsvError("is not a text file (binary content); export the sheet as CSV", path=path)
    return Encoding("utf-8", len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0)


def _line_at(handle: BinaryIO, offset: int) -> int:
    """The line number of a byte offset of the file."""
    handle.seek(0)
    lines = 1
    while offset > 0:
        chunk = handle.read(min(CHUNK, offset))
        if not chunk:
            break
        lines += chunk.count(b"\n")
        offset -= len(chunk)
    return lines


def _undecodable(
    exc: UnicodeDecodeError, handle: BinaryIO, encoding: Encoding, path: Path
) -> CsvError:
    """A byte that no encoding we read explains, named by its line."""
    # The decoder was given the bytes just read (after at most 3 held from the read before).
    offset = handle.tell() - len(exc.object) + exc.start
    line = _line_at(handle, max(offset, 0))
    if encoding.codec == "utf-16":
        return CsvError("is damaged UTF-16 text; save it again as CSV UTF-8", path=path, line=line)
    return CsvError(
        "is neither UTF-8 nor Windows-1252 text; save it as 'CSV UTF-8' and try again",
        path=path,
        line=line,
    )


def count_data_lines(path: Path) -> int:
    """The file's lines but the first: at least as many as its rows (more when some are blank
    or hold a line break in a quoted cell). A quick count, at the speed of reading the file;
    a file whose lines end with a carriage return alone (old Mac exports) is counted again."""
    for end in (b"\n", b"\r"):
        lines = 0
        last = end
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    lines += chunk.count(end)
                    last = chunk[-1:]
        except OSError as exc:
            raise _unreadable(exc, path) from None
        if lines:
            break
    return max(lines - (last == end), 0)


def _dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        first = sample.split("\n", 1)[0]
        delimiter = max(",;\t", key=first.count)

        class Simple(csv.excel):
            pass

        Simple.delimiter = delimiter
        return Simple


@dataclass(frozen=True)
class Header:
    columns: dict[str, int]  # our field name -> column index
    attributes: dict[int, str]  # column index -> attribute name


def _header(row: list[str], path: Path, line: int) -> Header:
    columns: dict[str, int] = {}
    attributes: dict[int, str] = {}
    for index, cell in enumerate(row):
        raw = unescape_formula(cell.strip())
        key = _canonical(raw)
        field_name = next((f for f, names in ALIASES.items() if key in names), None)
        if field_name and field_name not in columns:
            columns[field_name] = index
        elif key and key not in {_canonical(name) for name in EXPORT_ONLY}:
            attributes[index] = raw
    if "email" not in columns:
        found = ", ".join(repr(c) for c in row[:6]) or "nothing"
        raise CsvError(
            f"has no address column (the first line holds {found}); name the column 'email', "
            "'e-mail', 'mail', 'courriel' or 'adresse'",
            path=path,
            line=line,
        )
    return Header(columns, attributes)


def read_subscribers(
    path: Path, *, check_dns: bool = False
) -> Generator[CsvSubscriber | Rejected, None, None]:
    """Every data row of the file, parsed and validated, in file order, read as it goes."""
    try:
        opened = path.open("rb")
    except OSError as exc:
        raise _unreadable(exc, path) from None
    with opened:
        yield from _read_rows(opened, path, check_dns)


def _read_rows(handle: BinaryIO, path: Path, check_dns: bool) -> Iterator[CsvSubscriber | Rejected]:
    try:
        encoding = detect_encoding(handle, path)
        handle.seek(encoding.start)
        sample = handle.read(8192 * 4).decode(encoding.codec, "ignore")[:8192]
        handle.seek(encoding.start)
        opened = os.fstat(handle.fileno())
    except OSError as exc:
        raise _unreadable(exc, path) from None
    # Only UTF-8 falls back to Windows-1252: damaged UTF-16 is an error, not other text.
    errors = CP1252_FALLBACK if encoding.codec == "utf-8" else "strict"
    text = io.TextIOWrapper(handle, encoding=encoding.codec, errors=errors, newline="")
    rows = _parse(text, _dialect(sample), path, check_dns)
    try:
        for count in itertools.count(1):
            try:
                item = next(rows)
            except StopIteration:
                # The end: one written over in place (cut short, or still being written)
                # must not pass for the whole list.
                _check_unchanged(handle, opened, path)
                return
            except UnicodeDecodeError as exc:
                raise _undecodable(exc, handle, encoding, path) from None
            except OSError as exc:
                raise _unreadable(exc, path) from None
            yield item
            if count % WATCH_EVERY == 0:
                _check_unchanged(handle, opened, path)
    finally:
        text.detach()  # read_subscribers closes the file, not the wrapper


WATCH_EVERY = 4096  # rows between two looks at whether the file is being written over


def _check_unchanged(handle: BinaryIO, opened: os.stat_result, path: Path) -> None:
    """A file written over in place while it is read (most programs save to a new file, which
    the open handle does not see) would give rows of two versions: stop instead."""
    try:
        now = os.fstat(handle.fileno())
    except OSError as exc:
        raise _unreadable(exc, path) from None
    if (now.st_size, now.st_mtime_ns) != (opened.st_size, opened.st_mtime_ns):
        raise CsvError(
            "was written over while it was being read; wait until nothing writes to it, and run "
            "the command again",
            path=path,
        )


def _parse(
    text: TextIO, dialect: type[csv.Dialect] | csv.Dialect, path: Path, check_dns: bool
) -> Iterator[CsvSubscriber | Rejected]:
    reader = csv.reader(text, dialect, strict=True)
    header: Header | None = None
    previous_end = 0
    try:
        for row in reader:
            line = previous_end + 1  # a quoted field may span lines: report where the row starts
            previous_end = reader.line_num
            joined = "".join(row)
            if not joined.strip():
                continue
            if "\0" in joined:
                raise CsvError(
                    "holds a NUL character (a damaged or binary file); remove it, or export the "
                    "sheet as CSV again",
                    path=path,
                    line=line,
                )
            if header is None:
                header = _header(row, path, line)
                continue
            yield _row(row, header, line, check_dns)
    except csv.Error as exc:
        # Reported where the row that went wrong starts: an unclosed quote swallows every line
        # after it, so the line where the reader gave up says nothing.
        reason = f"is not valid CSV ({exc}); check the quotes of the row starting here"
        if "field larger than field limit" in str(exc):
            limit = csv.field_size_limit() // 1024
            reason = (
                f"has a field longer than {limit} KB, which no subscriber needs; check the quotes "
                "of the row starting here (an unclosed quote runs to the end of the file)"
            )
        raise CsvError(reason, path=path, line=previous_end + 1) from None
    if header is None:  # the first line that is not blank is the header
        raise CsvError("is empty; it needs a header line and one row per subscriber", path=path)


def _cells(row: list[str], header: Header) -> dict[str, str]:
    """Our fields' values in this row, stripped and unescaped; a column the row lacks is left
    out. One pass per row: it runs for every row of a million-row list."""
    width = len(row)
    cells = {}
    for name, index in header.columns.items():
        if index < width:
            value = row[index].strip()
            cells[name] = unescape_formula(value) if value[:1] == "'" else value
    return cells


def _row(row: list[str], header: Header, line: int, check_dns: bool) -> CsvSubscriber | Rejected:
    cells = _cells(row, header)
    raw_email = cells.get("email", "")
    try:
        email = normalise_address(raw_email, check_dns=check_dns)
    except InvalidAddress as exc:
        return Rejected(line, str(exc))
    name = cells.get("name", "")
    if not name:
        name = " ".join(p for p in (cells.get("first_name"), cells.get("last_name")) if p)
    warning = None
    if LINE_BREAK_CHARACTER.search(name):
        # Alt+Enter in a spreadsheet cell: one name all the same, which a header cannot hold.
        name = LINE_BREAK.sub(" ", name).strip()
        warning = f"{email}: the name was on several lines; they were joined with a space"
    try:
        check_name(name)
    except InvalidAddress as exc:
        return Rejected(line, f"{email}: {exc}")
    lang = cells.get("lang") or None
    if lang:
        try:
            check_language(lang)
        except ValueError as exc:
            return Rejected(line, f"{email}: {exc}")
    raw_format = cells.get("format", "").casefold()
    if raw_format and raw_format not in FORMATS:
        return Rejected(line, f"{email}: format {raw_format!r} is neither 'html' nor 'text'")
    status = cells.get("status", "").casefold() or None
    if status and status not in STATUSES:
        return Rejected(line, f"{email}: status {status!r} is not one of {', '.join(STATUSES)}")
    attributes = {}
    for index, attr in header.attributes.items():
        if index < len(row) and (value := row[index].strip()):
            attributes[attr] = unescape_formula(value) if value[:1] == "'" else value
    return CsvSubscriber(
        line=line,
        email=email,
        name=name,
        lang=lang,
        format=FORMATS[raw_format] if raw_format else None,
        status=status,
        attributes=attributes,
        warning=warning,
    )


def write_csv(rows: Iterable[list[str]], header: list[str], target: Path | None) -> int:
    """Write an escaped CSV, header included, to ``target`` or to stdout; returns the row
    count. A regular file is replaced whole (files.atomic_output), and made readable by its
    owner only: it holds personal data."""
    count = 0

    def emit(handle: TextIO) -> None:
        nonlocal count
        writer = csv.writer(handle, lineterminator="\r\n")  # RFC 4180
        writer.writerow([escape_formula(cell) for cell in header])
        for row in rows:
            writer.writerow([escape_formula(cell) for cell in row])
            count += 1

    if target is None:
        import sys

        emit(sys.stdout)
        return count
    with atomic_output(target) as binary:
        # A BOM so that Excel opens the file as UTF-8; our own import skips it.
        handle = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
        emit(handle)
        handle.flush()
        handle.detach()
    return count
