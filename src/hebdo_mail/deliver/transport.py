"""Transports: how a finished message leaves. The ``Transport`` and ``Connection`` contracts, the
built-in outbox (a Maildir, used when no relay is configured) and the dry run's transport that
keeps nothing; SMTP relays are in smtp.py.

A transport only carries bytes; it never builds or changes a message. Each ``Connection.send``
answers with a ``Reply`` whose ``outcome`` says what the send log must record.
"""

from __future__ import annotations

import os
import re
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import HebdoError
from ..vocabulary import Outcome, SmtpStage
from .wireformat import from_wire


class TransportError(HebdoError, ConnectionError):
    """The relay cannot be used at all: unreachable, refusing us, or not secure as required."""


class RelayRefused(TransportError):
    """The relay answered but will not let us send (login refused, no STARTTLS): retrying is useless."""


# A relay's reply is read by people and kept by ledgers that cannot hold every character
# (PostgreSQL refuses NUL in text): control characters go, line breaks and tabs stay.
_CONTROLS = dict.fromkeys([*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F])


@dataclass(frozen=True)
class Reply:
    code: int | None  # None: no reply came (the connection was lost or timed out)
    text: str
    stage: SmtpStage
    content_sent: bool = False  # the message and its final dot were handed to the relay

    def __post_init__(self) -> None:
        if not self.text.isprintable():  # the usual reply costs one scan, no copy
            object.__setattr__(self, "text", self.text.translate(_CONTROLS))

    @property
    def outcome(self) -> Outcome:
        """sent, failed, deferred or unknown (a lost reply after the final dot)."""
        if self.code is None:
            return Outcome.UNKNOWN if self.content_sent else Outcome.DEFERRED
        if 200 <= self.code < 300:
            return Outcome.SENT
        return Outcome.FAILED if self.code >= 500 else Outcome.DEFERRED


_ADDRESS = re.compile(r"<?[^\s<>@\"']+@[^\s<>\"']+>?")


def without_addresses(reply: str) -> str:
    """A relay's reply with the addresses it names masked: one refusal reads the same for
    every recipient, so the most common reply can be told."""
    return _ADDRESS.sub("<address>", reply)


@dataclass(frozen=True)
class Outgoing:
    """One message to carry: ``message`` is in DATA form (CRLF, dot-stuffed, final dot), and
    ``before_content`` runs just before the content is handed over, the moment after which a lost
    reply leaves the outcome unknown; what it returns, if anything, is awaited before the content
    leaves (an attempt recorded in a shared ledger must be committed first)."""

    sender: str
    recipient: str
    message: bytes
    before_content: Callable[[], Awaitable[None] | None]


async def content_may_go(item: Outgoing) -> None:
    """Run the message's ``before_content`` and wait for what it asks to wait for."""
    waiter = item.before_content()
    if waiter is not None:
        await waiter


class Connection(ABC):
    """One session with a relay (or the outbox), reused for many messages."""

    @property
    def usable(self) -> bool:
        """False once the relay has closed the session; the sender then opens a new one."""
        return True

    @abstractmethod
    async def send_many(
        self, batch: Sequence[Outgoing], on_reply: Callable[[int, Reply], None]
    ) -> None:
        """Carry messages in order; ``on_reply(index, reply)`` is called for each as soon as its
        outcome is known, so it can be logged at once."""

    async def send(self, item: Outgoing) -> Reply:
        replies: list[Reply] = []
        await self.send_many([item], lambda _, reply: replies.append(reply))
        return replies[0]

    async def close(self) -> None:
        return None


class Transport(ABC):
    description: str
    needs_confirmation: bool  # it mails real people: a send asks first

    @abstractmethod
    async def connect(self) -> Connection: ...


# -- the outbox -----------------------------------------------------------------------------------


class OutboxTransport(Transport):
    """A Maildir: each message written to tmp/, then renamed into new/ (atomic, as Maildir asks).

    The envelope is kept in Return-Path and Delivered-To lines, as a delivery agent would add them.
    """

    needs_confirmation = False

    def __init__(self, folder: Path, label: str) -> None:
        self.folder = folder
        self.description = f"outbox {label}"
        self._sequence = 0

    async def connect(self) -> Connection:
        # Messages hold addresses, and confirmations their links: for the owner's eyes only.
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name in ("tmp", "new", "cur"):
            (self.folder / name).mkdir(mode=0o700, exist_ok=True)
        return OutboxConnection(self)

    def next_name(self) -> str:
        self._sequence += 1
        return f"{time.time_ns()}.P{os.getpid()}Q{self._sequence}.{socket.gethostname()}.eml"


class OutboxConnection(Connection):
    def __init__(self, transport: OutboxTransport) -> None:
        self.transport = transport

    async def send_many(
        self, batch: Sequence[Outgoing], on_reply: Callable[[int, Reply], None]
    ) -> None:
        for index, item in enumerate(batch):
            await content_may_go(item)
            on_reply(index, self._deliver(item))

    def _deliver(self, item: Outgoing) -> Reply:
        name = self.transport.next_name()
        temporary = self.transport.folder / "tmp" / name
        envelope = f"Return-Path: <{item.sender}>\r\nDelivered-To: {item.recipient}\r\n".encode()
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(envelope + from_wire(item.message))
            os.rename(temporary, self.transport.folder / "new" / name)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise TransportError(
                f"cannot write the outbox ({exc.strerror})", path=self.transport.folder
            ) from None
        return Reply(250, f"delivered to {name}", SmtpStage.CONTENT, content_sent=True)


# -- the dry run ----------------------------------------------------------------------------------


class NullTransport(Transport):
    """Accepts every message and keeps none: ``send --dry-run`` is the real sender over this, so
    it cannot disagree with a real run about who would be mailed."""

    description = "nowhere (dry run)"
    needs_confirmation = False

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    async def connect(self) -> Connection:
        return NullConnection(self)


class NullConnection(Connection):
    def __init__(self, transport: NullTransport) -> None:
        self.transport = transport

    async def send_many(
        self, batch: Sequence[Outgoing], on_reply: Callable[[int, Reply], None]
    ) -> None:
        for index, item in enumerate(batch):
            await content_may_go(item)
            self.transport.messages += 1
            self.transport.bytes += len(from_wire(item.message))
            on_reply(index, Reply(250, "not sent (dry run)", SmtpStage.CONTENT, content_sent=True))
