"""Pictures for mail, with Pillow: what a picture is (format, size once turned upright), how wide
it is shown, and the file a reader downloads.

A picture is shown at most at its own width and never wider than the 560 px column; the file is
kept at most twice that width (sharp on high-density screens), JPEGs re-encoded, PNGs optimised,
the EXIF orientation applied and every piece of metadata (camera, GPS, comments) left behind.
GIFs, animated or not, are kept as they are: re-encoding would lose frames or colours.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from .media import sniff

COLUMN_WIDTH = 560  # px: the 600 px email column minus its padding
MAX_FILE_WIDTH = 2 * COLUMN_WIDTH  # px: enough for screens with two pixels per CSS pixel
JPEG_QUALITY = 82
HEAVY_BYTES = 1024 * 1024  # a picture heavier than this makes a phone reader wait
MAIL_FORMATS = ("JPEG", "PNG", "GIF")  # what Gmail, Outlook and Apple Mail all show
# Bumped when the preparation changes, so prepared files get new names and no reader keeps an
# old copy from a cache.
RECIPE = b"picture/1"
# EXIF orientations 5 to 8 turn the picture a quarter: its width is the stored height.
_QUARTER_TURNS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112


class PictureError(ValueError):
    """A file that mail clients cannot show; the message says what to do."""


@dataclass(frozen=True)
class PictureInfo:
    kind: str  # JPEG, PNG or GIF
    width: int  # px, upright
    height: int
    animated: bool

    @property
    def display_width(self) -> int:
        """The width it is shown at, in CSS pixels: its own, at most the column's."""
        return min(self.width, COLUMN_WIDTH)

    @property
    def kept_as_is(self) -> bool:
        return self.kind == "GIF" or self.animated

    @property
    def file_size(self) -> tuple[int, int]:
        """Width and height of the prepared file, in pixels."""
        if self.kept_as_is or self.width <= MAX_FILE_WIDTH:
            return self.width, self.height
        return MAX_FILE_WIDTH, max(1, round(self.height * MAX_FILE_WIDTH / self.width))


def read_picture(path: Path) -> PictureInfo:
    """Format and upright size of a picture; PictureError when mail clients cannot show it."""
    with path.open("rb") as handle:
        head = handle.read(512)
    kind = sniff(head)
    name = kind.name if kind else path.suffix.lstrip(".").upper() or "unknown"
    if name == "SVG":
        raise PictureError(
            "is SVG, which Gmail and Outlook do not show; export it as PNG "
            "(twice the width it should appear at keeps it sharp)"
        )
    if name not in MAIL_FORMATS:
        what = f"{name}, which not every mail client shows" if kind else "not a picture"
        raise PictureError(f"is {what}; save it as PNG (drawings, logos) or JPEG (photos)")
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(_EXIF_ORIENTATION) in _QUARTER_TURNS:
                width, height = height, width
            animated = bool(getattr(image, "is_animated", False))
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise PictureError(f"cannot be read as {name} ({exc}); export it again") from None
    return PictureInfo(kind=name, width=width, height=height, animated=animated)


def prepare_picture(path: Path, info: PictureInfo) -> bytes:
    """The file readers get: upright, at most MAX_FILE_WIDTH wide, without metadata."""
    if info.kept_as_is:
        return path.read_bytes()
    try:
        with Image.open(path) as original:
            original.load()
            transparency = original.info.get("transparency")
            turned = original.getexif().get(_EXIF_ORIENTATION, 1) != 1
            image = ImageOps.exif_transpose(original)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise PictureError(f"cannot be read as {info.kind} ({exc}); export it again") from None
    if image.size != info.file_size:
        if image.mode not in ("RGB", "RGBA", "L", "LA"):  # resampling needs real colours
            image = image.convert("RGBA")
            transparency = None
        image = image.resize(info.file_size, Image.Resampling.LANCZOS)
    # Nothing of the original's metadata (camera, GPS, comments) is written; only its colours.
    image.info = {k: v for k, v in image.info.items() if k == "icc_profile"}
    out = io.BytesIO()
    if info.kind == "JPEG":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")  # CMYK and the like show badly, or not at all, in mail
        image.save(
            out,
            "JPEG",
            quality=JPEG_QUALITY,
            optimize=True,
            progressive=True,
            icc_profile=image.info.get("icc_profile"),
        )
        return out.getvalue()
    options = {"transparency": transparency} if transparency is not None else {}
    image.save(out, "PNG", optimize=True, **options)
    if image.size == (info.width, info.height) and not turned:
        # Not resized nor turned: the original without its metadata chunks may be smaller still
        # (Pillow's encoder is not the best there is).
        stripped = _png_without_metadata(path.read_bytes())
        if len(stripped) < out.tell():
            return stripped
    return out.getvalue()


# What a PNG needs to be drawn with the right colours; text, EXIF and time chunks go.
_PNG_KEPT = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP"}


def _png_without_metadata(data: bytes) -> bytes:
    out = [data[:8]]
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        end = pos + 12 + length
        if data[pos + 4 : pos + 8] in _PNG_KEPT:
            out.append(data[pos:end])
        if data[pos + 4 : pos + 8] == b"IEND":
            break
        pos = end
    return b"".join(out)
