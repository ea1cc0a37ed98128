"""CSV lists, the edges: formulas in the header, values that start with a quote, errors reported
where the trouble starts, names typed on two lines, and an export whose reader goes away."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from hebdo_mail.audience.store import SubscriberStore

from .helpers import Result

DEADLINE = 60


def rows_of(store_path: Path) -> list[tuple[str, str, list[tuple[str, str]]]]:
    with SubscriberStore.at(store_path) as store:
        return [(s.email, s.name, sorted(s.attributes.items())) for s in store.iter_subscribers()]


def test_every_cell_is_escaped_header_included_and_a_leading_quote_comes_back(
    ws: Path, cli: Callable[..., Result], tmp_path: Path
) -> None:
    evil_column = '=HYPERLINK("http://evil.example","x")'
    listing = (
        f'email,name,"{evil_column.replace(chr(34), chr(34) * 2)}",-note\n'
        "gerard@example.org,'t Hooft,=1+1,+33\n"
        "quote@example.org,''twice,'=already,@x\n"
    )
    (ws / "in.csv").write_text(listing, encoding="utf-8")
    assert cli("subscribers", "import", "in.csv", cwd=ws).code == 0
    assert cli("subscribers", "export", "out.csv", cwd=ws).code == 0
    exported = (ws / "out.csv").read_text(encoding="utf-8-sig")
    cells = [cell for row in csv.reader(io.StringIO(exported)) for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    header = next(csv.reader(io.StringIO(exported)))
    assert "'" + evil_column in header and "'-note" in header

    other = tmp_path / "other"
    other.mkdir()
    (other / "hebdo.toml").write_text((ws / "hebdo.toml").read_text())
    (other / "in.csv").write_text(exported, encoding="utf-8")
    assert cli("subscribers", "import", "in.csv", cwd=other).code == 0
    assert rows_of(other / "hebdo.db") == rows_of(ws / "hebdo.db")
    names = {email: name for email, name, _ in rows_of(ws / "hebdo.db")}
    assert names == {"gerard@example.org": "'t Hooft", "quote@example.org": "'twice"}
    assert rows_of(ws / "hebdo.db")[0][2] == [("-note", "+33"), (evil_column, "=1+1")]


def test_csv_errors_name_the_line_where_the_trouble_starts(
    ws: Path, cli: Callable[..., Result]
) -> None:
    good = [f"reader{i}@example.org,Reader {i}" for i in range(1000)]

    def listing(at: int, row: str) -> str:
        """The good rows with ``row`` as data row ``at`` (line ``at + 1``: the header is line 1)."""
        return "email,name\n" + "\n".join([*good[: at - 1], row, *good[at:]])

    cases = {
        # An unclosed quote on line 50 swallows every line after it.
        "quote.csv": (listing(49, 'x@example.org,"Unclosed'), 50, "is not valid CSV"),
        "long.csv": (listing(6, "y@example.org," + "x" * 1_000_000), 7, "has a field longer than 128 KB"),
        "nul.csv": (listing(201, "z@example.org,Nul\0l"), 202, "holds a NUL character"),
    }  # fmt: skip
    for name, (text, line, reason) in cases.items():
        (ws / name).write_text(text + "\n", encoding="utf-8")
        result = cli("subscribers", "import", name, cwd=ws)
        assert result.code == 1
        assert result.err.startswith(f"hebdo-mail: error: {name}:{line}: {reason}"), result.err
        assert len(result.err.strip().splitlines()) == 1
    assert not (ws / "hebdo.db").exists() or rows_of(ws / "hebdo.db") == []


def test_a_name_typed_on_two_lines_is_joined_with_a_warning(
    ws: Path, cli: Callable[..., Result]
) -> None:
    (ws / "list.csv").write_text(
        'email,name\nok@example.org,Fine\nmarie@example.org,"Marie\nCurie"\n', encoding="utf-8"
    )
    result = cli("subscribers", "import", "list.csv", cwd=ws)
    assert result.code == 0 and result.out.startswith("added 2,")
    assert result.err == (
        "warning: list.csv:3: marie@example.org: the name was on several lines; they were "
        "joined with a space\n"
    )
    assert ("marie@example.org", "Marie Curie", []) in rows_of(ws / "hebdo.db")


def test_an_export_whose_reader_goes_away_stops_quietly(
    ws: Path, cli: Callable[..., Result]
) -> None:
    rows = [f"reader{i:05d}@example.org,A name long enough to fill a pipe {i}" for i in range(3000)]
    (ws / "list.csv").write_text("email,name\n" + "\n".join(rows) + "\n", encoding="utf-8")
    cli("subscribers", "import", "list.csv", cwd=ws)
    export = subprocess.Popen(
        [sys.executable, "-m", "hebdo_mail", "subscribers", "export", "-"],
        cwd=ws, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert export.stdout is not None
    assert export.stdout.readline().startswith(b"email,name,")  # `| head -1`, then gone
    export.stdout.close()
    _, err = export.communicate(timeout=DEADLINE)
    assert err == b"" and export.returncode == 141  # as if killed by SIGPIPE


def test_a_list_is_read_as_utf8_and_its_other_bytes_as_windows_1252_where_they_come(
    ws: Path, cli: Callable[..., Result]
) -> None:
    """No pass over the file before its first row: a file saved by Excel as Windows-1252 whose
    first accent comes late, or two exports put end to end, read right in every part; a byte
    that is neither names its line."""
    utf8 = "".join(f"u{i}@example.org,Hélène {i}\n" for i in range(2000)).encode("utf-8")
    cp1252 = "".join(f"w{i}@example.org,Lefèvre {i}\n" for i in range(2000)).encode("cp1252")
    (ws / "mixed.csv").write_bytes(b"email,name\n" + utf8 + cp1252)
    result = cli("subscribers", "import", "mixed.csv", cwd=ws)
    assert result.code == 0, result.err
    names = {email: name for email, name, _ in rows_of(ws / "hebdo.db")}
    assert names["u1999@example.org"] == "Hélène 1999" and names["w0@example.org"] == "Lefèvre 0"
    assert len(names) == 4000
    # 0x81 is no character of Windows-1252: on data row 3001, line 3002 (the file's lines are
    # decoded some kilobytes ahead of the rows: the line is found from the byte's offset).
    cp1252_rows = cp1252.splitlines(keepends=True)
    cp1252_rows[1000] = b"x@example.org,\x81\n"
    (ws / "broken.csv").write_bytes(b"email,name\n" + utf8 + b"".join(cp1252_rows))
    broken = cli("subscribers", "import", "broken.csv", cwd=ws)
    assert broken.code == 1
    assert broken.err.startswith("hebdo-mail: error: broken.csv:3002: is neither"), broken.err
    assert "neither UTF-8 nor Windows-1252" in broken.err


def test_damaged_utf16_is_an_error_naming_its_line_not_windows_1252(
    ws: Path, cli: Callable[..., Result]
) -> None:
    rows = "email\tname\n" + "".join(f"r{i}@example.org\tR{i}\n" for i in range(500))
    data = rows.encode("utf-16")  # with its BOM, as Excel writes "Unicode text"
    # A lone low surrogate in row 301 (line 302): no UTF-16 text has one.
    at = data.index("r300@".encode("utf-16-le"))
    (ws / "damaged.csv").write_bytes(data[:at] + b"\x00\xdc" + data[at:])
    result = cli("subscribers", "import", "damaged.csv", cwd=ws)
    assert result.code == 1
    assert result.err.startswith("hebdo-mail: error: damaged.csv:302: is damaged UTF-16"), (
        result.err
    )
