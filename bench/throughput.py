"""Throughput of `hebdo-mail send` against Postfix's smtp-sink, side by side with smtp-source.

    .venv/bin/python bench/throughput.py [--n 20000] [--runs 3] [--concurrency 10]
                                         [--dkim rsa-sha256 ed25519-sha256]

In one run: N subscribers in the store, the example issue, `hebdo-mail send` (a real process)
against `smtp-sink -u nobody 127.0.0.1:PORT 1000` on loopback; then `smtp-source -d -s 10 -m N -F
message` sending one of the messages hebdo-mail produced, as many times with as many sessions.
Both are repeated --runs times, alternating, and the medians are compared. Prints messages/s for
both, the ratio, the sender's peak RSS, and the time to build the issue. With --dkim, each run
also sends with DKIM signing on (a key made by `hebdo-mail dkim keygen`), and the signed rate is
printed beside the others.

Needs Debian's postfix package for smtp-sink and smtp-source (`make test` installs it).
"""

from __future__ import annotations

import argparse
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ISSUE = "2006-50"
SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_sink() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    sink = subprocess.Popen([SINK, "-u", "nobody", f"127.0.0.1:{port}", "1000"])
    for _ in range(200):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return sink, port
        time.sleep(0.02)
    raise SystemExit("smtp-sink did not start")


def hebdo(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hebdo_mail", *args],
        cwd=workspace,
        capture_output=True,
        text=True,
        check=True,
    )


def prepare(workspace: Path, n: int, concurrency: int) -> None:
    shutil.copy(REPO / "hebdo.toml", workspace / "hebdo.toml")
    shutil.copytree(REPO / "issues" / ISSUE, workspace / "issues" / ISSUE)
    with (workspace / "hebdo.toml").open("a") as handle:
        handle.write(f"\n[send]\nconcurrency = {concurrency}\n")
    names = ["Hélène Lefèvre", "Marc Dubois", "Anna Kowalski", "Jack O'Connor", "Zoé Nguyễn"]
    with (workspace / "list.csv").open("w", encoding="utf-8") as handle:
        handle.write("email,name,lang,format,city\n")
        for i in range(n):
            fmt = "text" if i % 10 == 0 else "html"
            handle.write(
                f"reader{i}@example{i % 50}.org,{names[i % 5]} {i},fr,{fmt},Ville {i % 40}\n"
            )
    hebdo(workspace, "subscribers", "import", "list.csv")


def dkim_settings(workspace: Path, plain: str, algorithm: str) -> str:
    """hebdo.toml with signing on, by a new key: keygen prints the section to add."""
    selector = algorithm.split("-")[0]
    out = hebdo(
        workspace, "dkim", "keygen", "--algorithm", algorithm, "--selector", selector
    ).stdout
    return plain + "\n" + out[out.index("[dkim]") :]


def run_sender(
    workspace: Path, port: int, settings: str | None = None
) -> tuple[float, float, int, str]:
    """(send-phase seconds as the command reports them, wall seconds, peak RSS bytes, summary)."""
    if settings is not None:
        (workspace / "hebdo.toml").write_text(settings)
    for stale in ("logs", "outbox"):
        shutil.rmtree(workspace / stale, ignore_errors=True)
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hebdo_mail",
            "send",
            ISSUE,
            "--smtp",
            f"smtp://127.0.0.1:{port}",
            "--yes",
        ],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    out, err = process.stdout.read(), process.stderr.read()
    # wait4 gives this child's own peak RSS (ru_maxrss, in kilobytes on Linux), not the largest of
    # every child so far (the import run before it would count too).
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"send failed ({process.returncode}): {err.strip()}")
    match = re.search(r"; ([\d.]+) s, [\d,]+ msg/s", out)
    return float(match.group(1)) if match else wall, wall, usage.ru_maxrss * 1024, out.strip()


def sample_message(workspace: Path) -> Path:
    """One message as hebdo-mail produced it, LF line ends, for smtp-source -F."""
    sys.path.insert(0, str(REPO / "src"))
    from hebdo_mail.audience.recipients import Recipient
    from hebdo_mail.audience.tokens import TokenSigner
    from hebdo_mail.deliver.message import MessageFactory
    from hebdo_mail.publish.build import render_issue
    from hebdo_mail.workspace import load_secret, load_workspace

    ws = load_workspace(workspace, explicit=True)
    issue, editions = render_issue(workspace / "issues" / ISSUE, ws)
    secret, _ = load_secret(workspace)
    factory = MessageFactory(
        issue_id=issue.id,
        editions=editions,
        default_lang="fr",
        settings=ws.settings.newsletter,
        signer=TokenSigner(secret, ws.settings.newsletter.list_identifier),
    )
    recipient = Recipient(
        email="reader1@example1.org",
        name="Marc Dubois 1",
        lang="fr",
        attributes={"city": "Ville 1"},
    )
    data = factory.message_bytes(recipient)
    path = workspace / "sample.eml"
    path.write_bytes(data.replace(b"\r\n", b"\n"))
    return path


def run_source(message: Path, port: int, n: int, sessions: int) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            SOURCE,
            "-d",
            "-s",
            str(sessions),
            "-m",
            str(n),
            "-F",
            str(message),
            "-f",
            "hebdo@example.org",
            "-t",
            "reader@example.org",
            f"127.0.0.1:{port}",
        ],
        check=True,
    )
    return time.perf_counter() - started


def build_time(workspace: Path) -> tuple[float, float]:
    """(in-process render of the issue, median of 5; the `hebdo-mail build` command's wall time)."""
    sys.path.insert(0, str(REPO / "src"))
    from hebdo_mail.publish.build import render_issue
    from hebdo_mail.workspace import load_workspace

    ws = load_workspace(workspace, explicit=True)
    render_issue(workspace / "issues" / ISSUE, ws)  # warm the imports
    times = []
    for _ in range(5):
        started = time.perf_counter()
        render_issue(workspace / "issues" / ISSUE, ws)
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    hebdo(workspace, "build", ISSUE)
    return statistics.median(times), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--dkim", nargs="+", default=[], choices=("rsa-sha256", "ed25519-sha256"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder)
        prepare(workspace, args.n, args.concurrency)
        render, build_wall = build_time(workspace)
        message = sample_message(workspace)
        plain = (workspace / "hebdo.toml").read_text()
        signing = {algorithm: dkim_settings(workspace, plain, algorithm) for algorithm in args.dkim}
        signed_rates: dict[str, list[float]] = {algorithm: [] for algorithm in args.dkim}
        sink, port = start_sink()
        sender_rates, wall_rates, source_rates, peak = [], [], [], 0
        try:
            for run in range(args.runs):
                for algorithm, settings in signing.items():
                    signed_seconds, _, rss, _ = run_sender(workspace, port, settings)
                    signed_rates[algorithm].append(args.n / signed_seconds)
                    peak = max(peak, rss)
                    print(
                        f"run {run + 1}: hebdo-mail with DKIM {algorithm} "
                        f"{args.n / signed_seconds:,.0f} msg/s",
                        flush=True,
                    )
                send_seconds, wall, rss, summary = run_sender(workspace, port, plain)
                source_seconds = run_source(message, port, args.n, args.concurrency)
                sender_rates.append(args.n / send_seconds)
                wall_rates.append(args.n / wall)
                source_rates.append(args.n / source_seconds)
                peak = max(peak, rss)
                print(
                    f"run {run + 1}: hebdo-mail {args.n / send_seconds:,.0f} msg/s "
                    f"(whole command {args.n / wall:,.0f} msg/s)  smtp-source {args.n / source_seconds:,.0f} msg/s"
                    f"  [{summary.splitlines()[-1][:80]}]",
                    flush=True,
                )
        finally:
            sink.send_signal(signal.SIGTERM)
            sink.wait()
        size = message.stat().st_size
    sender, source = statistics.median(sender_rates), statistics.median(source_rates)
    print()
    print(
        f"messages:              {args.n:,} ({size / 1024:.0f} KB each), {args.concurrency} connections"
    )
    print(
        f"hebdo-mail send:       {sender:,.0f} msg/s median (whole command incl. start-up: {statistics.median(wall_rates):,.0f} msg/s)"
    )
    for algorithm, rates in signed_rates.items():
        rate = statistics.median(rates)
        print(
            f"with DKIM {algorithm}: {rate:,.0f} msg/s median "
            f"({rate / sender:.2f} of unsigned, {rate / source:.2f} of smtp-source)"
        )
    print(f"smtp-source -F:        {source:,.0f} msg/s median")
    print(f"ratio:                 {sender / source:.2f} (target >= 0.80)")
    print(f"sender peak RSS:       {peak / 1024 / 1024:.0f} MB (target < 150 MB at 100,000)")
    print(
        f"build the issue:       {render * 1000:.0f} ms in-process, {build_wall * 1000:.0f} ms for `hebdo-mail build` (target < 1 s)"
    )


if __name__ == "__main__":
    main()
