"""The fast path's form of a message: one edition in one format prepared once in SMTP DATA form
(headers encoded, both parts quoted-printable, CRLF, dot-stuffed), with gaps where each recipient's
own header lines and the few body lines that print a personal field are spliced in.

Lines are cut and encoded exactly as the email package does, so the message a WireTemplate
assembles parses the same as message.py's reference path (tests/test_fastpath.py checks).
"""

from __future__ import annotations

import email.policy
import hashlib
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING

from ..publish.rendered import RenderedEdition
from ..publish.slots import Personalised
from .wireformat import CRLF, END_OF_DATA, dot_stuff_lines, qp_lines, split_lines

if TYPE_CHECKING:
    from ..config import NewsletterSettings

# Serialising, a header may run to 998 octets: an unsubscribe URL is one word longer than 78
# columns, and the email package would otherwise RFC 2047-encode it, which breaks the header.
WIRE_POLICY = email.policy.SMTP.clone(max_line_length=998)
WIRE_POLICY_UTF8 = email.policy.SMTPUTF8.clone(max_line_length=998)


@dataclass(frozen=True)
class PreparedEdition:
    """An edition with its parts split into fixed pieces and per-recipient slots, once."""

    edition: RenderedEdition
    html: Personalised
    text: Personalised

    @classmethod
    def of(cls, edition: RenderedEdition) -> PreparedEdition:
        return cls(
            edition=edition,
            html=Personalised.split(edition.html, edition.marker_pattern),
            text=Personalised.split(edition.text, edition.marker_pattern),
        )


@dataclass(frozen=True)
class PersonalLine:
    """A body line holding personal fields: filled and encoded per recipient."""

    text: Personalised
    escape_html: bool

    def encode(self, values: Sequence[str]) -> bytes:
        filled = self.text.fill(values, html.escape if self.escape_html else None)
        if "\r" in filled or "\n" in filled:
            # As the email package does: a CR or LF inside a value starts a new line.
            filled = "\n".join(split_lines(filled))
        return dot_stuff_lines(qp_lines(filled))


@dataclass(frozen=True)
class PersonalHeaders:
    """The header lines that differ per recipient, already encoded."""

    to: bytes
    date: bytes
    message_id: bytes
    list_unsubscribe: bytes


class WireTemplate:
    """One edition in one format, in DATA form, with gaps for what differs per recipient."""

    def __init__(
        self, settings: NewsletterSettings, issue_id: str, prepared: PreparedEdition, fmt: str
    ) -> None:
        edition = prepared.edition
        self.slots = edition.slots
        self.from_header = _header_lines([("From", settings.sender_in(edition.lang))])
        self.subject_header = _header_lines([("Subject", edition.subject)])
        middle = [("Reply-To", settings.reply_to)] if settings.reply_to else []
        middle.append(("List-Id", f"{settings.name} <{settings.list_identifier}>"))
        self.middle_headers = _header_lines(middle)
        post = _header_lines([("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")])
        mime = b"MIME-Version: 1.0\r\n"
        text_type = b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n'
        html_type = b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n'
        body: list[bytes | PersonalLine] = []
        if fmt == "text":
            # In the order the email package writes them, so both paths read the same.
            tail_bytes = post + text_type + mime + CRLF
            body += _part(edition.text, edition.marker_pattern, escape_html=False)
        else:
            # QP never produces "==", so a boundary made of it cannot occur in the parts.
            seed = hashlib.sha256(f"{issue_id}/{edition.lang}".encode()).hexdigest()[:20]
            boundary = f"==============={seed}=="
            tail_bytes = (
                post
                + mime
                + f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode()
            )
            delimiter = f"--{boundary}\r\n".encode()
            body += [delimiter + text_type + CRLF]
            body += _part(edition.text, edition.marker_pattern, escape_html=False)
            body += [CRLF + delimiter + html_type + CRLF]
            body += _part(edition.html, edition.marker_pattern, escape_html=True)
            body += [f"\r\n--{boundary}--\r\n".encode()]
        self.tail_headers = tail_bytes
        self.body = _merge_fixed(body)

    def assemble(self, headers: PersonalHeaders, values: Sequence[str]) -> bytes:
        pieces = [
            self.from_header,
            headers.to,
            self.subject_header,
            headers.date,
            headers.message_id,
            self.middle_headers,
            headers.list_unsubscribe,
            self.tail_headers,
        ]
        for piece in self.body:
            pieces.append(piece if isinstance(piece, bytes) else piece.encode(values))
        pieces.append(END_OF_DATA)
        return b"".join(pieces)


def _header_lines(pairs: Sequence[tuple[str, str]]) -> bytes:
    """Header lines encoded by the email package itself, once, so both paths agree."""
    message = EmailMessage(policy=WIRE_POLICY)
    for name, value in pairs:
        message[name] = value
    return dot_stuff_lines(message.as_bytes().split(CRLF + CRLF)[0] + CRLF)


def _part(
    source: str, pattern: re.Pattern[str], *, escape_html: bool
) -> list[bytes | PersonalLine]:
    """A part's lines: runs of fixed lines encoded now, lines with personal fields kept apart.

    Lines are cut where the email package cuts them, so both paths agree."""
    pieces: list[bytes | PersonalLine] = []
    fixed: list[str] = []
    for line in split_lines(source):
        if not pattern.search(line):
            fixed.append(line)
            continue
        if fixed:
            pieces.append(dot_stuff_lines(qp_lines("\n".join(fixed))))
            fixed = []
        pieces.append(PersonalLine(Personalised.split(line, pattern), escape_html))
    if fixed:
        pieces.append(dot_stuff_lines(qp_lines("\n".join(fixed))))
    return pieces


def _merge_fixed(pieces: list[bytes | PersonalLine]) -> list[bytes | PersonalLine]:
    merged: list[bytes | PersonalLine] = []
    for piece in pieces:
        if isinstance(piece, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += piece
        else:
            merged.append(piece)
    return merged
