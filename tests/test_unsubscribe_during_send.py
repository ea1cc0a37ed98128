"""Readers who leave while a send runs: honoured for everyone not yet handed to the relay, and
every reader the run counted ends with a line in the log."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from hebdo_mail.audience.store import SubscriberStore

from .helpers import (
    BOTH_STORES,
    EXAMPLE_ISSUE,
    Result,
    append_settings,
    log_file,
    store_of,
    wait_until,
)
from .smtpserver import DEADLINE, Gate, Recorder, SmtpServer


def reader(i: int) -> str:
    return f"reader{i:04d}@example.org"


def fill_store(ws: Path, cli: Callable[..., Result], count: int) -> None:
    rows = [f"{reader(i)},Reader {i}" for i in range(count)]
    (ws / "list.csv").write_text("email,name\n" + "\n".join(rows) + "\n")
    assert cli("subscribers", "import", "list.csv", cwd=ws).code == 0


def start_send(ws: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hebdo_mail", "send", EXAMPLE_ISSUE, "--yes", *args],
        cwd=ws, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def status(cli: Callable[..., Result], ws: Path) -> dict[str, int]:
    return json.loads(cli("status", EXAMPLE_ISSUE, "--json", cwd=ws).out)  # type: ignore[no-any-return]


def test_readers_who_leave_before_their_batch_is_read_are_logged_skipped(
    ws: Path, cli: Callable[..., Result]
) -> None:
    # The store is read 1,000 readers at a time: the last 100 are read long after the first
    # message, which the relay holds until they have left.
    fill_store(ws, cli, 1100)
    leaving = [reader(i) for i in range(1050, 1070)]
    gate = Gate()
    recorder = Recorder(hook=gate)
    with SmtpServer(recorder) as server:
        process = start_send(ws, "--smtp", server.url, "--concurrency", "2")
        try:
            wait_until(gate.reached.is_set, what="the first message")
            with SubscriberStore.at(ws / "hebdo.db") as store:
                for address in leaving:
                    store.mark_unsubscribed(address, source="test")
        finally:
            gate.opened.set()
        out, err = process.communicate(timeout=DEADLINE * 4)
    assert process.returncode == 0, err
    assert out.startswith("1080 sent, 0 deferred, 0 failed, 20 skipped, 0 unknown")
    assert not set(leaving) & {r.rcpt for r in recorder.received}
    assert status(cli, ws) == {
        "total": 1100, "sent": 1080, "deferred": 0, "failed": 0, "skipped": 20, "unknown": 0,
        "pending": 0,
    }  # fmt: skip


def leave(ws: Path, *addresses: str) -> None:
    """What `subscribers unsubscribe` does, committed from the relay's thread."""
    with store_of(ws) as store:
        for address in addresses:
            store.set_status(address, "unsubscribed")


def skipped(ws: Path) -> dict[str, str]:
    lines = log_file(ws).read_text().splitlines()
    events = [json.loads(line) for line in lines]
    return {e["recipient"]: e["reply"] for e in events if e["event"] == "skipped"}


def test_with_a_slow_rate_no_reader_is_mailed_after_leaving(
    ws: Path, cli: Callable[..., Result]
) -> None:
    """Every worker holds a message while it waits for its turn under --rate: the store is asked
    after the wait, not before."""
    fill_store(ws, cli, 8)
    everyone = {reader(i) for i in range(8)}
    leaving: list[str] = []

    def on_first_message(stage: str, rcpt: str, count: int) -> None:
        if stage == "data" and not leaving:  # the first message is out: three others leave
            leaving.extend(sorted(everyone - {rcpt})[-3:])
            leave(ws, *leaving)

    recorder = Recorder(hook=on_first_message)
    with SmtpServer(recorder) as server:
        result = cli(
            "send", EXAMPLE_ISSUE, "--smtp", server.url, "--yes", "--rate", "2",
            "--concurrency", "10", cwd=ws,
        )  # fmt: skip
    assert result.code == 0, result.err
    assert result.out.startswith("5 sent, 0 deferred, 0 failed, 3 skipped, 0 unknown")
    assert not set(leaving) & {r.rcpt for r in recorder.received}
    assert skipped(ws) == dict.fromkeys(leaving, "unsubscribed")
    assert status(cli, ws)["pending"] == 0


@BOTH_STORES
def test_a_reader_who_leaves_while_the_relay_reads_the_envelope_is_not_mailed(
    ws: Path, cli: Callable[..., Result]
) -> None:
    """The last word comes just before the content: committed between the batch's first
    command and that message's DATA, an unsubscribe still holds the message back (on the shared
    ledger, read by the statement that commits the attempt)."""
    fill_store(ws, cli, 10)
    leaving = reader(3)  # in the middle of a pipelined batch of eight

    def on_rcpt(stage: str, rcpt: str, count: int) -> None:
        if stage == "rcpt" and rcpt == leaving:
            leave(ws, leaving)  # committed before the relay answers RCPT

    recorder = Recorder(hook=on_rcpt)
    with SmtpServer(recorder) as server:
        result = cli(
            "send", EXAMPLE_ISSUE, "--smtp", server.url, "--yes", "--concurrency", "1", cwd=ws
        )
    assert result.code == 0, result.err
    assert result.out.startswith("9 sent, 0 deferred, 0 failed, 1 skipped, 0 unknown")
    counts = {r: len(c) for r, c in recorder.by_recipient().items()}
    assert counts == {reader(i): 1 for i in range(10) if reader(i) != leaving}
    assert skipped(ws) == {leaving: "unsubscribed"}


def test_a_reader_who_leaves_during_a_retry_backoff_is_not_tried_again(
    ws: Path, cli: Callable[..., Result]
) -> None:
    append_settings(ws, "[send]\nretry_delay = 0.05\nattempts = 3\n")
    fill_store(ws, cli, 3)
    leaving = reader(1)

    def greylist_then_leave(stage: str, rcpt: str, count: int) -> str | None:
        if stage == "rcpt" and rcpt == leaving:
            leave(ws, leaving)
            return "451 4.7.1 greylisted, try again later"
        return None

    recorder = Recorder(hook=greylist_then_leave)
    with SmtpServer(recorder) as server:
        result = cli("send", EXAMPLE_ISSUE, "--smtp", server.url, "--yes", cwd=ws)
    assert result.code == 0, result.err
    assert result.out.startswith("2 sent, 0 deferred, 0 failed, 1 skipped, 0 unknown")
    assert recorder.seen[("rcpt", leaving)] == 1 and leaving not in recorder.by_recipient()
    assert skipped(ws) == {leaving: "unsubscribed"}
