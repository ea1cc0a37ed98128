"""A real SMTP server for the tests: aiosmtpd on a free port (bound to port 0), in its own thread,
recording every accepted message. Faults are injected with small handler hooks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    mail_from: str
    rcpt: str
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)


# A hook sees (stage, recipient, times this recipient reached that stage) and returns None to go on,
# an SMTP reply line to answer with, "drop" to close the connection without a reply, or
# ("stall", seconds) to wait before answering normally.
Hook = Callable[[str, str, int], Any]


@dataclass
class Recorder:
    hook: Hook | None = None
    received: list[Received] = field(default_factory=list)
    seen: dict[tuple[str, str], int] = field(default_factory=dict)
    delay: float = 0.0  # seconds before each DATA reply (a slow relay)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _decide(self, stage: str, rcpt: str) -> Any:
        with self.lock:
            count = self.seen.get((stage, rcpt), 0) + 1
            self.seen[(stage, rcpt)] = count
        return self.hook(stage, rcpt, count) if self.hook else None

    async def _apply(self, server: SMTP, decision: Any) -> str | None:
        if decision is None:
            return None
        if decision == "drop":
            assert server.transport is not None
            server.transport.close()
            return "451 4.3.0 connection dropped"  # never reaches the client
        if isinstance(decision, tuple) and decision[0] == "stall":
            await asyncio.sleep(decision[1])
            return None
        if str(decision).startswith("421"):
            asyncio.get_running_loop().call_soon(server.transport.close)
        return str(decision)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = await self._apply(server, self._decide("mail", "*"))
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = await self._apply(server, self._decide("rcpt", address))
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        rcpt = envelope.rcpt_tos[0]
        if self.delay:
            await asyncio.sleep(self.delay)
        reply = await self._apply(server, self._decide("data", rcpt))
        if reply:
            return reply
        content = envelope.original_content or b""
        with self.lock:
            for address in envelope.rcpt_tos:
                self.received.append(Received(str(envelope.mail_from), address, content))
        return "250 2.0.0 Ok: queued"

    def by_recipient(self) -> dict[str, list[Received]]:
        result: dict[str, list[Received]] = {}
        for item in self.received:
            result.setdefault(item.rcpt, []).append(item)
        return result


class SmtpServer:
    """aiosmtpd serving ``handler`` on ``host`` (127.0.0.1) and a port the system chose."""

    def __init__(
        self, handler: Any, *, implicit_tls: Any = None, host: str = "127.0.0.1",
        **smtp_options: Any,
    ) -> None:  # fmt: skip
        self.host = host
        self.handler = handler
        self.implicit_tls = implicit_tls  # an SSLContext: TLS from the first byte (smtps)
        self.smtp_options = smtp_options
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    def __enter__(self) -> SmtpServer:
        self.server = self.loop.run_until_complete(
            self.loop.create_server(
                lambda: SMTP(self.handler, hostname="relay.test", **self.smtp_options),
                self.host,
                0,
                ssl=self.implicit_tls,
            )
        )
        self.port = self.server.sockets[0].getsockname()[1]
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def __exit__(self, *exc: object) -> None:
        async def shutdown() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


DEADLINE = 30.0  # seconds any wait in a test may last


class Gate:
    """A Recorder hook that holds every DATA reply (the whole relay, in fact) until the test opens
    the gate: a send that is certainly still running at a known point, whatever the machine's
    speed."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.reached = threading.Event()

    def __call__(self, stage: str, rcpt: str, count: int) -> None:
        if stage == "data":
            self.reached.set()
            self.opened.wait(DEADLINE)


@dataclass
class Turnstile(Recorder):
    """A relay that accepts messages only as the test lets them through: ``let_through(n)`` lets
    n more DATA be answered, ``open()`` all of them. Unlike Gate, the relay keeps serving every
    connection meanwhile, so each sender's messages reach DATA and wait there (``waiting``): every
    sender is certainly mid-send at a known point."""

    permits: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    opened: threading.Event = field(default_factory=threading.Event)
    waiting: int = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.waiting += 1
        deadline = time.monotonic() + DEADLINE
        try:
            while not self.opened.is_set() and not self.permits.acquire(blocking=False):
                if time.monotonic() > deadline:
                    return "451 4.3.0 the test never let this message through"
                await asyncio.sleep(0.005)
        finally:
            with self.lock:
                self.waiting -= 1
        return await super().handle_DATA(server, session, envelope)

    def let_through(self, count: int) -> None:
        self.permits.release(count)

    def open(self) -> None:
        self.opened.set()
