"""Readers who leave while a send runs: honoured for everyone not yet handed to the relay, and
every reader the run counted ends with a line in the log."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from hebdo_mail.audience.store import SubscriberStore

from .helpers import EXAMPLE_ISSUE, Result, wait_until
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
