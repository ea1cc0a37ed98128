"""TOML files of the workspace (hebdo.toml, an issue's issue.toml) read with errors that name the
file and line. Light on purpose: commands that only peek at a setting read it without loading the
settings' models (config.py)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from .errors import HebdoError


def read_toml(path: Path, error: type[HebdoError]) -> tuple[dict[str, Any], str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot be read ({exc.strerror})", path=path) from exc
    return parse_toml(path, raw, error)


def parse_toml(path: Path, raw: bytes, error: type[HebdoError]) -> tuple[dict[str, Any], str]:
    """The table and the text of ``raw``, the bytes read from ``path``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error("is not UTF-8 text; save it as UTF-8", path=path) from exc
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(match.group(1)) if match else None
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise error(f"is not valid TOML: {reason}; fix the syntax", path=path, line=line) from exc


def toml_key_line(text: str, loc: tuple[str | int, ...]) -> int | None:
    """Best-effort line of a dotted key in TOML text: the key inside its [table], else the table."""
    table = [str(p) for p in loc[:-1] if isinstance(p, str)]
    key = str(loc[-1]) if loc else ""
    current: list[str] = []
    table_line = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = re.match(r"^\[+\s*([^\]]+?)\s*\]+", line)
        if header:
            current = [part.strip().strip('"') for part in header.group(1).split(".")]
            if current == table:
                table_line = number
            if current[: len(table) + 1] == [*table, key]:
                return number  # the key is itself a table: [subject] or [sections.fr]
            continue
        if current == table and re.match(rf'^"?{re.escape(key)}"?\s*=', line):
            return number
    return table_line
