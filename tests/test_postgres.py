"""The store on a PostgreSQL server: migrations run on request and checked at start, `store copy`
both ways, one-line errors for a server that is missing, restarting or misconfigured. (The
store's behaviour itself runs on both backends in test_subscribers, test_send, test_web…)"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hebdo_mail.audience.postgres import PostgresDatabase
from hebdo_mail.audience.schema import MIGRATIONS
from hebdo_mail.audience.store import SubscriberStore

from .helpers import REPO, Result, append_settings, store_of
from .pgserver import PostgresServer, free_port


@pytest.fixture
def pg_workspace(ws: Path, postgres: PostgresServer) -> Iterator[Path]:
    """The example workspace on a new, empty database of the test server (not migrated)."""
    append_settings(ws, f'[store]\nurl = "{postgres.new_database()}"\n')
    yield ws


def rows(workspace: Path) -> list[tuple[str, str, str, float]]:
    with store_of(workspace) as store:
        return [(s.email, s.status, s.name, s.bounce_score) for s in store.iter_subscribers()]


def test_a_new_server_needs_migrate_then_works(
    pg_workspace: Path, cli: Callable[..., Result]
) -> None:
    refused = cli("subscribers", "list", cwd=pg_workspace)
    assert refused.code == 1 and len(refused.err.strip().splitlines()) == 1
    assert re.search(
        r"127\.0\.0\.1:\d+/test_\d+: has no hebdo-mail schema yet, older than this "
        r"hebdo-mail's \d+; run `hebdo-mail store migrate`",
        refused.err,
    ), refused.err
    migrated = cli("store", "migrate", cwd=pg_workspace)
    assert migrated.code == 0 and f"schema {len(MIGRATIONS)}, up to date" in migrated.out
    assert cli("store", "migrate", cwd=pg_workspace).code == 0  # a second time changes nothing
    assert cli("subscribers", "import", "subscribers.example.csv", cwd=pg_workspace).code == 0
    assert len(rows(pg_workspace)) == 5


def test_an_older_schema_is_one_line_saying_to_migrate(
    pg_workspace: Path, postgres: PostgresServer, cli: Callable[..., Result]
) -> None:
    url = re.search(r'\nurl = "(postgresql://[^"]*)"', (pg_workspace / "hebdo.toml").read_text())
    assert url
    PostgresDatabase(url.group(1), migrations=MIGRATIONS[:1], migrate=True).close()
    result = cli("subscribers", "stats", cwd=pg_workspace)
    assert result.code == 1
    assert f"holds schema 1, older than this hebdo-mail's {len(MIGRATIONS)}" in result.err
    assert cli("store", "migrate", cwd=pg_workspace).code == 0
    assert cli("subscribers", "stats", cwd=pg_workspace).code == 0


def test_store_copy_moves_everything_both_ways(
    ws: Path, postgres: PostgresServer, cli: Callable[..., Result], tmp_path: Path
) -> None:
    cli("subscribers", "import", "subscribers.example.csv", cwd=ws)
    cli("subscribers", "unsubscribe", "zoe.nguyen@example.fr", cwd=ws)
    with store_of(ws) as store:
        store.bounces.record("marc.dubois@example.net", "hard", "550 5.1.1", source="a")
    before = rows(ws)

    url = postgres.new_database()
    to_server = cli("store", "copy", "--to", url, cwd=ws)
    assert to_server.code == 0, to_server.err
    assert "in one transaction: 5 subscribers, 1 bounce events" in to_server.out
    append_settings(ws, f'[store]\nurl = "{url}"\n')
    assert rows(ws) == before
    added = cli("subscribers", "add", "new.reader@example.org", cwd=ws)  # ids go on after the copy
    assert added.code == 0, added.err

    again = cli("store", "copy", "--to", url, cwd=ws)
    assert again.code == 1 and "is the store being copied" in again.err
    back = tmp_path / "back.db"
    assert cli("store", "copy", "--to", str(back), cwd=ws).code == 0
    with SubscriberStore.at(back) as copy:
        assert [(s.email, s.status) for s in copy.iter_subscribers()] == [
            (s[0], s[1]) for s in rows(ws)
        ]
        assert copy.bounces.report()[0].email == "marc.dubois@example.net"
    into_full = cli("store", "copy", "--to", str(back), cwd=ws)
    assert into_full.code == 1 and "already holds subscribers; copy into a new" in into_full.err


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('url = "postgresql://hebdo:s3cret@db.example.org/hebdo"', "must not hold a password"),
        ('url = "mysql://db.example.org/hebdo"', "is not a URL like 'postgresql://"),
    ],
)
def test_a_bad_store_url_is_one_line(
    ws: Path, cli: Callable[..., Result], setting: str, message: str
) -> None:
    append_settings(ws, f"[store]\n{setting}\n")
    result = cli("subscribers", "list", cwd=ws)
    assert result.code == 1 and message in result.err and "s3cret" not in result.err
    assert result.err.startswith("hebdo-mail: error: hebdo.toml:")


def test_an_unreachable_server_is_one_line_naming_it(
    ws: Path, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("HEBDO_STORE_URL", f"postgresql://hebdo@127.0.0.1:{port}/hebdo")
    result = cli("subscribers", "list", cwd=ws)
    assert result.code == 1 and "Traceback" not in result.err
    assert f"127.0.0.1:{port}/hebdo: cannot connect to the store" in result.err


def test_a_restarted_server_fails_one_line_then_works_again(
    pg_workspace: Path, postgres: PostgresServer, cli: Callable[..., Result]
) -> None:
    cli("store", "migrate", cwd=pg_workspace)
    cli("subscribers", "import", "subscribers.example.csv", cwd=pg_workspace)
    store = store_of(pg_workspace)
    try:
        postgres.restart()
        with pytest.raises(Exception, match="the store failed") as failure:
            store.count()
        assert "\n" not in str(failure.value) and "run the same command again" in str(failure.value)
    finally:
        store.close()
    assert len(rows(pg_workspace)) == 5  # a new connection after the restart


def test_the_repository_workspace_stays_on_sqlite() -> None:
    assert "[store]" not in (REPO / "hebdo.toml").read_text()


def test_store_copy_moves_the_issue_tallies(
    ws: Path, postgres: PostgresServer, cli: Callable[..., Result], tmp_path: Path
) -> None:
    cli("subscribers", "import", "subscribers.example.csv", cwd=ws)
    with store_of(ws) as store:
        store.tallies.add_clicks("2006-50", {(1, "https://www.nato.int/pfp/"): 4})
        store.mark_unsubscribed("zoe.nguyen@example.fr", source="web", issue_id="2006-50")
    url = postgres.new_database()
    copied = cli("store", "copy", "--to", url, cwd=ws)
    assert "1 link clicks, 1 unsubscribe events" in copied.out, copied.out
    append_settings(ws, f'[store]\nurl = "{url}"\n')
    with store_of(ws) as server:
        server.tallies.add_clicks("2006-50", {(1, "https://www.nato.int/pfp/"): 1})
        assert [(c.link, c.clicks) for c in server.tallies.clicks("2006-50")] == [(1, 5)]
        assert server.tallies.unsubscribes("2006-50") == 1
