"""How fast the send stops itself when the relay refuses: `hebdo-mail send` (a real process)
against an SMTP server (aiosmtpd, in this process) that refuses some recipients with 550.

    .venv/bin/python bench/stop_reaction.py [--n 10000] [--concurrency 1 10 50]

Two relays: one refusing 30% of recipients from the start (spread through the list), one that
accepts everything, then, after --after messages, refuses everyone (a block listing mid-send).
For each, and each concurrency, prints the replies the rule had seen when it fired (from its
line), the messages handled in all (in-flight ones finish), those refused, and those left pending.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

REPO = Path(__file__).resolve().parents[1]
ISSUE = "2006-50"
BLOCKED = "550 5.7.1 Service unavailable; client host [192.0.2.9] blocked"


class Relay:
    """Refuses a recipient when ``refuse(number, accepted_so_far)`` says so."""

    def __init__(self, mode: str, after: int) -> None:
        self.mode, self.after, self.accepted = mode, after, 0
        self.lock = threading.Lock()

    def refuses(self, rcpt: str) -> bool:
        if self.mode == "30%":
            return int(rcpt[1:7]) % 10 in (2, 5, 8)
        with self.lock:
            return self.accepted >= self.after

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.refuses(address):
            return BLOCKED
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.accepted += 1
        return "250 2.0.0 Ok: queued"


def serve(relay: Relay) -> tuple[asyncio.AbstractEventLoop, Any, int]:
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(lambda: SMTP(relay, hostname="relay.bench"), "127.0.0.1", 0)
    )
    threading.Thread(target=loop.run_forever, daemon=True).start()
    return loop, server, server.sockets[0].getsockname()[1]


def hebdo(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hebdo_mail", *args], cwd=workspace, capture_output=True, text=True
    )


def run(n: int, concurrency: int, mode: str, after: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder)
        shutil.copy(REPO / "hebdo.toml", workspace / "hebdo.toml")
        shutil.copytree(REPO / "issues" / ISSUE, workspace / "issues" / ISSUE)
        rows = "\n".join(f"r{i:06d}@example.org" for i in range(n))
        (workspace / "list.csv").write_text(f"email\n{rows}\n", encoding="utf-8")
        relay = Relay(mode, after)
        loop, server, port = serve(relay)
        try:
            sent = hebdo(
                workspace, "send", ISSUE, "--subscribers", "list.csv", "--yes",
                "--smtp", f"smtp://127.0.0.1:{port}", "--concurrency", str(concurrency),
            )  # fmt: skip
        finally:
            loop.call_soon_threadsafe(server.close)
            loop.call_soon_threadsafe(loop.stop)
        status = json.loads(hebdo(workspace, "status", ISSUE, "--json").stdout)
        fired = re.search(r"refused (\d+) of the last (\d+) messages", sent.stderr)
        return {
            "seen": int(fired.group(2)) if fired else None,
            "handled": status["sent"] + status["failed"],
            "refused": status["failed"],
            "pending": status["pending"],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--after", type=int, default=2000, help="block listed after this many")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    args = parser.parse_args()
    print(f"{args.n:,} recipients; [send] defaults: window 200, stop at more than 10% refused")
    print(
        f"{'relay':<28}{'conc.':>6}{'replies seen':>14}{'handled':>9}{'refused':>9}{'pending':>9}"
    )
    for mode in ("30%", "block"):
        label = "refuses 30% from the start" if mode == "30%" else f"blocks after {args.after:,}"
        for concurrency in args.concurrency:
            figures = run(args.n, concurrency, mode, args.after)
            print(
                f"{label:<28}{concurrency:>6}{figures['seen'] or '-':>14}{figures['handled']:>9,}"
                f"{figures['refused']:>9,}{figures['pending']:>9,}"
            )


if __name__ == "__main__":
    main()
