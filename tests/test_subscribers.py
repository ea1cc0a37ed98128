"""The mailing list: imports of files as spreadsheets really write them, the admin commands, export
round trips, and a store that is never left half-changed."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest

from hebdo_mail.audience.store import StoreError

from .helpers import BOTH_STORES, REPO, Result, run_process, store_of

pytestmark = BOTH_STORES


def store_rows(workspace: Path) -> list[tuple[str, str, str | None, str, str, str]]:
    with store_of(workspace) as store:
        return [
            (s.email, s.name, s.lang, s.format, s.status, repr(sorted(s.attributes.items())))
            for s in store.iter_subscribers(batch=2)
        ]


def imported(
    workspace: Path, cli: Callable[..., Result], name: str, data: bytes, *args: str
) -> Result:
    path = workspace / name
    path.write_bytes(data)
    return cli("subscribers", "import", name, *args, cwd=workspace)


def test_example_list_imports_as_is(workspace: Path, cli: Callable[..., Result]) -> None:
    result = cli("subscribers", "import", "subscribers.example.csv", cwd=workspace)
    assert result.code == 0, result.err
    assert result.out.strip() == "added 5, updated 0, unchanged 0, rejected 0"
    rows = store_rows(workspace)
    assert (
        "marc.dubois@example.net",
        "Marc Dubois",
        "fr",
        "text",
        "active",
        "[('city', 'Mons')]",
    ) in rows
    assert {r[2] for r in rows} == {"fr", "en"}


def test_excel_semicolons_bom_aliases_and_quoted_newlines(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    data = (
        "\ufeffCourriel;Nom;Langue;Format;Adresse postale\r\n"
        'anne@example.org;Anne Martin;fr;texte;"12 rue Haute\r\n1000 Bruxelles"\r\n'
        'bob@example.org;"Durand; Bob";en;HTML;\r\n'
    ).encode()
    result = imported(workspace, cli, "excel.csv", data)
    assert result.out.startswith("added 2,")
    rows = store_rows(workspace)
    assert rows[0][:4] == ("anne@example.org", "Anne Martin", "fr", "text")
    assert (
        "12 rue Haute\\r\\n1000 Bruxelles" in rows[0][5]
        or "12 rue Haute\\n1000 Bruxelles" in rows[0][5]
    )
    assert rows[1][:4] == ("bob@example.org", "Durand; Bob", "en", "html")


def test_cp1252_file_from_excel(workspace: Path, cli: Callable[..., Result]) -> None:
    data = "E-mail,Prénom,Nom de famille\nhelene@example.org,Hélène,Lefèvre\n".encode("cp1252")
    result = imported(workspace, cli, "latin.csv", data)
    assert result.code == 0 and result.out.startswith("added 1,")
    assert store_rows(workspace)[0][1] == "Hélène Lefèvre"


def test_utf16_tab_separated_unicode_text(workspace: Path, cli: Callable[..., Result]) -> None:
    data = "mail\tname\r\nzoe@example.fr\tZoé Nguyễn\r\n".encode("utf-16")
    result = imported(workspace, cli, "unicode.txt", data)
    assert result.out.startswith("added 1,")
    assert store_rows(workspace)[0][1] == "Zoé Nguyễn"


def test_duplicates_invalid_and_idn_addresses(workspace: Path, cli: Callable[..., Result]) -> None:
    data = (
        "email,name,city\n"
        "Paul@Example.org,Paul,\n"  # line 2
        "not-an-address,Nobody,\n"  # line 3
        "paul@EXAMPLE.ORG,,Liège\n"  # line 4: same reader as line 2, fills the city
        "josé@bücher.de,José,\n"  # line 5: internationalised domain
        "x@-bad-.org,Bad,\n"  # line 6
        "lang@example.org,Lang,\n"
    ).encode()
    result = imported(workspace, cli, "messy.csv", data)
    assert result.code == 0
    assert result.out.startswith(
        "added 3, updated 0, unchanged 0, rejected 2 (1 duplicate row merged)"
    )
    errors = result.err.strip().splitlines()
    assert errors[0].startswith("messy.csv:3: 'not-an-address' is not an email address")
    assert errors[1].startswith("messy.csv:6: 'x@-bad-.org'")
    rows = store_rows(workspace)
    assert [r[0] for r in rows] == ["Paul@example.org", "josé@xn--bcher-kva.de", "lang@example.org"]
    assert rows[0][5] == "[('city', 'Liège')]"


def test_rejected_rows_name_the_line_where_a_multiline_row_starts(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    data = b'email,note\na@example.org,"one\ntwo\nthree"\nbroken@,x\n'
    result = imported(workspace, cli, "lines.csv", data)
    assert result.err.startswith("lines.csv:5: 'broken@'")


def test_import_never_reactivates_a_reader_who_left(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    cli("subscribers", "import", "subscribers.example.csv", cwd=workspace)
    cli("subscribers", "unsubscribe", "marc.dubois@example.net", cwd=workspace)
    data = b"email,name,status\nmarc.dubois@example.net,Marc D.,active\n"
    plain = imported(workspace, cli, "again.csv", data)
    updated = imported(workspace, cli, "again.csv", data, "--update")
    assert "left as they were" in plain.out and "left as they were" in updated.out
    with store_of(workspace) as store:
        marc = store.get("marc.dubois@example.net")
        assert marc is not None and marc.status == "unsubscribed" and marc.name == "Marc D."
    added = cli("subscribers", "add", "Marc.Dubois@example.net", cwd=workspace)
    assert added.out.startswith("re-activated marc.dubois@example.net (active)")


def test_update_refreshes_known_readers_only_when_asked(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    cli("subscribers", "import", "subscribers.example.csv", cwd=workspace)
    data = b"email,lang,format\nhelene.lefevre@example.org,en,text\n"
    assert imported(workspace, cli, "u.csv", data).out.startswith("added 0, updated 0, unchanged 1")
    assert imported(workspace, cli, "u.csv", data, "--update").out.startswith(
        "added 0, updated 1, unchanged 0"
    )
    row = next(r for r in store_rows(workspace) if r[0].startswith("helene"))
    assert row[1:4] == ("Hélène Lefèvre", "en", "text")


def test_dry_run_writes_nothing(workspace: Path, cli: Callable[..., Result]) -> None:
    result = cli("subscribers", "import", "subscribers.example.csv", "--dry-run", cwd=workspace)
    assert result.out.startswith("dry run, nothing written: would have added 5")
    assert store_rows(workspace) == []


def test_export_escapes_formulas_and_round_trips(
    workspace: Path, cli: Callable[..., Result], tmp_path: Path
) -> None:
    cli("subscribers", "import", "subscribers.example.csv", cwd=workspace)
    cli(
        "subscribers",
        "add",
        "formula@example.org",
        "--name",
        '=HYPERLINK("http://evil")',
        cwd=workspace,
    )
    data = b"email,phone,note\nphone@example.org,+33 1 23 45 67 89,@risky\n"
    imported(workspace, cli, "extra.csv", data)
    cli("subscribers", "unsubscribe", "a.kowalski@example.com", cwd=workspace)

    result = cli("subscribers", "export", "list.csv", cwd=workspace)
    assert result.out.strip() == "exported 7 subscribers to list.csv"
    raw = (workspace / "list.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfemail,name,") and b"\r\n" in raw
    cells = [cell for row in csv.reader(io.StringIO(raw.decode("utf-8-sig"))) for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert '\'=HYPERLINK("http://evil")' in cells and "'+33 1 23 45 67 89" in cells

    other = tmp_path / "other"  # an empty SQLite workspace (from either store: a move between them)
    other.mkdir()
    (other / "hebdo.toml").write_text((REPO / "hebdo.toml").read_text())
    (other / "list.csv").write_bytes(raw)
    assert cli("subscribers", "import", "list.csv", cwd=other).out.startswith("added 7,")
    assert store_rows(other) == store_rows(workspace)


def test_export_to_stdout_and_by_status(workspace: Path, cli: Callable[..., Result]) -> None:
    cli("subscribers", "import", "subscribers.example.csv", cwd=workspace)
    cli("subscribers", "unsubscribe", "zoe.nguyen@example.fr", cwd=workspace)
    result = cli("subscribers", "export", "-", "--status", "unsubscribed", cwd=workspace)
    lines = result.out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith(
        "zoe.nguyen@example.fr,Zoé Nguyễn,fr,html,unsubscribed"
    )


def test_list_search_stats_and_remove(workspace: Path, cli: Callable[..., Result]) -> None:
    cli("subscribers", "import", "subscribers.example.csv", cwd=workspace)
    found = cli("subscribers", "list", "--search", "lefè", cwd=workspace)
    assert found.out.splitlines() == [
        "helene.lefevre@example.org  Hélène Lefèvre  fr  html  active"
    ]
    assert cli("subscribers", "list", "--search", "%", cwd=workspace).out == ""
    stats = cli("subscribers", "stats", cwd=workspace).out.splitlines()
    assert stats == [
        "total: 5",
        "by status: active 5",
        "by language: fr 3, en 2",
        "by format: html 4, text 1",
    ]
    assert cli("subscribers", "remove", "j.oconnor@example.org", cwd=workspace).code == 0
    missing = cli("subscribers", "remove", "j.oconnor@example.org", cwd=workspace)
    assert missing.code == 1 and "is not in the list" in missing.err
    assert len(store_rows(workspace)) == 4


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not a text file"),
        (b"nom,ville\nAnne,Lyon\n", "has no address column"),
        (
            b"email,name\n" + b"a@example.org,Anne\n" + b"b@example.org,\x81\x8d\x90\n",
            "neither UTF-8 nor Windows-1252",
        ),
        (b'email,name\n"a@example.org,Anne\n', "is not valid CSV"),
        (b"", "is empty"),
    ],
    ids=["binary", "no-address-column", "encoding", "unclosed-quote", "empty"],
)
def test_unreadable_files_give_one_line_and_leave_the_store(
    workspace: Path, cli: Callable[..., Result], data: bytes, message: str
) -> None:
    cli("subscribers", "import", "subscribers.example.csv", cwd=workspace)
    before = store_rows(workspace)
    result = imported(workspace, cli, "bad.csv", data)
    assert result.code == 1
    assert len(result.err.strip().splitlines()) == 1
    assert result.err.startswith("hebdo-mail: error: bad.csv") and message in result.err
    assert store_rows(workspace) == before


def test_repository_example_list_is_the_documented_one() -> None:
    text = (REPO / "subscribers.example.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert any(r["format"] == "text" for r in rows) and {r["lang"] for r in rows} == {"fr", "en"}


def test_a_store_error_reaches_the_terminal_as_one_line(workspace: Path) -> None:
    """A store problem raised deep in a command is printed like any user error: one line
    naming the address, exit status 1, no traceback, in a real process."""
    cli_result = run_process("subscribers", "unsubscribe", "nobody@example.org", cwd=workspace)
    assert cli_result.code == 1, "the store does not exist yet"
    run_process("subscribers", "add", "ines@example.org", cwd=workspace)
    result = run_process("subscribers", "remove", "nobody@example.org", cwd=workspace)
    assert result.code == 1 and "Traceback" not in result.err
    assert result.err.strip().splitlines() == [
        "hebdo-mail: error: nobody@example.org is not in the list; nothing was removed"
    ]
    with (
        pytest.raises(StoreError, match="not in the list"),
        store_of(workspace) as store,
    ):
        store.set_status("nobody@example.org", "unsubscribed")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "Anne\r\nBcc: victim@example.org"], "the name spans several lines"),
        (["--lang", "klingon"], "is not a language code"),
    ],
)
def test_add_refuses_values_that_could_not_be_mailed(
    workspace: Path, cli: Callable[..., Result], args: list[str], message: str
) -> None:
    result = cli("subscribers", "add", "anne@example.org", *args, cwd=workspace)
    assert result.code == 1 and message in result.err
    assert store_rows(workspace) == []
