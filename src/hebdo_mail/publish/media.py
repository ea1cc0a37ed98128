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
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return FileKind("TIFF", "image/tiff")
    if head.startswith(b"BM") and int.from_bytes(head[14:18], "little") in (12, 40, 56, 108, 124):
        return FileKind("BMP", "image/bmp")
    if _looks_like_svg(head):
        return FileKind("SVG", "image/svg+xml")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1"):
            return FileKind("HEIC", "image/heic")
        if brand in (b"avif", b"avis"):
            return FileKind("AVIF", "image/avif")
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


def _looks_like_svg(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text)


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
