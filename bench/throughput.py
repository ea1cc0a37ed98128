"""The whole `hebdo-mail send` command against Postfix's smtp-sink, side by side with smtp-source.

    .venv/bin/python bench/throughput.py [--n 20000 100000] [--runs 3] [--concurrency 10]
        [--sources csv store] [--dkim rsa-sha256 ed25519-sha256] [--resume]
        [--store postgresql[://...]] [--senders 2]

For each list size (default 20,000 and 100,000; `--n 1000000` for a million), in a workspace of its
own: the list is written as a CSV file, imported into the store (timed with its peak RSS, then
imported again unchanged, then exported), and the example issue built. Then, --runs times and
alternating: `hebdo-mail send` (a real process, from the CSV file and from the store) against
`smtp-sink -u nobody 127.0.0.1:PORT 1000` on loopback, and `smtp-source -d -s C -m N -F message`
sending one of the messages hebdo-mail produced, as many times over as many sessions. Printed,
medians of the runs:

- messages/s of the whole command (process start to exit, N / wall time) and of the send phase
  (as the command reports it: first message queued to last reply); smtp-source's rate and the
  ratios (the median of each run's ratio: both sides ran back to back in that run);
- time to first message: from the moment the process is started to the time of the first
  `attempt` line in the send log (written just before that message's content goes out);
- the peak RSS of the sender process as a whole (os.wait4's ru_maxrss of the child);
- with --resume (default for a million): a half-sent issue (`send --limit N/2`) resumed: the
  time to its first message, the whole resume, and its peak RSS.

With --store postgresql://USER@HOST/DB (or `--store postgresql` to start a server of its own,
as tests/pgserver.py does), each run also sends from the store through the shared ledger, with one
sender and with --senders at once, beside one sender on the file ledger: "the PostgreSQL ledger
at least 0.8x the file ledger's rate for one sender". With --dkim, each run also sends signed.

Needs Debian's postfix package for smtp-sink and smtp-source (`make test` installs it).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ISSUE = "2006-50"
SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
NAMES = ["Hélène Lefèvre", "Marc Dubois", "Anna Kowalski", "Jack O'Connor", "Zoé Nguyễn"]


@dataclass
class Run:
    """One command, measured from outside."""

    wall: float  # seconds, process start to exit
    rss: int  # peak resident set, bytes
    cpu: float  # seconds of CPU, user and system
    out: str
    started: float  # time.time() just before the process started

    def send_seconds(self) -> float:
        """The send phase as the command reports it (the wall time when it says none)."""
        match = re.search(r"; ([\d.]+) s, [\d,]+ msg/s", self.out)
        return float(match.group(1)) if match else self.wall


def command(workspace: Path, *args: str) -> Run:
    """`hebdo-mail ARGS` in the workspace; its wall time and its own peak RSS (wait4 gives this
    child's, not the largest of every child so far)."""
    started = time.time()
    clock = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "hebdo_mail", *args],
        cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    out, err = process.stdout.read(), process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - clock
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 75):  # 75: some left to send (a --limit)
        raise SystemExit(f"hebdo-mail {' '.join(args)} failed ({code}): {err.strip()}")
    cpu = usage.ru_utime + usage.ru_stime
    return Run(wall, usage.ru_maxrss * 1024, cpu, out.strip(), started)


def first_attempt(log: Path) -> float:
    """The epoch time of the log's first attempt (its lines carry UTC times to the ms)."""
    with log.open() as handle:
        for line in handle:
            if '"event":"attempt"' in line:
                stamp = line.split('"time":"', 1)[1].split('"', 1)[0]
                return dt.datetime.fromisoformat(stamp).timestamp()
    raise SystemExit(f"no attempt in {log}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


SINKS: list[int] = []  # the running smtp-sink (its CPU is part of the figures)


def sink_cpu() -> float:
    return process_cpu(SINKS[-1])


@contextmanager
def smtp_sink() -> Iterator[int]:
    port = free_port()
    sink = subprocess.Popen([SINK, "-u", "nobody", f"127.0.0.1:{port}", "1000"])
    SINKS.append(sink.pid)
    try:
        deadline = time.monotonic() + 10
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if time.monotonic() > deadline:
                raise SystemExit("smtp-sink did not start")
            time.sleep(0.02)
        yield port
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait()
        SINKS.remove(sink.pid)


def run_source(message: Path, port: int, n: int, sessions: int) -> float:
    started = time.perf_counter()
    subprocess.run(
        [SOURCE, "-d", "-s", str(sessions), "-m", str(n), "-F", str(message),
         "-f", "hebdo@example.org", "-t", "reader@example.org", f"127.0.0.1:{port}"],
        check=True,
    )  # fmt: skip
    return time.perf_counter() - started


# -- the workspace ----------------------------------------------------------------------------


def prepare(workspace: Path, n: int, concurrency: int) -> dict[str, Run]:
    """The workspace, its list imported (timed: import, the same again, export), the issue
    built; returns those commands' runs."""
    shutil.copy(REPO / "hebdo.toml", workspace / "hebdo.toml")
    shutil.copytree(REPO / "issues" / ISSUE, workspace / "issues" / ISSUE)
    with (workspace / "hebdo.toml").open("a") as handle:
        handle.write(f"\n[send]\nconcurrency = {concurrency}\n")
    with (workspace / "list.csv").open("w", encoding="utf-8") as handle:
        handle.write("email,name,lang,format,city\n")
        for i in range(n):
            fmt = "text" if i % 10 == 0 else "html"
            handle.write(
                f"reader{i}@example{i % 50}.org,{NAMES[i % 5]} {i},fr,{fmt},Ville {i % 40}\n"
            )
    runs = {
        "import": command(workspace, "subscribers", "import", "list.csv"),
        "import again": command(workspace, "subscribers", "import", "list.csv"),
        "export": command(workspace, "subscribers", "export", "exported.csv"),
        "build": command(workspace, "build", ISSUE),
    }
    (workspace / "exported.csv").unlink()
    return runs


def sample_message(workspace: Path) -> Path:
    """One message as hebdo-mail produces it, LF line ends, for smtp-source -F."""
    sys.path.insert(0, str(REPO / "src"))
    from hebdo_mail.audience.recipients import Recipient
    from hebdo_mail.deliver.setup import message_factory
    from hebdo_mail.publish.mailcache import mail_editions
    from hebdo_mail.workspace import load_workspace

    ws = load_workspace(workspace, explicit=True)
    issue, editions = mail_editions(workspace / "issues" / ISSUE, ws)
    factory = message_factory(ws, issue.id, editions, issue.default_language)
    recipient = Recipient(
        email="reader1@example1.org", name="Marc Dubois 1", lang="fr",
        attributes={"city": "Ville 1"},
    )  # fmt: skip
    path = workspace / "sample.eml"
    path.write_bytes(factory.message_bytes(recipient).replace(b"\r\n", b"\n"))
    return path


def forget(workspace: Path) -> None:
    for stale in ("logs", "outbox"):
        shutil.rmtree(workspace / stale, ignore_errors=True)


def send(workspace: Path, port: int, source: str, *extra: str) -> Run:
    recipients = ["--subscribers", "list.csv"] if source == "csv" else []
    return command(
        workspace, "send", ISSUE, "--smtp", f"smtp://127.0.0.1:{port}", "--yes", *recipients,
        *extra,
    )  # fmt: skip


def dkim_settings(workspace: Path, plain: str, algorithm: str) -> str:
    """hebdo.toml with signing on, by a new key: keygen prints the section to add."""
    selector = algorithm.split("-")[0]
    out = command(workspace, "dkim", "keygen", "--algorithm", algorithm, "--selector", selector)
    return plain + "\n" + out.out[out.out.index("[dkim]") :]


# -- the shared ledger (issue 19) -------------------------------------------------------------


@contextmanager
def postgres(url: str) -> Iterator[str]:
    """The server of --store: the URL given, or one started here as the tests start theirs."""
    if url != "postgresql":
        yield url
        return
    sys.path.insert(0, str(REPO))
    from tests.pgserver import PostgresServer

    server = PostgresServer().start()
    try:
        yield server.new_database()
    finally:
        server.stop()


def server_cpu() -> float:
    """CPU seconds of this host's PostgreSQL processes so far, with their ended children's (a
    sender's backend ends with its connection): where the server runs here, its share."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().startswith("postgres"):
                total += process_cpu(int(pid))
    return total


def process_cpu(pid: int) -> float:
    """CPU seconds of a running process, with those of its ended children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def shared_workspace(folder: Path, plain: Path, url: str) -> Path:
    """A copy of the workspace whose store (and so ledger) is the PostgreSQL server."""
    workspace = folder / "shared"
    workspace.mkdir()
    shutil.copy(plain / "hebdo.toml", workspace / "hebdo.toml")
    shutil.copytree(plain / "issues", workspace / "issues")
    shutil.copytree(plain / "build", workspace / "build")
    shutil.copy(plain / "list.csv", workspace / "list.csv")
    with (workspace / "hebdo.toml").open("a") as handle:
        handle.write(f'\n[store]\nurl = "{url}"\n')
    command(workspace, "store", "migrate")
    command(workspace, "subscribers", "import", "list.csv")
    return workspace


def forget_shared(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        for table in ("send_events", "send_queue", "send_runs"):
            connection.execute(f"DELETE FROM {table} WHERE issue_id = %s", (ISSUE,))


def senders_at_once(workspace: Path, port: int, count: int) -> float:
    """Seconds from the first of ``count`` senders started to the last one done."""
    started = time.perf_counter()
    argv = [sys.executable, "-m", "hebdo_mail", "send", ISSUE, "--smtp", f"smtp://127.0.0.1:{port}"]
    processes = [
        subprocess.Popen(
            [*argv, "--yes"],
            cwd=workspace,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for process in processes:
        _, err = process.communicate()
        if process.returncode not in (0, 75):
            raise SystemExit(f"a sender failed ({process.returncode}): {err.strip()}")
    return time.perf_counter() - started


# -- one list size ----------------------------------------------------------------------------

Figures = dict[str, list[float]]  # what was measured -> its value in each run


def measure(args: argparse.Namespace, n: int, url: str | None) -> tuple[Figures, int]:
    figures: Figures = defaultdict(list)
    with tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder) / "plain"
        workspace.mkdir()
        print(f"-- {n:,} readers: writing the list, importing it, building the issue", flush=True)
        for name, prepared in prepare(workspace, n, args.concurrency).items():
            figures[f"{name} s"].append(prepared.wall)
            figures[f"{name} rss"].append(prepared.rss)
        message = sample_message(workspace)
        plain = (workspace / "hebdo.toml").read_text()
        signing = {algorithm: dkim_settings(workspace, plain, algorithm) for algorithm in args.dkim}
        shared = shared_workspace(Path(folder), workspace, url) if url else None
        log = workspace / "logs" / f"{ISSUE}.jsonl"
        with smtp_sink() as port:
            for run in range(args.runs):
                for source in args.sources:
                    forget(workspace)
                    sink_before = sink_cpu()
                    sent = send(workspace, port, source)
                    figures[f"{source} sink cpu"].append((sink_cpu() - sink_before) / n)
                    figures[f"{source} whole"].append(n / sent.wall)
                    figures[f"{source} send"].append(n / sent.send_seconds())
                    figures[f"{source} first"].append(first_attempt(log) - sent.started)
                    figures[f"{source} rss"].append(sent.rss)
                    figures[f"{source} cpu"].append(sent.cpu / n)
                    report(f"run {run + 1}: from the {source}", n, sent)
                figures["status s"].append(command(workspace, "status", ISSUE).wall)
                seconds = run_source(message, port, n, args.concurrency)
                figures["smtp-source"].append(n / seconds)
                print(f"run {run + 1}: smtp-source {n / seconds:,.0f} msg/s", flush=True)
                for algorithm, settings in signing.items():
                    (workspace / "hebdo.toml").write_text(settings)
                    forget(workspace)
                    signed = send(workspace, port, "store")
                    figures[f"dkim {algorithm}"].append(n / signed.send_seconds())
                    report(f"run {run + 1}: signed with {algorithm}", n, signed)
                    (workspace / "hebdo.toml").write_text(plain)
                if args.resume or n >= 1_000_000:
                    for source in args.sources:
                        resume(workspace, port, source, n, figures, run)
                if shared is not None and url is not None:
                    shared_runs(shared, url, port, n, args.senders, figures, run)
        size = message.stat().st_size
    return figures, size


def resume(workspace: Path, port: int, source: str, n: int, figures: Figures, run: int) -> None:
    """A half-sent issue resumed: the first half sent by a run stopped by --limit."""
    forget(workspace)
    send(workspace, port, source, "--limit", str(n // 2))
    log = workspace / "logs" / f"{ISSUE}.jsonl"
    half = log.stat().st_size
    resumed = send(workspace, port, source)
    with log.open("rb") as handle:  # the resume's own first attempt: after the first half
        handle.seek(half)
        first = next(line for line in handle if b'"event":"attempt"' in line)
    stamp = first.split(b'"time":"', 1)[1].split(b'"', 1)[0].decode()
    figures[f"{source} resume first"].append(
        dt.datetime.fromisoformat(stamp).timestamp() - resumed.started
    )
    figures[f"{source} resume s"].append(resumed.wall)
    figures[f"{source} resume rss"].append(resumed.rss)
    report(f"run {run + 1}: half-sent, resumed from the {source}", n - n // 2, resumed)


def shared_runs(
    shared: Path, url: str, port: int, n: int, senders: int, figures: Figures, run: int
) -> None:
    forget_shared(url)
    before, sink_before = server_cpu(), sink_cpu()
    one = send(shared, port, "store")
    figures["pg 1 server cpu"].append((server_cpu() - before) / n)
    figures["pg 1 sink cpu"].append((sink_cpu() - sink_before) / n)
    figures["pg 1 cpu"].append(one.cpu / n)
    figures["pg 1 whole"].append(n / one.wall)
    figures["pg 1 send"].append(n / one.send_seconds())
    figures["pg 1 rss"].append(one.rss)
    report(f"run {run + 1}: PostgreSQL ledger, 1 sender", n, one)
    forget_shared(url)
    seconds = senders_at_once(shared, port, senders)
    figures["pg n whole"].append(n / seconds)
    print(
        f"run {run + 1}: PostgreSQL ledger, {senders} senders: {n / seconds:,.0f} msg/s", flush=True
    )


def report(what: str, n: int, run: Run) -> None:
    print(
        f"{what}: {n / run.wall:,.0f} msg/s whole command, {n / run.send_seconds():,.0f} send "
        f"phase, {run.rss / 2**20:.0f} MB  [{run.out.splitlines()[0][:70]}]",
        flush=True,
    )


# -- the summary ------------------------------------------------------------------------------


def summary(args: argparse.Namespace, n: int, figures: Figures, size: int) -> None:
    def m(key: str) -> float:
        return statistics.median(figures[key])

    def ratio(key: str, base: str) -> float:
        """The median of each run's ratio: both were measured side by side in that run, so a
        run the machine slowed down counts once, not once for each side."""
        return statistics.median(a / b for a, b in zip(figures[key], figures[base], strict=True))

    source = m("smtp-source")
    print(
        f"\n{n:,} readers, {size / 1024:.0f} KB message, {args.concurrency} connections; "
        f"medians of {args.runs} run{'s' if args.runs > 1 else ''}"
    )
    print(
        f"  {'':<22}{'whole command':>15}{'send phase':>13}{'ratios':>14}{'first msg':>11}{'peak RSS':>10}"
    )
    for name in args.sources:
        whole, phase = m(f"{name} whole"), m(f"{name} send")
        print(
            f"  {'from the ' + name:<22}{whole:>11,.0f} /s{phase:>9,.0f} /s"
            f"{ratio(f'{name} whole', 'smtp-source'):>8.2f} "
            f"{ratio(f'{name} send', 'smtp-source'):>5.2f}{m(f'{name} first'):>9.2f} s"
            f"{m(f'{name} rss') / 2**20:>7.0f} MB"
        )
    print(f"  {'smtp-source -d -F':<22}{source:>11,.0f} /s")
    for algorithm in args.dkim:
        rate = m(f"dkim {algorithm}")
        print(
            f"  signed, {algorithm}: {rate:,.0f} msg/s send phase ({rate / source:.2f} of smtp-source)"
        )
    for name in args.sources:
        if f"{name} resume s" in figures:
            print(
                f"  half-sent, resumed from the {name}: first message after "
                f"{m(f'{name} resume first'):.2f} s, the rest in {m(f'{name} resume s'):.0f} s, "
                f"peak RSS {m(f'{name} resume rss') / 2**20:.0f} MB"
            )
    if "pg 1 whole" in figures:
        file_rate, pg_rate = m("store send"), m("pg 1 send")
        print(
            f"  ledgers, from the store (send phase): file {file_rate:,.0f} msg/s; PostgreSQL, 1 "
            f"sender {pg_rate:,.0f} msg/s ({ratio('pg 1 send', 'store send'):.2f} of the file's); "
            "whole command "
            f"file {m('store whole'):,.0f}, PostgreSQL 1 sender {m('pg 1 whole'):,.0f}, "
            f"{args.senders} senders {m('pg n whole'):,.0f} msg/s"
        )
        print(
            f"  CPU a message, file ledger: sender {m('store cpu') * 1e6:.0f} µs, smtp-sink "
            f"{m('store sink cpu') * 1e6:.0f} µs; PostgreSQL ledger: sender "
            f"{m('pg 1 cpu') * 1e6:.0f} µs, smtp-sink {m('pg 1 sink cpu') * 1e6:.0f} µs, the server "
            f"{m('pg 1 server cpu') * 1e6:.0f} µs (when it runs on this host)"
        )
    for name, label in (("import", "import"), ("import again", "import again (unchanged)"),
                        ("export", "export"), ("build", "build")):  # fmt: skip
        print(f"  {label}: {m(f'{name} s'):.1f} s, peak RSS {m(f'{name} rss') / 2**20:.0f} MB")
    print(f"  status after a send: {m('status s'):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--sources", nargs="+", default=["csv", "store"], choices=("csv", "store"))
    parser.add_argument("--dkim", nargs="+", default=[], choices=("rsa-sha256", "ed25519-sha256"))
    parser.add_argument("--resume", action="store_true", help="also resume a half-sent issue")
    parser.add_argument("--store", metavar="URL", help="postgresql://… or postgresql (start one)")
    parser.add_argument("--senders", type=int, default=2)
    args = parser.parse_args()
    if args.store and not args.store.startswith("postgresql"):
        parser.error("--store takes postgresql://USER@HOST/DB, or postgresql to start a server")
    results = []
    with postgres(args.store) if args.store else _nothing() as url:
        for n in args.n:
            results.append((n, *measure(args, n, url)))
    for n, figures, size in results:
        summary(args, n, figures, size)


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    main()
