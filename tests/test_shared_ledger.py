"""Several senders, on one issue, sharing its ledger in PostgreSQL: each recipient handed to
exactly one of them, a killed sender's recipients taken over, a restarted server survived, the
ledger read and exported from anywhere. (The single-sender guarantees run on both ledgers in
test_send.py and test_faults.py.)"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hebdo_mail.deliver.sendlog import read_log

from .helpers import (
    EXAMPLE_ISSUE,
    Result,
    append_settings,
    log_file,
    log_statuses,
    replace_in,
    request,
    serving,
    store_of,
    wait_until,
)
from .pgserver import PostgresServer
from .smtpserver import Recorder, SmtpServer, Turnstile

READERS = [f"reader{i:03d}@example.org" for i in range(120)]
SENT_COUNT = "SELECT count(*) FROM send_queue WHERE issue_id = ? AND last_event = 'sent'"


@pytest.fixture
def shared(ws: Path, postgres: PostgresServer, cli: Callable[..., Result]) -> Iterator[Path]:
    """A workspace whose store (and so whose ledger) is the test server, with its readers."""
    append_settings(
        ws,
        f'[store]\nurl = "{postgres.new_database()}"\n'
        "[send]\nlease = 2\nretry_delay = 0.01\nconcurrency = 2\n",
    )
    assert cli("store", "migrate", cwd=ws).code == 0
    (ws / "readers.csv").write_text("email\n" + "\n".join(READERS) + "\n")
    assert cli("subscribers", "import", "readers.csv", cwd=ws).code == 0
    yield ws


def start_send(ws: Path, url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hebdo_mail", "send", EXAMPLE_ISSUE, "--smtp", url, "--yes", *args],
        cwd=ws, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def statuses(ws: Path) -> dict[str, str]:
    return log_statuses(log_file(ws))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_two_senders_share_an_issue_and_a_killed_one_is_taken_over(
    shared: Path, cli: Callable[..., Result], seed: int
) -> None:
    recorder = Recorder(delay=0.01)
    with SmtpServer(recorder) as server:
        first = start_send(shared, server.url)
        second = start_send(shared, server.url)
        at = random.Random(seed).randint(5, 60)
        wait_until(lambda: len(recorder.received) >= at, what=f"{at} messages at the relay")
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)
        _, err = second.communicate(timeout=120)
        assert second.returncode in (0, 75), err
        time.sleep(0.3)  # the relay finishes what it was handed
        killed_unknown = {r for r, s in statuses(shared).items() if s == "unknown"}
        assert len(killed_unknown) <= 2 * 2  # the killed one's connections, one message each
        # What the killed sender claimed but never attempted comes back once its lease lapses.
        time.sleep(2.5)
        again = cli("send", EXAMPLE_ISSUE, "--smtp", server.url, "--yes", cwd=shared)
        assert again.code == (75 if killed_unknown else 0), again.err  # unknown are left
        time.sleep(0.3)
    counts = {r: len(c) for r, c in recorder.by_recipient().items()}
    final = statuses(shared)
    assert sorted(final) == sorted(READERS)  # nobody lost
    for reader in READERS:
        assert counts.get(reader, 0) >= 1 or final[reader] == "unknown", reader
        assert counts.get(reader, 0) <= 1 or reader in killed_unknown, (reader, counts[reader])
    status = json.loads(cli("status", EXAMPLE_ISSUE, "--json", cwd=shared).out)
    assert status["total"] == 120 and status["pending"] == 0
    assert status["sent"] + status["unknown"] == 120
    # A run line per sender that got as far as joining (the killed one may not have).
    records = [json.loads(line) for line in log_file(shared).read_text().splitlines()]
    assert sum(1 for r in records if r["event"] == "run") in (2, 3)


def test_each_recipient_goes_to_exactly_one_of_two_senders(
    shared: Path, cli: Callable[..., Result]
) -> None:
    recorder = Recorder(delay=0.05)  # slow enough for both to start before it is all sent
    with SmtpServer(recorder) as server:
        senders = [start_send(shared, server.url) for _ in range(2)]
        outputs = [process.communicate(timeout=120) for process in senders]
    assert all(process.returncode == 0 for process in senders), outputs
    assert sorted(r.rcpt for r in recorder.received) == READERS  # each exactly once
    sent = [int(out.split(" sent")[0]) for out, _ in outputs]
    assert sum(sent) == 120 and all(sent), sent  # both took a share
    assert any("all senders: 120 total, 120 sent" in out for out, _ in outputs)  # the last to end
    exported = cli("log", "export", EXAMPLE_ISSUE, "log.jsonl", cwd=shared)
    assert exported.code == 0 and "wrote 242 records" in exported.out  # 2 runs, 2 lines each
    state = read_log(shared / "log.jsonl")
    assert state.counts()["sent"] == 120 and not state.warnings


def test_a_sender_joining_leaves_alone_the_deferred_readers_another_is_retrying(
    shared: Path, cli: Callable[..., Result]
) -> None:
    """A reader the relay deferred stays with the sender that will retry them: a second sender
    joining meanwhile must not take them too (the reader would get two copies)."""
    deferred_once = set(READERS[:4])
    recorder = Recorder(
        hook=lambda stage, rcpt, count: (
            "451 4.3.0 try again later" if stage == "data" and rcpt in deferred_once and count == 1
            else None
        )
    )  # fmt: skip
    replace_in(shared / "hebdo.toml", "retry_delay = 0.01", "retry_delay = 3")
    store = store_of(shared)
    waiting_retry = "SELECT count(*) FROM send_queue WHERE state = 'deferred'"
    with SmtpServer(recorder) as server:
        first = start_send(shared, server.url)
        wait_until(
            lambda: store.db.execute(waiting_retry).fetchone()[0] == len(deferred_once),
            what="the first sender's deferred readers",
        )
        second = cli("send", EXAMPLE_ISSUE, "--smtp", server.url, "--yes", cwd=shared)
        assert second.code in (0, 75), second.err
        _, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
    store.close()
    assert sorted(r.rcpt for r in recorder.received) == READERS  # each exactly once


def test_a_sender_with_another_copy_of_the_issue_refuses_to_join(
    shared: Path, cli: Callable[..., Result]
) -> None:
    with SmtpServer(Recorder()) as server:
        first = cli(
            "send", EXAMPLE_ISSUE, "--smtp", server.url, "--yes", "--limit", "5", cwd=shared
        )
        assert first.code == 75, first.err
        article = shared / "issues" / EXAMPLE_ISSUE / "visite-kazakhstan.md"
        replace_in(article, "title: ", "title: Corrigé — ")
        refused = cli("send", EXAMPLE_ISSUE, "--smtp", server.url, "--yes", cwd=shared)
        assert refused.code == 1 and "this sender's copy differs" in refused.err
        assert "visite-kazakhstan" in refused.err
        allowed = cli(
            "send", EXAMPLE_ISSUE, "--smtp", server.url, "--yes", "--allow-changes", cwd=shared
        )
        assert allowed.code == 0, allowed.err


def test_a_restarted_server_stops_the_send_with_one_line_and_a_rerun_resumes(
    shared: Path, postgres: PostgresServer, cli: Callable[..., Result]
) -> None:
    recorder = Recorder(delay=0.02)
    with SmtpServer(recorder) as server:
        process = start_send(shared, server.url)
        wait_until(lambda: len(recorder.received) >= 10, what="10 messages at the relay")
        postgres.restart()
        _, err = process.communicate(timeout=120)
        assert process.returncode == 1, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "the store failed" in lines[0], err
        assert "run the same command again to resume" in lines[0]
        time.sleep(2.5)  # the dead run's claims lapse
        again = cli("send", EXAMPLE_ISSUE, "--smtp", server.url, "--yes", cwd=shared)
        assert again.code in (0, 75), again.err  # 75: messages in flight at the restart
        time.sleep(0.3)
    counts = {r: len(c) for r, c in recorder.by_recipient().items()}
    unknown = {r for r, s in statuses(shared).items() if s == "unknown"}
    assert set(counts) | unknown == set(READERS) and len(unknown) <= 2 * 2
    assert all(n == 1 or r in unknown for r, n in counts.items())


def test_an_unsubscribe_on_one_web_server_is_honoured_by_a_send_reading_the_other(
    shared: Path, cli: Callable[..., Result]
) -> None:
    from hebdo_mail.audience.tokens import TokenSigner
    from hebdo_mail.workspace import load_secret, load_workspace

    workspace = load_workspace(shared, explicit=True)
    token = TokenSigner(load_secret(shared)[0], workspace.settings.newsletter.list_identifier)
    link = f"/unsubscribe/{token.token(READERS[7])}"
    # Two `serve` processes on the one store, as behind a load balancer.
    with serving(shared) as first, serving(shared) as second:
        status, _ = request(
            first, "POST", link, "List-Unsubscribe=One-Click",
            {"content-type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
        assert status == 200
        status, page = request(second, "GET", link)
        assert status == 200 and "désabonn" in page.lower()  # the other sees it at once
        recorder = Recorder()
        with SmtpServer(recorder) as server:
            result = cli("send", EXAMPLE_ISSUE, "--smtp", server.url, "--yes", cwd=shared)
    assert result.code == 0, result.err
    assert READERS[7] not in {r.rcpt for r in recorder.received}
    assert len(recorder.received) == 119


def test_the_dashboard_shows_the_issue_s_totals_while_two_senders_share_it(
    shared: Path, cli: Callable[..., Result]
) -> None:
    from hebdo_mail.audience.admins import AdminAccounts

    from .test_admin_web import PASSWORD, client_of, login

    with store_of(shared) as store:
        AdminAccounts(store.db).add("marie", PASSWORD)
    client = client_of(shared)
    login(client)

    def ledger(sql: str) -> list[Any]:
        with store_of(shared) as store:
            return store.db.execute(sql, (EXAMPLE_ISSUE,)).fetchall()

    def senders_holding(state: str) -> int:
        return len(
            ledger(
                "SELECT DISTINCT claimed_by FROM send_queue WHERE issue_id = ?"
                f" AND state = '{state}' AND claimed_by IS NOT NULL"
            )
        )

    def sent() -> int:
        return int(ledger(SENT_COUNT)[0][0])

    relay = Turnstile()
    with SmtpServer(relay) as server:
        senders = [start_send(shared, server.url) for _ in range(2)]
        try:
            # Both senders mid-send: each has its messages (concurrency 2) waiting at the relay.
            wait_until(
                lambda: relay.waiting == 4 and senders_holding("attempted") == 2,
                what="both senders' messages at the relay",
            )
            relay.let_through(10)
            wait_until(lambda: sent() == 10 and relay.waiting == 4, what="10 sent, then waiting")
            shares = dict(
                ledger(
                    "SELECT claimed_by, count(*) FROM send_queue WHERE issue_id = ?"
                    " AND last_event = 'sent' GROUP BY claimed_by"
                )
            )
            assert len(shares) == 2 and all(n < 10 for n in shares.values()), shares
            status = json.loads(cli("status", EXAMPLE_ISSUE, "--json", cwd=shared).out)
            page = client.get("/admin/").text
            assert f"Sending {EXAMPLE_ISSUE} now" in page
            # The issue's totals, not one sender's share.
            done = status["sent"] + status["failed"] + status["skipped"]
            assert (status["total"], done) == (120, 10)
            assert '<progress id="progress-1" max="120" value="10">' in page
            assert "10 of 120 readers done" in page
            assert "unknown (no reply) 4 · sent 10" in page
            issues = client.get("/admin/issues").text
            assert (
                f'{EXAMPLE_ISSUE}</a></th><td class="number">120</td><td class="number">10</td>'
                in (issues)
            )
        finally:
            relay.open()
            outputs = [process.communicate(timeout=120) for process in senders]
    assert all(process.returncode == 0 for process in senders), outputs
    page = client.get("/admin/").text
    assert "<progress" not in page and 'http-equiv="refresh"' not in page
    assert (
        f'<a href="/admin/issues/{EXAMPLE_ISSUE}">{EXAMPLE_ISSUE}</a></th><td class="number">120</td>'
        in page
    )


def test_renewing_the_leases_never_waits_for_a_row_the_event_writer_holds(
    postgres: PostgresServer,
) -> None:
    """The writer's trigger locks the rows it records, in an order of its own: a renewal that
    waited for them could deadlock with it (two rows, each side holding one)."""
    import threading

    import psycopg

    from hebdo_mail.audience.postgres import PostgresDatabase
    from hebdo_mail.audience.schema import MIGRATIONS
    from hebdo_mail.deliver.pgledger import SharedLedger

    url = postgres.new_database()
    PostgresDatabase(url, migrations=MIGRATIONS, migrate=True).close()
    ledger = SharedLedger(url, "2026-01", lease=30)
    renewed = "SELECT recipient FROM send_queue WHERE lease_until > now() + interval '20 seconds'"
    with psycopg.connect(url, autocommit=True) as setup:
        for position, recipient in enumerate(["a@example.org", "b@example.org", "c@example.org"]):
            setup.execute(
                "INSERT INTO send_queue (issue_id, recipient, position, email, state, claimed_by,"
                " lease_until) VALUES ('2026-01', %s, %s, %s, 'attempted', %s, now())",
                (recipient, position, recipient, ledger.me),
            )
    with (
        psycopg.connect(url) as writer,  # as the event writer's statement holds its rows
        psycopg.connect(url, autocommit=True) as check,
    ):
        writer.execute(
            "UPDATE send_queue SET last_event = 'attempt' WHERE recipient = 'a@example.org'"
        )
        renewal = threading.Thread(target=ledger._renew_once, args=(ledger.db,))
        renewal.start()
        wait_until(
            lambda: len(check.execute(renewed).fetchall()) == 2, what="the free rows renewed"
        )
        # The writer goes on to a row the renewal passed: it must not wait (no deadlock).
        writer.execute(
            "UPDATE send_queue SET last_event = 'sent' WHERE recipient = 'b@example.org'"
        )
        assert renewal.is_alive()  # the held row is not renewed yet: the renewal comes back for it
        writer.commit()
        renewal.join(timeout=10)
        assert not renewal.is_alive()
        assert len(check.execute(renewed).fetchall()) == 3
    ledger.close()
