"""Media files are described by what they really are, whatever their extension says."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hebdo_mail.publish.i18n import format_date, format_size
from hebdo_mail.publish.media import inspect_file
from hebdo_mail.publish.pictures import read_picture

from .helpers import REPO

SAMPLES = {
    "ID3\x03": (b"ID3\x03\x00\x00\x00\x00\x00\x00", "MP3"),
    "frame": (bytes([0xFF, 0xFB, 0x90, 0xC0]), "MP3"),
    "pdf": (b"%PDF-1.7\n", "PDF"),
    "jpeg": (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG"),
    "png": (b"\x89PNG\r\n\x1a\n", "PNG"),
    "ogg": (b"OggS\x00\x02", "Ogg"),
    "mp4": (b"\x00\x00\x00\x18ftypisom", "MP4"),
    "m4a": (b"\x00\x00\x00\x18ftypM4A ", "M4A"),
    "wav": (b"RIFF\x00\x00\x00\x00WAVEfmt ", "WAV"),
}


@pytest.mark.parametrize("name", SAMPLES)
def test_kind_comes_from_content_not_extension(tmp_path: Path, name: str) -> None:
    head, expected = SAMPLES[name]
    path = tmp_path / "renamed.bin"
    path.write_bytes(head + bytes(5000))
    kind, size = inspect_file(path)
    assert (kind.name, size) == (expected, len(head) + 5000)


def test_unknown_content_falls_back_to_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("plain words")
    kind, _ = inspect_file(path)
    assert (kind.name, kind.mime) == ("TXT", "text/plain")


def test_sizes_read_as_the_bulletin_wrote_them() -> None:
    # The bulletin's "(.MP3/5770kb)": 5,908,480 bytes.
    assert format_size(5770 * 1024, "fr") == "5,6\u00a0Mo"
    assert format_size(5770 * 1024, "en") == "5.6\u00a0MB"
    assert format_size(900, "en") == "900\u00a0B"
    assert format_size(48 * 1024, "fr") == "48\u00a0ko"


def test_dates_per_locale_and_pattern() -> None:
    day = dt.date(2006, 12, 15)
    assert format_date(day, "fr") == "15 décembre 2006"
    assert format_date(day, "en") == "December 15, 2006"
    assert format_date(day, "en-GB") == "15 December 2006"
    assert format_date(day, "en", "dd-MMM-yyyy") == "15-Dec-2006"
    assert format_date(dt.date(2006, 12, 1), "fr") == "1er décembre 2006"


def test_picture_size_is_read_from_the_file() -> None:
    info = read_picture(REPO / "issues" / "2006-50" / "rose-des-vents.png")
    assert (info.kind, info.width, info.height, info.display_width) == ("PNG", 560, 240, 560)
