"""The parts of a returned message, as text: its own words, the returned original, the delivery
status fields; decoded headers and dates. Tolerant of the broken MIME returned mail often has."""

from __future__ import annotations

import datetime as dt
import email
import html
import re
from email.errors import HeaderParseError
from email.header import Header, decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from .report_text import report_part

Parts = list[tuple[Message, str]]  # each part of a message with its content type


def blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    return [email.message_from_string(text_of(part).strip() + "\n")]


def texts(parts: Parts) -> tuple[str, str, str]:
    """(the report's own words, the returned original's text, the delivery status fields)."""
    report: list[str] = []
    original: list[str] = []
    status: list[str] = []
    inside_original = False
    for part, content_type in parts:
        if content_type in ("message/delivery-status", "message/global-delivery-status"):
            status.append("\n\n".join(block_text(b) for b in blocks(part)))
            continue
        if content_type in ("message/rfc822", "text/rfc822-headers", "message/global"):
            inside_original = True
            if content_type == "text/rfc822-headers":
                original.append(text_of(part))
            continue
        attachment = str(part.get("Content-Disposition", "")).lower().startswith("attachment")
        if content_type.startswith("multipart/") and not part.is_multipart():
            content = str(part.get_payload())  # its boundary is broken: the parts as text
        elif part.is_multipart() or not content_type.startswith("text/"):
            continue
        else:
            content = text_of(part)
        if content_type == "text/html":
            content = re.sub(r"(?s)<(style|script)\b.*?</\1>", " ", content)
            content = re.sub(r"<br\s*/?>|</p>|</div>|</tr>", "\n", content, flags=re.I)
            content = html.unescape(re.sub(r"<[^>]+>", " ", content))
        (original if inside_original or attachment else report).append(content)
    report_text = "\n".join(report)
    if not original:
        report_text, quoted = report_part(report_text)
        original.append(quoted)
    return report_text, "\n".join(original), "\n".join(status)


def block_text(block: Message) -> str:
    return "\n".join(f"{name}: {' '.join(str(value).split())}" for name, value in block.items())


def decoded(value: object) -> str:
    """A header's text, RFC 2047 encoded words decoded."""
    if value is None:
        return ""
    try:
        if isinstance(value, Header):  # raw 8-bit bytes in a header: most likely UTF-8
            return "".join(
                text.decode(known(charset), "replace") if isinstance(text, bytes) else text
                for text, charset in decode_header(value)
            )
        return str(make_header(decode_header(str(value))))
    except (LookupError, UnicodeError, ValueError, HeaderParseError):
        return str(value)


def known(charset: str | None) -> str:
    return "utf-8" if charset in (None, "unknown-8bit") else str(charset)


def first_address(value: object) -> str | None:
    if not value:
        return None
    addresses = getaddresses([decoded(value)])
    return addresses[0][1] if addresses and "@" in addresses[0][1] else None


def text_of(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    for charset in (part.get_content_charset() or "utf-8", "utf-8"):
        try:
            return payload.decode(charset)
        except (LookupError, UnicodeError):  # mislabelled, or a charset Python does not know
            continue
    return payload.decode("utf-8", "replace")


def returned_original(parts: Parts) -> Message | None:
    for part, content_type in parts:
        if content_type in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        elif content_type == "text/rfc822-headers":
            return email.message_from_string(text_of(part))
    return None


def headers_text(message: Message | None) -> str:
    if message is None:
        return ""
    return "\n".join(f"{name}: {value}" for name, value in message.items())


def day(message: Message) -> dt.date | None:
    try:
        when = parsedate_to_datetime(str(message.get("Date", "")))
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).date()
