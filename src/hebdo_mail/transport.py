"""Transports: how a finished message leaves. SMTP through aiosmtplib, or the built-in outbox (a
Maildir), used when no relay is configured.

A transport only carries bytes; it never builds or changes a message. Each ``Connection.send``
answers with a ``Reply`` whose ``outcome`` says what the send log must record.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiosmtplib

from .errors import HebdoError

DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


class TransportError(HebdoError, ConnectionError):
    """The relay cannot be used at all: unreachable, refusing us, or not secure as required."""


class RelayRefused(TransportError):
    """The relay answered but will not let us send (login refused, no STARTTLS): retrying is useless."""


class SmtpUrlError(HebdoError):
    """The --smtp URL or [smtp] url is malformed."""


@dataclass(frozen=True)
class Reply:
    code: int | None  # None: no reply came (the connection was lost or timed out)
    text: str
    stage: str  # "mail", "rcpt", "data" or "content"
    content_sent: bool = False  # the message and its final dot were handed to the relay

    @property
    def outcome(self) -> str:
        """sent, failed, deferred or unknown (a lost reply after the final dot)."""
        if self.code is None:
            return "unknown" if self.content_sent else "deferred"
        if 200 <= self.code < 300:
            return "sent"
        return "failed" if self.code >= 500 else "deferred"

    @property
    def is_permanent_address_refusal(self) -> bool:
        """5.1.x: the mailbox or domain does not exist (a hard bounce)."""
        return self.code is not None and self.code >= 500 and bool(re.match(r"5\.1\.\d", self.text))


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


def dot_stuff(message: bytes) -> bytes:
    """The DATA form: CRLF line ends, a leading dot doubled, the final ``.\\r\\n`` added."""
    body = re.sub(rb"\r?\n", b"\r\n", message)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return re.sub(rb"(?m)^\.", b"..", body) + b".\r\n"


class Connection:
    @property
    def usable(self) -> bool:
        """False once the relay has closed the session; the sender then opens a new one."""
        return True

    async def send(
        self, sender: str, recipient: str, message: bytes, before_content: Callable[[], None]
    ) -> Reply:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class Transport:
    description: str
    needs_confirmation: bool

    async def connect(self) -> Connection:
        raise NotImplementedError


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
        for name in ("tmp", "new", "cur"):
            (self.folder / name).mkdir(parents=True, exist_ok=True)
        return OutboxConnection(self)

    def next_name(self) -> str:
        self._sequence += 1
        return f"{time.time_ns()}.P{os.getpid()}Q{self._sequence}.{socket.gethostname()}.eml"


class OutboxConnection(Connection):
    def __init__(self, transport: OutboxTransport) -> None:
        self.transport = transport

    async def send(
        self, sender: str, recipient: str, message: bytes, before_content: Callable[[], None]
    ) -> Reply:
        name = self.transport.next_name()
        temporary = self.transport.folder / "tmp" / name
        envelope = f"Return-Path: <{sender}>\r\nDelivered-To: {recipient}\r\n".encode()
        before_content()
        try:
            temporary.write_bytes(envelope + message)
            os.rename(temporary, self.transport.folder / "new" / name)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise TransportError(
                f"cannot write the outbox ({exc.strerror})", path=self.transport.folder
            ) from None
        return Reply(250, f"delivered to {name}", "content", content_sent=True)


# -- SMTP -----------------------------------------------------------------------------------------


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

    async def connect(self) -> Connection:
        target = self.target
        client = aiosmtplib.SMTP(
            hostname=target.host,
            port=target.port,
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


class SmtpConnection(Connection):
    def __init__(self, client: aiosmtplib.SMTP, timeout: float) -> None:
        self.client = client
        self.timeout = timeout

    @property
    def usable(self) -> bool:
        return self.client.is_connected

    async def send(
        self, sender: str, recipient: str, message: bytes, before_content: Callable[[], None]
    ) -> Reply:
        client = self.client
        stage = "mail"
        try:
            options = ["SMTPUTF8"] if not recipient.isascii() else []
            if options and not client.supports_extension("smtputf8"):
                return Reply(
                    553,
                    "5.6.7 the relay does not accept internationalised addresses (SMTPUTF8)",
                    "rcpt",
                )
            try:
                await client.mail(sender, options=options)
                stage = "rcpt"
                await client.rcpt(recipient, encoding="utf-8" if options else "ascii")
            except aiosmtplib.SMTPResponseException as exc:
                await self._reset()
                return Reply(exc.code, exc.message, stage)
            stage = "data"
            response = await client.execute_command(b"DATA")
            if response.code != 354:
                await self._reset()
                return Reply(response.code, response.message, stage)
            # Recorded before the content goes out: a crash from here on shows up as "unknown".
            before_content()
            protocol = client.protocol
            assert protocol is not None
            protocol.write(dot_stuff(message))
            stage = "content"
            response = await protocol.read_response(timeout=self.timeout)
            if response.code == 421:  # the relay is closing the session
                client.close()
            return Reply(response.code, response.message, stage, content_sent=True)
        except (
            aiosmtplib.SMTPServerDisconnected,
            aiosmtplib.SMTPTimeoutError,
            ConnectionError,
            OSError,
        ) as exc:
            client.close()
            return Reply(None, _describe(exc), stage, content_sent=stage == "content")

    async def _reset(self) -> None:
        """After a refusal the transaction must be reset before the next MAIL."""
        if self.client.is_connected:
            try:
                await self.client.rset()
            except (aiosmtplib.SMTPException, OSError):
                self.client.close()

    async def close(self) -> None:
        if self.client.is_connected:
            try:
                await asyncio.wait_for(self.client.quit(), timeout=5)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                self.client.close()
