"""The dashboard's records in the store, on SQLite and PostgreSQL: password hashing, sessions and
their expiry, the failed-login throttle, the audit log, each reader's status history, erasure,
and the index of the send logs."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hebdo_mail.audience.admin_sessions import AdminSessions, token_digest
from hebdo_mail.audience.admins import (
    AdminAccounts,
    AdminError,
    LoginThrottle,
    hash_password,
    password_matches,
)
from hebdo_mail.audience.audit import AuditLog
from hebdo_mail.audience.erasure import address_digest, erase_reader
from hebdo_mail.deliver.delivery_index import catch_up, deliveries_of, progress
from hebdo_mail.deliver.delivery_records import RUNNING, TIMED
from hebdo_mail.deliver.ledger import delivery_records
from hebdo_mail.workspace import load_workspace

from .helpers import BOTH_STORES, EXAMPLE_ISSUE, SQLITE_ONLY, Result, log_file, store_of
from .smtpserver import Recorder, SmtpServer

pytestmark = BOTH_STORES
PASSWORD = "correct horse battery"


def test_passwords_are_hashed_with_argon2id_and_checked() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert hash_password(PASSWORD) != stored  # salted
    assert password_matches(stored, PASSWORD)
    assert not password_matches(stored, PASSWORD + " ")
    assert not password_matches("not a hash", PASSWORD)
    with pytest.raises(AdminError, match="too short"):
        hash_password("short")


def test_accounts_check_names_and_passwords(workspace: Path) -> None:
    with store_of(workspace) as store:
        accounts = AdminAccounts(store.db)
        accounts.add("marie", PASSWORD)
        with pytest.raises(AdminError, match="already an admin named 'marie'"):
            accounts.add("marie", PASSWORD)
        with pytest.raises(AdminError, match="not an admin name"):
            accounts.add("marie dupont", PASSWORD)
        assert accounts.check("marie", PASSWORD)
        assert not accounts.check("marie", "wrong password!")
        assert not accounts.check("nobody", PASSWORD)
        stored = store.db.execute("SELECT password_hash FROM admin_accounts").fetchone()[0]
        assert stored.startswith("$argon2id$") and PASSWORD not in stored
        assert [a.name for a in accounts.all()] == ["marie"]
        accounts.remove("marie")
        assert not accounts.check("marie", PASSWORD)
        with pytest.raises(AdminError, match="no admin named 'marie'"):
            accounts.remove("marie")


def test_a_session_ends_after_inactivity_its_lifetime_a_logout_or_a_new_password(
    workspace: Path,
) -> None:
    with store_of(workspace) as store:
        AdminAccounts(store.db).add("marie", PASSWORD)
        sessions = AdminSessions(store.db, idle=1800, lifetime=43200)
        token = sessions.open("marie", "127.0.0.1", at=1000.0)
        stored = store.db.execute("SELECT token_digest FROM admin_sessions").fetchone()[0]
        assert stored == token_digest(token) and token not in stored  # the cookie is not kept
        # Used every 25 minutes: alive, each request moving its last use on.
        for minute in (25, 50, 75, 100):
            found = sessions.find(token, at=1000.0 + minute * 60)
            assert found is not None and found.account == "marie"
        # 31 minutes without a request: ended, and gone for good.
        assert sessions.find(token, at=1000.0 + 131 * 60) is None
        assert sessions.find(token, at=1000.0 + 100 * 60) is None
        # However busy, a session lasts twelve hours at most.
        busy = sessions.open("marie", "127.0.0.1", at=0.0)
        moment = 0.0
        while moment < 43200 - 1200:
            moment += 1200
            assert sessions.find(busy, at=moment) is not None
        assert sessions.find(busy, at=43200 + 1.0) is None
        # Logout, and a new password, end sessions.
        logged_out = sessions.open("marie", "127.0.0.1")
        sessions.close(logged_out)
        assert sessions.find(logged_out) is None
        other = sessions.open("marie", "127.0.0.1")
        AdminAccounts(store.db).set_password("marie", "another long password")
        assert sessions.find(other) is None
        assert sessions.find("made-up token") is None


def test_ten_failures_for_an_account_or_from_a_client_block_further_attempts(
    workspace: Path,
) -> None:
    with store_of(workspace) as store:
        throttle = LoginThrottle(store.db, limit=10, window=900)
        for n in range(9):
            throttle.failed(["account:marie", f"client:10.0.0.{n}"], at=100.0 + n)
        assert not throttle.blocked(["account:marie", "client:10.0.0.99"], at=110.0)
        throttle.failed(["account:marie", "client:10.0.0.50"], at=110.0)
        assert throttle.blocked(["account:marie", "client:10.0.0.99"], at=111.0)
        assert not throttle.blocked(["account:paul", "client:10.0.0.99"], at=111.0)
        # From one client, whatever the names tried.
        for n in range(10):
            throttle.failed([f"account:guess{n}", "client:192.0.2.7"], at=200.0)
        assert throttle.blocked(["account:anyone", "client:192.0.2.7"], at=201.0)
        # For a while only: once the failures are older than the window, attempts go through.
        assert not throttle.blocked(["account:marie", "client:192.0.2.7"], at=200.0 + 901)
        throttle.succeeded("account:marie")
        assert not throttle.blocked(["account:marie"], at=150.0)


def test_the_audit_log_lists_who_did_what_newest_first(
    workspace: Path, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", _Lines(PASSWORD))
    assert cli("admin", "add", "marie", "--password-stdin", cwd=workspace).code == 0
    with store_of(workspace) as store:
        log = AuditLog(store.db)
        log.record("marie", "unsubscribe", target="a@example.org", client="192.0.2.1")
        log.record("marie", "logout", client="192.0.2.1")
        entries = log.latest()
        assert [e.action for e in entries] == ["logout", "unsubscribe", "admin-add"]
        assert entries[1].target == "a@example.org" and entries[1].client == "192.0.2.1"
        assert entries[2].account.startswith("cli") and entries[2].target == "marie"
        assert entries[0].done_at[:4].isdigit()
        assert log.count() == 3
        assert [e.action for e in log.latest(offset=1, limit=1)] == ["unsubscribe"]
        assert PASSWORD not in json.dumps([list(vars(e).values()) for e in entries])


def test_status_changes_are_recorded_by_every_way_a_status_changes(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    assert cli("subscribers", "import", "subscribers.example.csv", cwd=workspace).code == 0
    address = "marc.dubois@example.net"
    with store_of(workspace) as store:
        store.set_status(address, "unsubscribed", source="admin:marie")
        store.add(address, source="cli")
        for n in range(3):  # a hard bounce a day, three days running
            day = dt.date.today() - dt.timedelta(days=n)
            store.bounces.record(address, "hard", "550 no such user", source=f"b{n}", day=day)
        key = address
        changes = [(c.old_status, c.new_status, c.source) for c in store.history.of(key)]
        weekly = store.history.weekly(2)
    assert changes[0] == (None, "active", "import:subscribers.example.csv")
    assert changes[1:] == [
        ("active", "unsubscribed", "admin:marie"),
        ("unsubscribed", "active", "cli"),
        ("active", "bounced", "bounces"),
    ]
    this_week = weekly[-1]
    assert (this_week.joined, this_week.unsubscribed, this_week.bounced) == (5, 1, 1)
    assert weekly[0].joined == 0


def test_a_dry_run_import_records_no_history(workspace: Path, cli: Callable[..., Result]) -> None:
    assert cli("subscribers", "import", "--dry-run", "subscribers.example.csv", cwd=workspace)
    with store_of(workspace) as store:
        count = store.db.execute("SELECT count(*) FROM status_changes").fetchone()[0]
    assert count == 0


def test_erasing_removes_the_reader_and_keeps_a_digest_that_imports_respect(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    assert cli("subscribers", "import", "subscribers.example.csv", cwd=workspace).code == 0
    address = "marc.dubois@example.net"
    with store_of(workspace) as store:
        store.bounces.record(address, "soft", "452 mailbox full", source="bounce-1")
        AuditLog(store.db).record("marie", "unsubscribe", target=address)
        records = delivery_records(load_workspace(workspace, explicit=True), store.db)
        erased = erase_reader(store, address, "2026-11-28T10:00:00+00:00", records.forget)
        assert erased.rows["subscribers"] == 1 and erased.rows["bounce_events"] == 1
        assert store.get(address) is None
        for table in ("subscribers", "bounce_events", "status_changes"):
            left = store.db.execute(
                f"SELECT count(*) FROM {table} WHERE email_key = ?", (address,)
            ).fetchone()[0]
            assert left == 0, table
        # The history stays counted, tied to nobody; the audit log no longer names them.
        assert store.db.execute(
            "SELECT count(*) FROM status_changes WHERE email_key = ''"
        ).fetchone()[0]
        targets = [row[0] for row in store.db.execute("SELECT target FROM admin_audit")]
        assert address not in targets
        digest = store.db.execute("SELECT digest FROM erased_addresses").fetchone()[0]
        assert digest == address_digest(address) and "dubois" not in digest
    again = cli("subscribers", "import", "subscribers.example.csv", cwd=workspace)
    assert again.code == 0
    assert (
        "subscribers.example.csv:3: marc.dubois@example.net: erased at the reader's request on 2026-11-28"
        in again.err
    )
    assert "added 0" in again.out and "rejected 1" in again.out
    with store_of(workspace) as store:
        assert store.get(address) is None
    # An explicit add is a new consent: the reader is back, and so are later imports.
    assert cli("subscribers", "add", address, cwd=workspace).code == 0
    with store_of(workspace) as store:
        assert store.db.execute("SELECT count(*) FROM erased_addresses").fetchone()[0] == 0


def refusing(address: str) -> Callable[[str, str, int], str | None]:
    """A relay hook refusing one recipient, naming it in the reply as relays do."""

    def hook(stage: str, rcpt: str, count: int) -> str | None:
        if stage == "rcpt" and rcpt == address:
            return f"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"
        return None

    return hook


def test_the_records_of_the_sends_follow_a_send_as_it_goes(
    ws: Path, cli: Callable[..., Result]
) -> None:
    """What the dashboard reads of the sends, from the file logs' index or the shared ledger's
    tables alike: progress, the issues, a send running, a reader's deliveries, the messages per
    minute and the failures."""
    assert cli("subscribers", "import", "subscribers.example.csv", cwd=ws).code == 0
    workspace = load_workspace(ws, explicit=True)
    refused = "zoe.nguyen@example.fr"  # the last of the list: mailed by the second run
    with SmtpServer(Recorder(hook=refusing(refused))) as server:
        send = ("send", EXAMPLE_ISSUE, "--smtp", server.url, "--yes")
        first = cli(*send, "--limit", "2", cwd=ws)
        assert first.code == 75, first.err
        with store_of(ws) as store:
            records = delivery_records(workspace, store.db)
            records.refresh()
            started = records.progress(EXAMPLE_ISSUE)
            assert started is not None and (started.total, started.done) == (5, 2)
            assert started.counts == {"sent": 2}
            records.refresh()  # nothing new: nothing changes
            assert records.progress(EXAMPLE_ISSUE) == started
            assert records.issues() == [started]
            assert records.progress("2006-49") is None
            # Written to a moment ago with readers left: running, until it has been quiet a while.
            assert records.running() == [started]
            assert records.running(at=time.time() + RUNNING + 1) == []
        second = cli(*send, cwd=ws)
        assert second.code == 0, second.err
    status = json.loads(cli("status", EXAMPLE_ISSUE, "--json", cwd=ws).out)
    with store_of(ws) as store:
        records = delivery_records(workspace, store.db)
        records.refresh()
        done = records.progress(EXAMPLE_ISSUE)
        assert done is not None and (done.total, done.done) == (status["total"], 5)
        assert done.counts == {"sent": 4, "failed": 1} and status["failed"] == 1
        assert records.running() == []
        marc = records.of_reader("marc.dubois@example.net")
        assert [(d.issue, d.event, d.code) for d in marc] == [(EXAMPLE_ISSUE, "sent", 250)]
        assert marc[0].edition == "fr/text" and marc[0].reply  # his format is text
        (zoe,) = records.of_reader(refused)
        assert (zoe.event, zoe.code) == ("failed", 550) and refused in zoe.reply
        assert records.of_reader("nobody@example.org") == []
        minutes = records.per_minute(EXAMPLE_ISSUE)
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d", minute) for minute, _ in minutes)
        by_event = {event: sum(n for (_, e), n in minutes.items() if e == event) for event in TIMED}
        assert by_event == {"sent": 4, "deferred": 0, "failed": 1}
        assert records.final_failures(EXAMPLE_ISSUE) == [
            f"550 5.1.1 <{refused}>: Recipient address rejected: User unknown"
        ]


@SQLITE_ONLY  # the file log's own: a log replaced by another
def test_the_index_reads_a_replaced_log_again_from_its_start(
    ws: Path, cli: Callable[..., Result]
) -> None:
    assert cli("subscribers", "import", "subscribers.example.csv", cwd=ws).code == 0
    assert cli("send", EXAMPLE_ISSUE, cwd=ws).code == 0
    workspace = load_workspace(ws, explicit=True)
    log = ws / "logs" / f"{EXAMPLE_ISSUE}.jsonl"
    with store_of(ws) as store:
        catch_up(workspace, store.db)
        assert len(deliveries_of(store.db, "marc.dubois@example.net")) == 1
        read_to = store.db.execute("SELECT read_to FROM delivery_logs").fetchone()[0]
        assert read_to == log.stat().st_size
    # A restored backup: read again from its start.
    lines = log.read_text().splitlines()
    kept = [line.replace('"total":5', '"total":4') for line in lines if "marc.dubois" not in line]
    log.write_text("\n".join(kept) + "\n")
    with store_of(ws) as store:
        catch_up(workspace, store.db)
        assert deliveries_of(store.db, "marc.dubois@example.net") == []
        again = progress(store.db, EXAMPLE_ISSUE)
        assert again is not None and again.total == 4


def test_erasing_a_reader_says_what_became_of_the_record_of_the_sends(
    ws: Path, cli: Callable[..., Result]
) -> None:
    """The file logs are append-only and keep the address (the page says which); the shared
    ledger no longer names the reader: their rows stay counted under a name that is nobody's
    where a message was tried, and go where none was. The issue's figures stay true."""
    assert cli("subscribers", "import", "subscribers.example.csv", cwd=ws).code == 0
    workspace = load_workspace(ws, explicit=True)
    shared = workspace.store_url is not None
    tried, never = "helene.lefevre@example.org", "zoe.nguyen@example.fr"  # first, last
    recorder = Recorder(hook=refusing(tried))
    with SmtpServer(recorder) as server:
        send = ("send", EXAMPLE_ISSUE, "--smtp", server.url, "--yes")
        assert cli(*send, "--limit", "2", cwd=ws).code == 75
        before = json.loads(cli("report", EXAMPLE_ISSUE, "--json", cwd=ws).out)
        assert (before["failed"], before["pending"]) == (1, 3)
        with store_of(ws) as store:
            records = delivery_records(workspace, store.db)
            records.refresh()
            stamp = "2026-11-28T10:00:00+00:00"
            first = erase_reader(store, tried, stamp, records.forget)
            second = erase_reader(store, never, stamp, records.forget)
            assert records.of_reader(tried) == records.of_reader(never) == []
        assert first.sends.issues == [EXAMPLE_ISSUE] and first.sends.rewritten is shared
        after = json.loads(cli("report", EXAMPLE_ISSUE, "--json", cwd=ws).out)
        exported = log_file(ws).read_text()
        if shared:
            # The queue named the reader not mailed yet too: skipped now, as one who left.
            assert second.sends.issues == [EXAMPLE_ISSUE]
            assert first.sends.rows == {"send_queue": 1, "send_events": 1}  # the refusal
            assert second.sends.rows == {"send_queue": 1, "send_events": 0}
            assert (after["pending"], after["skipped"]) == (2, before["skipped"] + 1)
            assert after["failures"] == [
                {"domain": "erased.invalid", "count": 1,
                 "reply": "550 5.1.1 <address>: Recipient address rejected: User unknown"},
            ]  # fmt: skip
            for name in ("helene", "zoe"):
                assert name not in exported
            with store_of(ws) as store:
                for table, column in (("send_queue", "email"), ("send_events", "reply")):
                    named = store.db.execute(
                        f"SELECT count(*) FROM {table} WHERE {column} LIKE '%helene%'"
                    ).fetchone()[0]
                    assert named == 0, table
        else:
            assert second.sends.issues == [] and second.sends.rows == {}
            assert tried in exported  # what was recorded stays
            assert after["pending"] == before["pending"]
        assert after["total"] == before["total"]
        assert json.loads(cli("status", EXAMPLE_ISSUE, "--json", cwd=ws).out)["total"] == 5
        for key in ("sent", "failed", "unknown"):
            assert after[key] == before[key], key
        # Bounce processing sweeps the sends' refusals: an erased reader's comes back as nothing.
        for sub in ("new", "cur", "tmp"):
            (ws / "Bounces" / sub).mkdir(parents=True)
        assert cli("bounces", "process", "Bounces", cwd=ws).code == 0
        with store_of(ws) as store:
            assert store.get(tried) is None
            for table in ("bounce_events", "sender_events"):
                count = f"SELECT count(*) FROM {table} WHERE email_key = ?"
                assert store.db.execute(count, (tried,)).fetchone()[0] == 0, table
        # The send resumes with the readers left; neither erased reader is mailed.
        resumed = cli(*send, cwd=ws)
        assert resumed.code == 0, resumed.err
    mailed = [item.rcpt for item in recorder.received]
    assert never not in mailed and tried not in mailed
    assert sorted(mailed) == sorted(
        ["marc.dubois@example.net", "a.kowalski@example.com", "j.oconnor@example.org"]
    )
    status = json.loads(cli("status", EXAMPLE_ISSUE, "--json", cwd=ws).out)
    assert (status["pending"], status["sent"], status["failed"]) == (0, 3, 1)


class _Lines:
    """Standard input holding one line."""

    def __init__(self, line: str) -> None:
        self.lines = [line + "\n"]

    def readline(self) -> str:
        return self.lines.pop(0) if self.lines else ""

    def isatty(self) -> bool:
        return False
