"""The web app under load: requests a second with one worker and with several, side by side; and
the unsubscribe load test, run while a rate-limited send mails the same readers.

    .venv/bin/python bench/web_load.py [--requests 3000] [--clients 50] [--workers 1 2]
    .venv/bin/python bench/web_load.py --during-send [--readers 3000] [--rate 400]
                                       [--unsubscribes 1000] [--clients 50] [--workers 1]

Throughput: `hebdo-mail serve --workers N` (a real process, SQLite store) answers, from C
keep-alive clients, the requests mail brings: RFC 8058 one-click POSTs (each one a store write)
and the GETs of the same links by mail scanners, half and half. Prints requests a second, the
median and 95th percentile latency, the count of answers other than 200, and the server's CPU
time per request (a figure the machine's other load hardly changes).

During a send: a store of N readers, `hebdo-mail send --rate R` to a local SMTP server that
notes when each message arrives, and meanwhile U one-click POSTs and U scanner GETs for random
readers. Afterwards it checks the promise: no reader's message went out (its `attempt` line,
written just before the content) after their POST was answered 200; and `status` accounts for
every reader (pending 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hebdo_mail.audience.tokens import TokenSigner
from hebdo_mail.workspace import load_secret, load_workspace, write_secret

REPO = Path(__file__).resolve().parents[1]
ISSUE = "2006-50"
SITE = "https://hebdo.example.org"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def hebdo(workspace: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "hebdo_mail", *args],
        cwd=workspace, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout


def prepare(workspace: Path, readers: int) -> list[str]:
    shutil.copy(REPO / "hebdo.toml", workspace / "hebdo.toml")
    shutil.copytree(REPO / "issues" / ISSUE, workspace / "issues" / ISSUE)
    with (workspace / "hebdo.toml").open("a") as handle:
        # The load comes from one address: the per-client limit must not be what is measured.
        handle.write("\n[web]\nform_posts_per_minute = 1000000\n")
    write_secret(workspace / ".hebdo-secret")
    addresses = [f"reader{i:05d}@example{i % 50}.org" for i in range(readers)]
    (workspace / "list.csv").write_text("email,name\n" + "\n".join(addresses) + "\n")
    hebdo(workspace, "subscribers", "import", "list.csv")
    return addresses


def tokens(workspace: Path, addresses: list[str]) -> dict[str, str]:
    settings = load_workspace(workspace, explicit=True).settings.newsletter
    signer = TokenSigner(load_secret(workspace)[0], settings.list_identifier)
    return {address: signer.token(address) for address in addresses}


class Server:
    """`hebdo-mail serve --workers N` on a free port."""

    def __init__(self, workspace: Path, workers: int) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hebdo_mail", "serve", "--port", str(self.port),
             "--workers", str(workers)],
            cwd=workspace, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    time.sleep(0.5 * workers)  # let every worker start
                    return
            time.sleep(0.05)
        raise SystemExit("serve did not start")

    def cpu_seconds(self) -> float:
        """CPU time (user and system) of the server and its worker processes so far: a figure
        the machine's other load hardly changes, unlike requests a second."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid, ppid = int(stat.parent.name), int(fields[1])
            if self.process.pid in (pid, ppid):
                total += (int(fields[11]) + int(fields[12])) / ticks
        return total

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


async def client(
    port: int,
    work: asyncio.Queue[tuple[str, str, str]],
    results: list[tuple[str, int, float, float]],
) -> None:
    """One keep-alive connection: requests taken from ``work``; for each, (address, status,
    latency, the moment the answer was read)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while not work.empty():
            method, path, address = work.get_nowait()
            body = b"List-Unsubscribe=One-Click" if method == "POST" else b""
            head = f"{method} {path} HTTP/1.1\r\nHost: hebdo.example.org\r\n"
            if body:
                head += "Content-Type: application/x-www-form-urlencoded\r\n"
            head += f"Content-Length: {len(body)}\r\n\r\n"
            started = time.perf_counter()
            writer.write(head.encode() + body)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            answered = time.time()
            results.append(
                (address, int(status_line.split()[1]), time.perf_counter() - started, answered)
            )
    finally:
        writer.close()


async def load(
    port: int, requests: list[tuple[str, str, str]], clients: int
) -> tuple[list[tuple[str, int, float, float]], float]:
    work: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
    for item in requests:
        work.put_nowait(item)
    results: list[tuple[str, int, float, float]] = []
    started = time.perf_counter()
    await asyncio.gather(*(client(port, work, results) for _ in range(clients)))
    return results, time.perf_counter() - started


def mix(links: dict[str, str], count: int) -> list[tuple[str, str, str]]:
    chosen = random.Random(1).sample(sorted(links), count)
    requests = [("POST", f"/unsubscribe/{links[a]}", a) for a in chosen]
    requests += [("GET", f"/unsubscribe/{links[a]}", a) for a in chosen]
    random.Random(2).shuffle(requests)
    return requests


def report(label: str, results: list[tuple[str, int, float, float]], seconds: float) -> None:
    latencies = sorted(r[2] for r in results)
    not_ok = sum(1 for r in results if r[1] != 200)
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    print(
        f"{label}: {len(results) / seconds:,.0f} requests/s ({len(results)} in {seconds:.1f} s), "
        f"median {statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"{not_ok} not 200"
    )


def throughput(args: argparse.Namespace) -> None:
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as folder:
            workspace = Path(folder)
            links = tokens(workspace, prepare(workspace, args.requests))
            requests = mix(links, args.requests // 2)
            server = Server(workspace, workers)
            try:
                before = server.cpu_seconds()
                results, seconds = asyncio.run(load(server.port, requests, args.clients))
                cpu = server.cpu_seconds() - before
            finally:
                server.stop()
            report(f"{workers} worker{'s' if workers > 1 else ' '}", results, seconds)
            print(f"  server CPU: {cpu / len(results) * 1000:.2f} ms a request")


class Relay:
    """aiosmtpd noting when each message arrives, in its own thread."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.arrived: dict[str, float] = {}
        outer = self

        class Handler:
            async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
                for rcpt in envelope.rcpt_tos:  # type: ignore[attr-defined]
                    outer.arrived[rcpt] = time.time()
                return "250 2.0.0 Ok: queued"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
        self.controller.start()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.controller.port}"


def during_send(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder)
        addresses = prepare(workspace, args.readers)
        links = tokens(workspace, addresses)
        relay = Relay()
        server = Server(workspace, args.workers[0])
        try:
            send = subprocess.Popen(
                [sys.executable, "-m", "hebdo_mail", "send", ISSUE, "--smtp", relay.url, "--yes",
                 "--rate", str(args.rate)],
                cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            while not relay.arrived:  # the send is under way
                time.sleep(0.01)
            results, seconds = asyncio.run(
                load(server.port, mix(links, args.unsubscribes), args.clients)
            )
            out, err = send.communicate(timeout=600)
        finally:
            server.stop()
            relay.controller.stop()
        report(f"{args.workers[0]} worker(s), during the send", results, seconds)
        print(f"send: {out.strip() or err.strip()}")
        attempts = {}
        for line in (workspace / "logs" / f"{ISSUE}.jsonl").read_text().splitlines():
            event = json.loads(line)
            if event.get("event") == "attempt":
                attempts[event["recipient"]] = event["time"]
        answered = {address: moment for address, status, _, moment in results if status == 200}
        posts = {r[0] for r in results}
        late = [
            address for address in posts
            if address in relay.arrived and address in attempts
            and _epoch(attempts[address]) > answered[address]
        ]  # fmt: skip
        mailed_before = sum(1 for a in posts if a in relay.arrived) - len(late)
        status = json.loads(hebdo(workspace, "status", ISSUE, "--json"))
        print(
            f"{len(posts)} readers left during the send: {len(late)} mailed after their 200 "
            f"(a message that went out after the answer), {mailed_before} mailed before it"
        )
        print(f"status: {json.dumps(status)}")


def _epoch(stamp: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(stamp).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--during-send", action="store_true")
    parser.add_argument("--readers", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=400)
    parser.add_argument("--unsubscribes", type=int, default=1000)
    args = parser.parse_args()
    if args.during_send:
        during_send(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
