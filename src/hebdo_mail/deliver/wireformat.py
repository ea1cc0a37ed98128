"""Byte-level helpers for the form a message takes on the wire (RFC 5321/5322/2045/2047).

Used by the fast path of message.py, which prepares an edition once and then only encodes the few
lines and header values that differ per recipient, and by the transports.
"""

from __future__ import annotations

import base64
import binascii
import re

from ..publish.rendered import MAX_LINE_OCTETS

CRLF = b"\r\n"
END_OF_DATA = b".\r\n"
_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    """Lines as the email package cuts a body: at CRLF, CR or LF only (bytes.splitlines), unlike
    str.splitlines, which also cuts at form feeds and Unicode separators."""
    lines = _LINE_BREAK.split(text)
    return lines[:-1] if lines and lines[-1] == "" else lines


def qp_lines(text: str) -> bytes:
    """Quoted-printable (UTF-8) of text, CRLF line ends, a CRLF after the last line too.

    binascii's encoder is C: it escapes '=', non-ASCII and trailing white space and adds soft
    breaks so that no encoded line passes 76 characters.
    """
    encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True)
    return encoded.replace(b"\n", CRLF) + CRLF


def dot_stuff_lines(data: bytes) -> bytes:
    """Double a dot that starts a line (the data must start at a line start and use CRLF)."""
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


def to_wire(message: bytes) -> bytes:
    """A whole message (any line ends) in DATA form: CRLF, dot-stuffed, the final dot added."""
    body = re.sub(rb"\r?\n", b"\r\n", message)
    if not body.endswith(CRLF):
        body += CRLF
    return dot_stuff_lines(body) + END_OF_DATA


def from_wire(wire: bytes) -> bytes:
    """The message a DATA form carries: the final dot removed, stuffed dots undone."""
    body = wire.removesuffix(END_OF_DATA)
    unstuffed = body.replace(b"\r\n..", b"\r\n.")
    return unstuffed[1:] if unstuffed.startswith(b"..") else unstuffed


WORD_BYTES = 45  # UTF-8 bytes per folded RFC 2047 word: 60 in base64, 72 with its delimiters


def mailbox_header(name: str, address: str, header: str = "To") -> bytes:
    """``Name <address>`` as a header line: the name as is, quoted when it holds specials, or
    RFC 2047-encoded when it is not plain ASCII. One encoded word while the line fits in 998
    octets (split words come back from some decoders, Python's among them, with spaces inserted
    between them); a longer one is folded into words of whole characters, one per line."""
    if not name:
        return f"{header}: {address}\r\n".encode()
    if name.isascii() and name.isprintable() and "=?" not in name:
        shown = name
        if _SPECIALS.search(name) or name != name.strip():
            shown = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        shown = _encoded_word(name)
        if len(f"{header}: {shown} <{address}>".encode()) > MAX_LINE_OCTETS:
            shown = "\r\n ".join(_encoded_word(part) for part in _utf8_chunks(name, WORD_BYTES))
    return f"{header}: {shown} <{address}>\r\n".encode()


def _encoded_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def _utf8_chunks(text: str, size: int) -> list[str]:
    """``text`` cut into pieces of whole characters, each at most ``size`` bytes of UTF-8."""
    pieces, piece, used = [], "", 0
    for char in text:
        length = len(char.encode("utf-8"))
        if used + length > size:
            pieces.append(piece)
            piece, used = "", 0
        piece += char
        used += length
    return [*pieces, piece]
