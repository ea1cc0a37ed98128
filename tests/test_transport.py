"""The transport contracts, and the aiosmtplib internals deliver/smtp.py relies on: if a new
aiosmtplib changes them, these tests fail before any send does."""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import re
import tomllib
from collections.abc import Callable, Sequence

import aiosmtplib
import pytest

from hebdo_mail.deliver.smtp import ReplyReader, SmtpConnection, SmtpTransport, parse_smtp_url
from hebdo_mail.deliver.transport import Connection, Outgoing, Reply
from hebdo_mail.deliver.wireformat import CRLF
from hebdo_mail.vocabulary import SmtpStage

from .helpers import REPO
from .smtpserver import Recorder, SmtpServer


def test_a_connection_must_say_how_it_sends() -> None:
    """send() is built on send_many(): a subclass that defines neither cannot exist (it would
    recurse forever)."""

    class Mute(Connection):
        pass

    with pytest.raises(TypeError, match="send_many"):
        Mute()  # type: ignore[abstract]

    class Echo(Connection):
        async def send_many(
            self, batch: Sequence[Outgoing], on_reply: Callable[[int, Reply], None]
        ) -> None:
            for index, item in enumerate(batch):
                on_reply(index, Reply(250, item.recipient, SmtpStage.CONTENT, content_sent=True))

    reply = asyncio.run(Echo().send(Outgoing("a@example.org", "b@example.org", b".\r\n", print)))
    assert reply.code == 250 and reply.text == "b@example.org"


def test_the_installed_aiosmtplib_is_within_the_tested_range() -> None:
    requirement = next(
        r
        for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
        if r.startswith("aiosmtplib")
    )
    cap = re.search(r"<\s*(\d+)", requirement)
    assert cap, f"aiosmtplib has no upper bound in pyproject.toml: {requirement!r}"
    ceiling = int(cap.group(1))
    installed = int(importlib.metadata.version("aiosmtplib").split(".")[0])
    assert installed < ceiling, f"aiosmtplib {installed} is past the cap in {requirement!r}"


def test_aiosmtplib_still_hands_over_what_smtp_connection_takes() -> None:
    """What SmtpTransport.connect and SmtpConnection use of aiosmtplib.SMTP: the greeting and
    EHLO state, the extensions, and the asyncio transport our pipelined reader takes over."""
    signature = inspect.signature(aiosmtplib.SMTP)
    for option in ("hostname", "port", "use_tls", "start_tls", "validate_certs", "timeout"):
        assert option in signature.parameters, f"aiosmtplib.SMTP lost its {option!r} option"

    async def session(url: str) -> tuple[bool, bool, int, str]:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=parse_smtp_url(url).port, timeout=5)
        await client.connect()
        assert isinstance(client.is_ehlo_or_helo_needed, bool)
        await client.ehlo()
        assert isinstance(client.transport, asyncio.Transport)
        pipelining = client.supports_extension("pipelining")
        smtputf8 = client.supports_extension("smtputf8")
        reader = ReplyReader(client.transport)
        client.transport.set_protocol(reader)  # the takeover SmtpConnection does
        reader.write(b"NOOP" + CRLF)
        code, text = await reader.read(5)
        client.transport.close()
        return pipelining, smtputf8, code, text

    with SmtpServer(Recorder()) as server:
        pipelining, smtputf8, code, _ = asyncio.run(session(server.url))
    assert isinstance(pipelining, bool) and isinstance(smtputf8, bool) and code == 250


def test_a_whole_session_through_the_taken_over_transport() -> None:
    recorder = Recorder()

    async def deliver(url: str) -> list[Reply]:
        transport = SmtpTransport(parse_smtp_url(url), password=None, timeout=5, verify_tls=True)
        connection = await transport.connect()
        assert isinstance(connection, SmtpConnection)
        message = b"Subject: contract\r\n\r\nbody\r\n.\r\n"
        items = [Outgoing("a@example.org", f"r{i}@example.org", message, print) for i in range(3)]
        replies: list[Reply] = []
        await connection.send_many(items, lambda index, reply: replies.append(reply))
        await connection.close()
        return replies

    with SmtpServer(recorder) as server:
        replies = asyncio.run(deliver(server.url))
    assert [r.code for r in replies] == [250, 250, 250]
    assert sorted(r.rcpt for r in recorder.received) == [f"r{i}@example.org" for i in range(3)]
