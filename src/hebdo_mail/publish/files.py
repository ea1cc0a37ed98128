"""The files an issue puts online: its pictures, prepared for mail (pictures.py), and its
downloads, as they are. The build writes them to ``build/<issue-id>/files/``; the web app and
``build --site`` publish them.

Every file has a public name that carries a short hash of its content and of how it is prepared
(``rose-des-vents.3f9a1c2e.png``). So a file can be online as soon as the issue is built (a proof
copy shows its pictures before the first real send) without making the issue findable, and a
changed picture gets a new name: no reader ever sees a stale copy from a cache. The hash is taken
of the source file, not of the prepared one, so a name stays the same for as long as the source
does, and the links of mail already sent keep working.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import IssueError
from .pictures import RECIPE, PictureError, PictureInfo, prepare_picture, read_picture

HASH_LENGTH = 8  # hex digits: 32 bits, enough to tell versions apart, short enough to read
LOGO = "@logo"  # the [style] logo's name among an issue's pictures (no article file has it)


def slug(text: str, default: str = "file") -> str:
    """Lowercase ASCII words joined by '-': 'Rose des vents' -> 'rose-des-vents'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or default


@dataclass(frozen=True)
class IssueFile:
    name: str  # as the articles write it, relative to the issue folder
    source: Path
    public_name: str  # its name under files/, wherever the issue is published
    picture: PictureInfo | None  # None: a download, published byte for byte

    @property
    def label(self) -> str:
        """Its name for the editor: as the articles write it (the logo: its file's name)."""
        return self.source.name if self.name == LOGO else self.name

    def content(self) -> bytes:
        """What readers download: the prepared picture, or the file itself."""
        if self.picture is None:
            return self.source.read_bytes()
        try:
            return prepare_picture(self.source, self.picture)
        except PictureError as exc:
            raise IssueError(f"picture {self.label!r} {exc}", path=self.source) from None


def public_name(name: str, source: Path, recipe: bytes) -> str:
    """``slug-of-the-stem.HASH.ext``: the hash of the recipe and the source's bytes."""
    digest = hashlib.sha256(recipe + b"\0")
    with source.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    path = PurePosixPath(name)
    return f"{slug(path.stem)}.{digest.hexdigest()[:HASH_LENGTH]}{path.suffix.lower()}"


class IssueFiles:
    """The files of one issue, found by the name the articles use or by their public name."""

    def __init__(self, entries: Iterable[IssueFile]) -> None:
        self._pictures: dict[str, IssueFile] = {}
        self._downloads: dict[str, IssueFile] = {}
        self._public: dict[str, IssueFile] = {}
        for entry in entries:
            role = self._downloads if entry.picture is None else self._pictures
            role[entry.name] = entry
            self._public[entry.public_name] = entry

    @classmethod
    def of(
        cls,
        folder: Path,
        pictures: Iterable[str],
        downloads: Iterable[str],
        logo: Path | None = None,
    ) -> IssueFiles:
        """Read the named files of ``folder`` (already checked to exist and be valid), and the
        workspace's logo, published with every issue like its own pictures."""
        entries = []
        if logo is not None:
            info = read_picture(logo)
            entries.append(IssueFile(LOGO, logo, public_name(logo.name, logo, RECIPE), info))
        for name in dict.fromkeys(pictures):
            source = folder / name
            info = read_picture(source)
            entries.append(IssueFile(name, source, public_name(name, source, RECIPE), info))
        for name in dict.fromkeys(downloads):
            source = folder / name
            entries.append(IssueFile(name, source, public_name(name, source, b""), None))
        return cls(entries)

    @property
    def logo(self) -> IssueFile | None:
        return self._pictures.get(LOGO)

    def picture(self, name: str) -> IssueFile:
        return self._pictures[name]

    def download(self, name: str) -> IssueFile:
        return self._downloads[name]

    def public(self, public_name: str) -> IssueFile | None:
        return self._public.get(public_name)

    def __iter__(self) -> Iterator[IssueFile]:
        return iter(self._public.values())

    def __len__(self) -> int:
        return len(self._public)
