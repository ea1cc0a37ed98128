"""SMTP relays: each session opened by aiosmtplib (EHLO, STARTTLS, AUTH), then driven by our own
pipelined reader, so that the send log's ``attempt`` line can be written between the 354 and the
message content, and a batch of messages costs one round trip each.

This is the one place that relies on aiosmtplib's internals (its asyncio transport, taken over
after the greeting); tests/test_transport.py fails loudly if they change, and pyproject caps the
aiosmtplib version below its next major release.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiosmtplib

from ..errors import HebdoError
from ..vocabulary import SmtpStage
from .transport import (
    Connection,
    Outgoing,
    RelayRefused,
    Reply,
    Transport,
    TransportError,
    content_may_go,
)
from .wireformat import CRLF, END_OF_DATA

DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


class SmtpUrlError(HebdoError):
    """The --smtp URL or [smtp] url is malformed."""


@dataclass(frozen=True)
class SmtpTarget:
    scheme: str
    host: str
    port: int
    username: str | None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def description(self) -> str:
        return f"{self.scheme}://{self.where}"


def parse_smtp_url(url: str) -> SmtpTarget:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise SmtpUrlError(
            f"SMTP URL {url.split('@')[-1]!r} must start with smtp://, smtp+starttls:// or smtps://"
        )
    if parts.password is not None:
        raise SmtpUrlError(
            "the SMTP URL must not contain a password; give it in HEBDO_SMTP_PASSWORD (or at the prompt)"
        )
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise SmtpUrlError(f"the port of {parts.netloc.split('@')[-1]!r} is not a number") from None
    if not parts.hostname:
        raise SmtpUrlError(
            f"SMTP URL {url!r} names no host, e.g. smtp+starttls://user@mail.example.org:587"
        )
    return SmtpTarget(
        scheme, parts.hostname, port, unquote(parts.username) if parts.username else None
    )


class SmtpTransport(Transport):
    needs_confirmation = True

    def __init__(
        self, target: SmtpTarget, *, password: str | None, timeout: float, verify_tls: bool
    ) -> None:
        self.target = target
        self.password = password
        self.timeout = timeout
        self.verify_tls = verify_tls
        self.description = target.description
        self._own: str | None = None
        self._own_lookup: asyncio.Future[str] | None = None

    async def _own_name(self) -> str:
        """The name this host gives in EHLO (socket.getfqdn, which may ask the resolver): looked
        up once for every connection, not by each one in a thread of its own."""
        if self._own is None:
            lookup = self._own_lookup
            if lookup is None or lookup.cancelled() or lookup.get_loop().is_closed():
                lookup = self._own_lookup = asyncio.ensure_future(asyncio.to_thread(socket.getfqdn))
            self._own = await asyncio.shield(lookup)  # one connect cancelled cancels no other
        return self._own

    async def connect(self) -> Connection:
        target = self.target
        client = aiosmtplib.SMTP(
            hostname=target.host,
            port=target.port,
            local_hostname=await self._own_name(),
            use_tls=target.scheme == "smtps",
            # True means required: with STARTTLS missing the connection fails, it never goes on in clear.
            start_tls=target.scheme == "smtp+starttls",
            validate_certs=self.verify_tls,
            username=target.username,
            password=self.password if target.username else None,
            timeout=self.timeout,
        )
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:  # connect() greets only when TLS or a login needed it
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise RelayRefused(
                f"the relay refused the login of {target.username!r} ({exc.code}); check the user "
                "in the URL and HEBDO_SMTP_PASSWORD",
                where=target.where,
            ) from None
        except aiosmtplib.SMTPConnectTimeoutError:
            raise TransportError(
                f"cannot connect (no answer within {self.timeout:g} s)", where=target.where
            ) from None
        except aiosmtplib.SMTPConnectError as exc:
            cause = exc.__cause__
            reason = (
                cause.strerror if isinstance(cause, OSError) else None
            ) or "connection refused"
            raise TransportError(f"cannot connect ({reason})", where=target.where) from None
        except aiosmtplib.SMTPException as exc:
            reason = _describe(exc)
            if "STARTTLS" in str(exc):
                reason = "the relay does not offer STARTTLS, so nothing is sent in clear"
            raise TransportError(
                f"cannot open an SMTP session ({reason})", where=target.where
            ) from None
        except ssl.SSLError as exc:
            raise TransportError(
                f"TLS failed ({exc.reason or exc}); check the certificate", where=target.where
            ) from None
        except OSError as exc:
            raise TransportError(
                f"cannot connect ({exc.strerror or exc})", where=target.where
            ) from None
        return SmtpConnection(client, self.timeout)


def _describe(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{code} {message}" if code else message


class ReplyReader(asyncio.BufferedProtocol):
    """Parses SMTP replies off the connection as they arrive, any number per read, so commands
    can be pipelined (RFC 2920). It takes over the transport aiosmtplib opened.

    Each read lands in one buffer kept for the session (asyncio's BufferedProtocol): a plain
    Protocol gets a fresh 256 KiB bytes object per read, which the C allocator maps and unmaps
    with the kernel each time (three system calls and fresh pages a message)."""

    READ_SIZE = 16384  # far more than the replies to a pipelined batch

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.buffer = bytearray()
        self.incoming = memoryview(bytearray(self.READ_SIZE))
        self.replies: deque[tuple[int, str]] = deque()
        self.lines: list[bytes] = []
        self.waiter: asyncio.Future[None] | None = None
        self.lost: Exception | None = None
        self.loop = asyncio.get_running_loop()  # once: 3.11 asks the kernel for the pid each call

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.incoming

    def buffer_updated(self, nbytes: int) -> None:
        self.buffer += self.incoming[:nbytes]
        while (end := self.buffer.find(b"\n")) >= 0:
            line = bytes(self.buffer[: end + 1]).rstrip(b"\r\n")
            del self.buffer[: end + 1]
            self.lines.append(line)
            if line[3:4] != b"-":  # the last line of a reply
                try:
                    code = int(self.lines[0][:3])
                except ValueError:
                    code = 0
                text = "\n".join(part[4:].decode("utf-8", "replace") for part in self.lines)
                self.replies.append((code, text))
                self.lines = []
        self._wake()

    def eof_received(self) -> bool:
        self._fail(ConnectionResetError("the relay closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("the connection was closed"))

    def _fail(self, exc: Exception) -> None:
        if self.lost is None:
            self.lost = exc
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def read(self, timeout: float) -> tuple[int, str]:
        loop = self.loop
        deadline = loop.time() + timeout
        while not self.replies:
            if self.lost is not None:
                raise self.lost
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no reply within {timeout:g} s")
            self.waiter = loop.create_future()
            timer = loop.call_later(remaining, self._wake)
            try:
                await self.waiter
            finally:
                timer.cancel()
                self.waiter = None
        return self.replies.popleft()

    def write(self, data: bytes) -> None:
        if self.lost is not None or self.transport.is_closing():
            raise self.lost or ConnectionResetError("the connection was closed")
        self.transport.write(data)


class SmtpConnection(Connection):
    """One SMTP session, opened (EHLO, STARTTLS, AUTH) by aiosmtplib, then driven directly: with
    PIPELINING, MAIL, RCPT and DATA go out in one write and the content in a second, so a message
    costs two round trips instead of four."""

    def __init__(self, client: aiosmtplib.SMTP, timeout: float) -> None:
        transport = client.transport
        assert isinstance(transport, asyncio.Transport)
        self.pipelining = client.supports_extension("pipelining")
        self.smtputf8 = client.supports_extension("smtputf8")
        self.timeout = timeout
        self.reader = ReplyReader(transport)
        transport.set_protocol(self.reader)
        self.transport = transport

    @property
    def usable(self) -> bool:
        return self.reader.lost is None and not self.transport.is_closing()

    def _commands(self, item: Outgoing) -> bytes:
        utf8 = not (item.sender.isascii() and item.recipient.isascii())
        option = b" SMTPUTF8" if utf8 else b""
        return (
            b"MAIL FROM:<" + item.sender.encode() + b">" + option + CRLF
            + b"RCPT TO:<" + item.recipient.encode() + b">" + CRLF
            + b"DATA" + CRLF
        )  # fmt: skip

    async def send_many(
        self, batch: Sequence[Outgoing], on_reply: Callable[[int, Reply], None]
    ) -> None:
        """With PIPELINING, each message's content goes out in the same write as the next
        message's MAIL, RCPT and DATA (RFC 2920 allows content first in a group), so a batch of n
        messages costs n + 1 round trips instead of 2n."""
        pipelined = self.pipelining
        answered = [False] * len(batch)

        def answer(index: int, reply: Reply) -> None:
            answered[index] = True
            on_reply(index, reply)

        waiting: int | None = None  # the message whose content is out and whose reply is not in
        try:
            index = self._next_sendable(batch, 0, answer)
            if pipelined and index < len(batch):
                self.reader.write(self._commands(batch[index]))
            while index < len(batch):
                if waiting is not None:
                    await self._final(waiting, answer)
                    waiting = None
                if pipelined:
                    refusal = await self._envelope_replies()
                else:
                    refusal = await self._envelope_step_by_step(batch[index])
                following = self._next_sendable(batch, index + 1, answer)
                next_commands = b""
                if pipelined and following < len(batch):
                    next_commands = self._commands(batch[following])
                if refusal is not None:
                    answer(index, refusal)
                    if next_commands:
                        self.reader.write(next_commands)
                else:
                    await content_may_go(batch[index])
                    self.reader.write(batch[index].message + next_commands)
                    waiting = index
                index = following
            if waiting is not None:
                await self._final(waiting, answer)
        except (OSError, TimeoutError) as exc:
            # The session is gone. The message whose content went out is unknown; every other
            # message not answered yet never reached DATA, so it is deferred and safe to resend.
            self.transport.close()
            for index, done in enumerate(answered):
                if not done:
                    sent = index == waiting
                    on_reply(
                        index,
                        Reply(
                            None,
                            _describe(exc),
                            SmtpStage.CONTENT if sent else SmtpStage.MAIL,
                            content_sent=sent,
                        ),
                    )
        except BaseException:
            # Anything else (the send log cannot be written, a cancellation) leaves the session
            # in the middle of a transaction: drop it, so no message half sent is ever completed.
            self.transport.close()
            raise

    def _next_sendable(
        self, batch: Sequence[Outgoing], start: int, on_reply: Callable[[int, Reply], None]
    ) -> int:
        """Skip (and answer for) messages this relay cannot take: an internationalised address
        without SMTPUTF8."""
        index = start
        while index < len(batch):
            item = batch[index]
            if self.smtputf8 or (item.sender.isascii() and item.recipient.isascii()):
                return index
            on_reply(
                index,
                Reply(
                    553,
                    "5.6.7 the relay does not accept internationalised addresses (SMTPUTF8)",
                    SmtpStage.RCPT,
                ),
            )
            index += 1
        return index

    async def _envelope_step_by_step(self, item: Outgoing) -> Reply | None:
        """Without PIPELINING: MAIL, RCPT and DATA one at a time, stopping at a refusal."""
        for line, stage in zip(
            self._commands(item).split(CRLF),
            (SmtpStage.MAIL, SmtpStage.RCPT, SmtpStage.DATA),
            strict=False,
        ):
            self.reader.write(line + CRLF)
            code, text = await self.reader.read(self.timeout)
            if code not in (250, 251, 354):
                await self._reset(code)
                return Reply(code, text, stage)
        return None

    async def _envelope_replies(self) -> Reply | None:
        """Read the replies to MAIL, RCPT and DATA; the first refusal, or None after a 354."""
        replies: list[Reply] = []
        for stage in (SmtpStage.MAIL, SmtpStage.RCPT, SmtpStage.DATA):
            try:
                code, text = await self.reader.read(self.timeout)
            except (OSError, TimeoutError):
                refused = next((r for r in replies if r.code is not None and r.code >= 400), None)
                if refused is not None:
                    self.transport.close()
                    return refused  # e.g. a 421 to MAIL, then the relay hung up
                raise
            replies.append(Reply(code, text, stage))
        refusal = next((r for r in replies if r.code not in (250, 251, 354)), None)
        if refusal is None:
            return None
        if replies[-1].code == 354 and self.usable:  # a relay that opened DATA anyway
            self.reader.write(END_OF_DATA)
            await self.reader.read(self.timeout)
        await self._reset(refusal.code or 0)
        return refusal

    async def _final(self, index: int, answer: Callable[[int, Reply], None]) -> None:
        code, text = await self.reader.read(self.timeout)
        if code == 421:  # the relay is closing the session
            self.transport.close()
        answer(index, Reply(code, text, SmtpStage.CONTENT, content_sent=True))

    async def _reset(self, code: int) -> None:
        """After a refusal the transaction must be reset before the next MAIL."""
        if code == 421 or not self.usable:
            self.transport.close()
            return
        try:
            self.reader.write(b"RSET" + CRLF)
            await self.reader.read(self.timeout)
        except (OSError, TimeoutError):
            self.transport.close()

    async def close(self) -> None:
        if self.usable:
            try:
                self.reader.write(b"QUIT" + CRLF)
                await self.reader.read(min(self.timeout, 5))
            except (OSError, TimeoutError):
                pass
        self.transport.close()
