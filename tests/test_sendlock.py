"""Two operators, one issue: a send holds the issue for its whole run, a second one is refused at
once naming the first, `status` keeps working meanwhile, and a killed holder never blocks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from hebdo_mail.deliver.issuelock import IssueBusy, IssueLock

from .helpers import EXAMPLE_ISSUE, Result, run_process, wait_until
from .smtpserver import DEADLINE, Gate, Recorder, SmtpServer

READERS = 40


@pytest.fixture
def ws(ws: Path, cli: Callable[..., Result]) -> Path:
    """The example workspace with its secret and a store of READERS readers."""
    rows = [f"reader{i:03d}@example.org,Reader {i}" for i in range(READERS)]
    (ws / "list.csv").write_text("email,name\n" + "\n".join(rows) + "\n")
    assert cli("subscribers", "import", "list.csv", cwd=ws).code == 0
    return ws


def start_send(ws: Path, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hebdo_mail", "send", EXAMPLE_ISSUE, "--smtp", url, "--yes",
         "--concurrency", "2"],
        cwd=ws, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_a_second_send_is_refused_at_once_naming_the_first_and_status_still_works(
    ws: Path, cli: Callable[..., Result]
) -> None:
    gate = Gate()
    recorder = Recorder(hook=gate)
    with SmtpServer(recorder) as server:
        first = start_send(ws, server.url)
        try:
            wait_until(gate.reached.is_set, what="the first send to reach the relay")
            second = run_process("send", EXAMPLE_ISSUE, "--smtp", server.url, "--yes", cwd=ws)
            resend = run_process(
                "send", EXAMPLE_ISSUE, "--smtp", server.url, "--yes", "--resend-unknown", cwd=ws
            )
            during = cli("status", EXAMPLE_ISSUE, "--json", cwd=ws)
            assert first.poll() is None, "the first send was still running throughout"
        finally:
            gate.opened.set()
        _, err = first.communicate(timeout=DEADLINE)
    assert first.returncode == 0, err
    for refused in (second, resend):
        assert refused.code == 1
        lines = refused.err.strip().splitlines()
        assert len(lines) == 1, refused.err
        assert lines[0].startswith(
            f"hebdo-mail: error: logs/{EXAMPLE_ISSUE}.lock: issue {EXAMPLE_ISSUE} is being sent by "
            f"PID {first.pid} on host {socket.gethostname()} since "
        )
        assert f"`hebdo-mail status {EXAMPLE_ISSUE}`" in lines[0]
    assert during.code == 0 and json.loads(during.out)["total"] == READERS
    assert {r: len(c) for r, c in recorder.by_recipient().items()} == {
        f"reader{i:03d}@example.org": 1 for i in range(READERS)
    }
    assert json.loads(cli("status", EXAMPLE_ISSUE, "--json", cwd=ws).out)["sent"] == READERS


def test_two_sends_started_together_mail_each_reader_once(ws: Path) -> None:
    gate = Gate()
    recorder = Recorder(hook=gate)
    with SmtpServer(recorder) as server:
        sends = [start_send(ws, server.url) for _ in range(2)]
        try:
            # The one refused ends on its own; without a lock both would wait at the gate.
            wait_until(
                lambda: any(p.poll() is not None for p in sends), what="one send to be refused"
            )
        finally:
            gate.opened.set()
        results = [(p.wait(DEADLINE), p.communicate()[1]) for p in sends]
    assert sorted(code for code, _ in results) == [0, 1], results
    assert "is being sent by PID" in next(err for code, err in results if code == 1)
    counts = {r: len(c) for r, c in recorder.by_recipient().items()}
    assert len(counts) == READERS and set(counts.values()) == {1}


def test_a_killed_send_does_not_block_the_next(ws: Path, cli: Callable[..., Result]) -> None:
    recorder = Recorder(delay=0.05)
    with SmtpServer(recorder) as server:
        first = start_send(ws, server.url)
        wait_until(lambda: len(recorder.received) >= 2, what="the first messages")
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=DEADLINE)
        assert (ws / "logs" / f"{EXAMPLE_ISSUE}.lock").exists()  # left behind, and harmless
        resumed = cli("send", EXAMPLE_ISSUE, "--smtp", server.url, "--yes", cwd=ws)
        assert resumed.code in (0, 75), resumed.err
        assert "being sent" not in resumed.err


def test_the_lock_is_free_again_once_released(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "x.lock"
    with IssueLock(path, "x"), pytest.raises(IssueBusy, match=f"PID {os.getpid()} on host "):
        IssueLock(path, "x").acquire()
    with IssueLock(path, "x"):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert path.read_text() == ""
