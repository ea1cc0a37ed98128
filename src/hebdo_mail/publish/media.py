"""Media files of an issue: their real type, read from the first bytes, and their size.

The bulletin described its downloads as "Audio file of the press briefing (.MP3/5770kb)"; the build
states the same facts from the file itself, so a renamed or re-encoded file is never mislabelled.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FileKind:
    name: str  # what readers see: "MP3", "PDF", "JPEG"
    mime: str


def _mp3_frame(head: bytes) -> bool:
    # An MPEG audio frame starts with 11 set bits; layer bits 01 mean Layer III.
    return (
        len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and (head[1] & 0x06) == 0x02
    )


def sniff(head: bytes) -> FileKind | None:
    """The kind of a file from its first bytes, or None when no signature matches."""
    if head.startswith(b"ID3") or _mp3_frame(head):
        return FileKind("MP3", "audio/mpeg")
    if head.startswith(b"%PDF-"):
        return FileKind("PDF", "application/pdf")
    if head.startswith(b"\xff\xd8\xff"):
        return FileKind("JPEG", "image/jpeg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return FileKind("PNG", "image/png")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return FileKind("GIF", "image/gif")
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return FileKind("WebP", "image/webp")
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return FileKind("WAV", "audio/wav")
    if head.startswith(b"OggS"):
        return FileKind("Ogg", "audio/ogg")
    if head.startswith(b"fLaC"):
        return FileKind("FLAC", "audio/flac")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B "):
            return FileKind("M4A", "audio/mp4")
        if brand.startswith(b"qt"):
            return FileKind("MOV", "video/quicktime")
        return FileKind("MP4", "video/mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return FileKind("WebM", "video/webm")
    if head.startswith(b"PK\x03\x04"):
        return FileKind("ZIP", "application/zip")
    return None


def inspect_file(path: Path) -> tuple[FileKind, int]:
    """Kind and size in bytes; falls back to the extension when the content has no signature."""
    with path.open("rb") as handle:
        head = handle.read(64)
    size = path.stat().st_size
    kind = sniff(head)
    if kind is None:
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        label = path.suffix.lstrip(".").upper() or "file"
        kind = FileKind(label, mime)
    return kind, size


def image_width(path: Path) -> int | None:
    """Pixel width of a PNG, GIF or JPEG, read from its header; None for anything else."""
    try:
        data = path.read_bytes()[:65536]
    except OSError:
        return None
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big")
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return int.from_bytes(data[6:8], "little")
    if data.startswith(b"\xff\xd8"):
        # Walk the JPEG segments to the start-of-frame marker, which holds the dimensions.
        pos = 2
        while pos + 9 < len(data):
            if data[pos] != 0xFF:
                return None
            marker = data[pos + 1]
            length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            if marker in (
                0xC0,
                0xC1,
                0xC2,
                0xC3,
                0xC5,
                0xC6,
                0xC7,
                0xC9,
                0xCA,
                0xCB,
                0xCD,
                0xCE,
                0xCF,
            ):
                return int.from_bytes(data[pos + 7 : pos + 9], "big")
            pos += 2 + length
    return None
