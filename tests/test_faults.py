"""Relays that refuse, drop and stall, and senders killed mid-send: after every run the server's
record and the send log agree, and re-running delivers every deliverable reader exactly once
(apart from messages whose reply was lost, which the log reports as unknown)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hebdo_mail.deliver.logsummary import read_summary
from hebdo_mail.deliver.sendlog import read_log

from .helpers import BOTH_STORES, EXAMPLE_ISSUE, SQLITE_ONLY, Result, log_file, log_statuses
from .smtpserver import Recorder, SmtpServer

pytestmark = [pytest.mark.slow, BOTH_STORES]

LOG = Path("logs") / f"{EXAMPLE_ISSUE}.jsonl"
CLIENT_TIMEOUT = 1.0


@pytest.fixture
def ws(ws: Path) -> Path:
    with (ws / "hebdo.toml").open("a") as handle:
        handle.write(
            f"\n[send]\nretry_delay = 0.01\nattempts = 2\nconcurrency = 4\n[smtp]\ntimeout = {CLIENT_TIMEOUT}\n"
        )
    return ws


def readers(n: int) -> list[str]:
    return [f"reader{i:03d}@example.org" for i in range(n)]


def write_list(ws: Path, addresses: list[str]) -> None:
    lines = ["email,name,lang,format"] + [
        f"{a},Reader {i},{'fr' if i % 3 else 'en'},html" for i, a in enumerate(addresses)
    ]
    (ws / "list.csv").write_text("\n".join(lines) + "\n")


def statuses(ws: Path) -> dict[str, str]:
    path = ws / "logs" / f"{EXAMPLE_ISSUE}.jsonl"
    summary = read_summary(path)
    if summary is not None:  # the counts a run left for status are those of a replay
        assert summary.counts() == read_log(path).counts()
    return log_statuses(log_file(ws))


def permanently_refused(seed: int, rcpt: str) -> bool:
    return hashlib.sha256(f"{seed}/refuse/{rcpt}".encode()).digest()[0] < 20  # about 8%


class RandomFaults:
    """Seeded faults that do not depend on the order connections happen to arrive in: each
    decision is a hash of (seed, stage, recipient, how many times it reached that stage)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __call__(self, stage: str, rcpt: str, count: int) -> object:
        if stage == "rcpt" and permanently_refused(self.seed, rcpt):
            return "550 5.1.1 no such mailbox"
        roll = hashlib.sha256(f"{self.seed}/{stage}/{rcpt}/{count}".encode()).digest()[0] / 256
        if stage == "mail":
            return (
                "451 4.3.0 try later"
                if roll < 0.03
                else "421 4.3.2 going down"
                if roll < 0.05
                else None
            )
        if stage == "rcpt":
            return (
                "450 4.2.1 greylisted"
                if roll < 0.08
                else "421 4.4.5 too busy"
                if roll < 0.10
                else None
            )
        if stage == "data":  # after the final dot
            if roll < 0.05:
                return "452 4.3.1 out of space"
            if roll < 0.08:
                return "drop"  # close without a reply: the client cannot know
            if roll < 0.10:
                return ("stall", CLIENT_TIMEOUT * 1.6)  # reply (250) after the client gave up
            if roll < 0.12:
                return "421 4.3.2 closing"
        return None


def check_record_against_log(recorder: Recorder, ws: Path, all_unknown: set[str]) -> dict[str, str]:
    """Every 250 logged sent, every 5xx failed, nothing else delivered but what is unknown."""
    time.sleep(CLIENT_TIMEOUT * 0.7)  # let stalled replies land on the server's side
    counts = {r: len(c) for r, c in recorder.by_recipient().items()}
    logged = statuses(ws)
    all_unknown |= {r for r, s in logged.items() if s == "unknown"}
    for rcpt, status in logged.items():
        received = counts.get(rcpt, 0)
        if status == "sent":
            assert received >= 1, f"{rcpt} logged sent but never received"
            assert received == 1 or rcpt in all_unknown, f"{rcpt} received {received} times"
        elif status in ("failed", "deferred"):
            assert received == 0 or rcpt in all_unknown, f"{rcpt} logged {status} but received"
    return logged


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_random_faults_never_lose_or_double_a_reader(
    ws: Path, cli: Callable[..., Result], seed: int
) -> None:
    addresses = readers(40)
    write_list(ws, addresses)
    recorder = Recorder(hook=RandomFaults(seed))
    unknown_seen: set[str] = set()
    with SmtpServer(recorder) as server:
        args = ("send", EXAMPLE_ISSUE, "--subscribers", "list.csv", "--smtp", server.url, "--yes")
        for _ in range(12):
            result = cli(*args, cwd=ws)
            assert result.code in (0, 75), result.err
            logged = check_record_against_log(recorder, ws, unknown_seen)
            assert len(logged) == 40 and "pending" not in logged.values()  # everyone accounted for
            if "deferred" not in logged.values():
                break
        for _ in range(12):
            if "unknown" not in statuses(ws).values() and "deferred" not in statuses(ws).values():
                break
            cli(*args, "--resend-unknown", cwd=ws)
            check_record_against_log(recorder, ws, unknown_seen)
    final = statuses(ws)
    counts = {r: len(c) for r, c in recorder.by_recipient().items()}
    for rcpt in addresses:
        if permanently_refused(seed, rcpt):
            assert final[rcpt] == "failed" and counts.get(rcpt, 0) == 0
        else:
            assert final[rcpt] == "sent", (rcpt, final[rcpt])
            assert counts.get(rcpt, 0) == 1 or (rcpt in unknown_seen and counts[rcpt] <= 3)
    failed_lines = [
        json.loads(line) for line in log_file(ws).read_text().splitlines() if '"failed"' in line
    ]
    assert all(line["code"] == 550 for line in failed_lines)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Sink:
    """Postfix's smtp-sink with fault options, its transactions dumped into a folder."""

    def __init__(self, *options: str) -> None:
        # smtp-sink runs as nobody: its dump folder must be reachable by nobody, which pytest's
        # private temporary folders are not.
        self.dumps = Path(tempfile.mkdtemp(prefix="hebdo-sink-"))
        os.chmod(self.dumps, 0o777)
        self.port = free_port()
        binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        self.process = subprocess.Popen(
            [
                binary,
                "-u",
                "nobody",
                *options,
                "-d",
                f"{self.dumps}/%H%M%S.",
                f"127.0.0.1:{self.port}",
                "100",
            ]
        )
        for _ in range(250):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError("smtp-sink did not start")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=10)
        transactions = len(list(self.dumps.iterdir()))
        shutil.rmtree(self.dumps, ignore_errors=True)
        return transactions


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["-r", "RCPT"], "deferred"),  # 4xx to every RCPT (and no PIPELINING: -r implies -p)
        (["-f", "RCPT"], "failed"),  # 5xx to every RCPT
        (["-r", "."], "deferred"),  # 4xx after the final dot
        (["-f", "."], "failed"),  # 5xx after the final dot
        (["-Q", "MAIL"], "deferred"),  # 421 and hang up at MAIL
        (["-q", "RCPT"], "deferred"),  # hang up without a reply before any content went out
        # Hang up after the final dot: that message's reply is lost (unknown); the next one of
        # the pipelined batch never reached DATA (deferred).
        (["-q", "."], "unknown"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else value,
)
def test_smtp_sink_fault_modes(
    ws: Path, cli: Callable[..., Result], options: list[str], expected: str
) -> None:
    addresses = readers(6)
    write_list(ws, addresses)
    faulty = Sink(*options)
    try:
        result = cli(
            "send",
            EXAMPLE_ISSUE,
            "--subscribers",
            "list.csv",
            "--smtp",
            f"smtp://127.0.0.1:{faulty.port}",
            "--yes",
            cwd=ws,
        )
    finally:
        faulty.stop()
    assert result.code in (0, 75), result.err
    outcomes = set(statuses(ws).values())
    assert outcomes == {expected} or (expected == "unknown" and outcomes == {"unknown", "deferred"})
    healthy = Sink()
    try:
        again = [
            "send",
            EXAMPLE_ISSUE,
            "--subscribers",
            "list.csv",
            "--smtp",
            f"smtp://127.0.0.1:{healthy.port}",
            "--yes",
        ]
        if expected == "unknown":
            again.append("--resend-unknown")
        cli(*again, cwd=ws)
    finally:
        delivered = healthy.stop()
    final = set(statuses(ws).values())
    if expected == "failed":
        assert final == {"failed"} and delivered == 0  # a 5xx is never retried
    else:
        assert final == {"sent"} and delivered == len(addresses)


def start_send(ws: Path, url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hebdo_mail", "send", EXAMPLE_ISSUE, "--subscribers", "list.csv", "--smtp", url, "--yes"],
        cwd=ws, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(10))
def test_kill_9_at_a_random_moment_then_resume(
    ws: Path, cli: Callable[..., Result], seed: int
) -> None:
    addresses = readers(60)
    write_list(ws, addresses)
    delay = random.Random(seed).uniform(0.3, 2.2)  # from start-up and connecting to mid-send
    recorder = Recorder(delay=0.004)
    with SmtpServer(recorder) as server:
        process = start_send(ws, server.url)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        time.sleep(0.3)  # the server finishes what it was handed
        killed = statuses(ws)
        unknown = {r for r, s in killed.items() if s == "unknown"}
        # In flight at the kill: per connection one message out and one reply being logged.
        assert len(unknown) <= 2 * 4
        counts = {r: len(c) for r, c in recorder.by_recipient().items()}
        for rcpt, status in killed.items():
            if status == "sent":
                assert counts.get(rcpt) == 1
            elif status != "unknown":
                assert counts.get(rcpt, 0) == 0, (rcpt, status)
        assert cli(
            "send",
            EXAMPLE_ISSUE,
            "--subscribers",
            "list.csv",
            "--smtp",
            server.url,
            "--yes",
            cwd=ws,
        ).code in (0, 75)
        assert (
            cli(
                "send",
                EXAMPLE_ISSUE,
                "--subscribers",
                "list.csv",
                "--smtp",
                server.url,
                "--yes",
                "--resend-unknown",
                cwd=ws,
            ).code
            == 0
        )
    counts = {r: len(c) for r, c in recorder.by_recipient().items()}
    assert set(counts) == set(addresses), "no reader lost"
    assert {r for r, n in counts.items() if n > 1} <= unknown, "only unknown ones may come twice"
    assert set(statuses(ws).values()) == {"sent"}


@SQLITE_ONLY  # the file log's own damage
def test_a_torn_last_line_is_tolerated_with_a_warning(ws: Path, cli: Callable[..., Result]) -> None:
    write_list(ws, readers(4))
    assert (
        cli("send", EXAMPLE_ISSUE, "--subscribers", "list.csv", "--limit", "2", cwd=ws).code == 75
    )
    with (ws / LOG).open("ab") as handle:
        handle.write(
            b'{"time":"2026-11-28T10:00:00.000+00:00","recipient":"reader002@exa'
        )  # cut by a crash
    status = cli("status", EXAMPLE_ISSUE, cwd=ws)
    assert status.err.startswith(f"warning: {LOG}:6: an incomplete line")
    resumed = cli("send", EXAMPLE_ISSUE, "--subscribers", "list.csv", cwd=ws)
    assert resumed.code == 0 and resumed.out.startswith("2 sent")
    lines = (ws / LOG).read_text().splitlines()
    assert (
        sum(1 for line in lines if line.startswith('{"time"') and line.endswith("}"))
        == len(lines) - 1
    )
    assert set(statuses(ws).values()) == {"sent"}


@SQLITE_ONLY  # the file log's own damage
def test_a_damaged_log_line_stops_the_send_naming_it(ws: Path, cli: Callable[..., Result]) -> None:
    write_list(ws, readers(2))
    cli("send", EXAMPLE_ISSUE, "--subscribers", "list.csv", cwd=ws)
    lines = (ws / LOG).read_text().splitlines()
    lines.insert(
        2, json.dumps({"time": "x", "recipient": "reader000@example.org", "event": "delivered"})
    )
    (ws / LOG).write_text("\n".join(lines) + "\n")
    result = cli("send", EXAMPLE_ISSUE, "--subscribers", "list.csv", cwd=ws)
    assert result.code == 1
    assert result.err.startswith(f"hebdo-mail: error: {LOG}:3: is not a send log record")


def mount_tmpfs(folder: Path, size: str) -> bool:
    """A small tmpfs at ``folder``, when this system lets the tests mount one (root, and a
    sandbox that allows it)."""
    folder.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    if os.geteuid() != 0 or mount is None:
        return False
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    return done.returncode == 0


def limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@SQLITE_ONLY  # the file log's writes (the shared ledger's server keeps its own disk)
@pytest.mark.parametrize("full", ["tmpfs", "file size limit"])
def test_a_full_disk_stops_the_send_before_more_mail_and_the_rerun_mails_each_reader_once(
    ws: Path, full: str
) -> None:
    """The log's disk fills up in the middle of a send, for real: a 64 KB tmpfs almost filled
    (when the system allows mounting one), or RLIMIT_FSIZE, under which write() stores part of
    its data and then fails with EFBIG, as on a full disk."""
    addresses = readers(60)
    write_list(ws, addresses)
    logs = ws / "logs"
    filler = logs / "filler"
    limit: Callable[[], None] | None = None
    if full == "tmpfs":
        if not mount_tmpfs(logs, "64k"):
            pytest.skip("this system does not let the tests mount a tmpfs")
        filler.write_bytes(b"x" * (48 * 1024))  # leaves room for the log of about 30 readers
        reason = "the disk is full"
    else:
        limit = limit_file_size(8 * 1024)  # the log of about 20 readers
        reason = "the file has reached the largest size this process may write"
    recorder = Recorder()
    command = [sys.executable, "-m", "hebdo_mail", "send", EXAMPLE_ISSUE, "--subscribers", "list.csv"]  # fmt: skip
    try:
        with SmtpServer(recorder) as server:
            first = subprocess.run(
                [*command, "--smtp", server.url, "--yes"],
                cwd=ws, capture_output=True, text=True, timeout=120, preexec_fn=limit,
            )  # fmt: skip
            assert first.returncode == 1, first.stderr
            assert first.stderr.strip().splitlines() == [
                f"hebdo-mail: error: {LOG}: cannot be written ({reason}); the send stopped "
                "before any more mail went out: make room, then run the same command again to "
                "resume (a message whose reply could not be recorded is listed as unknown)"
            ]
            handed_over = {r.rcpt for r in recorder.received}
            assert 0 < len(handed_over) < len(addresses)
            logged = statuses(ws)
            # No message left without its attempt line whole in the log.
            assert all(logged.get(rcpt) in ("sent", "unknown") for rcpt in handed_over)
            filler.unlink(missing_ok=True)
            again = subprocess.run(
                [*command, "--smtp", server.url, "--yes"],
                cwd=ws, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert again.returncode in (0, 75), again.stderr
            final = statuses(ws)
    finally:
        if full == "tmpfs":
            subprocess.run(["umount", str(logs)], check=False)
    counts = {r: len(c) for r, c in recorder.by_recipient().items()}
    assert counts == dict.fromkeys(addresses, 1), "every reader mailed, none twice"
    assert set(final.values()) <= {"sent", "unknown"} and len(final) == len(addresses)
