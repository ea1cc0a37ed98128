"""Mailboxes of returned mail and unsubscribe requests: the messages of a Maildir, an mbox or a
single message file, and Maildir's way of marking one handled."""

from __future__ import annotations

import hashlib
import mailbox
from collections.abc import Iterator
from pathlib import Path

from ..errors import HebdoError, display_path


def maildir_messages(folder: Path, *, include_seen: bool = False) -> list[Path]:
    """Messages not yet handled: everything in new/, and what in cur/ is not marked seen."""
    if not (folder / "new").is_dir() and not (folder / "cur").is_dir():
        raise HebdoError(
            "is not a Maildir (no new/ or cur/ folder in it); give a Maildir folder or an mbox file",
            path=folder,
        )
    return sorted(
        p
        for sub in ("new", "cur")
        for p in (folder / sub).glob("*")
        if p.is_file() and (include_seen or "S" not in p.name.partition(":2,")[2])
    )


def mark_seen(path: Path) -> None:
    """Maildir's way to say "handled": in cur/, with the S (seen) flag in the name."""
    base, _, flags = path.name.partition(":2,")
    if path.parent.name == "cur" and "S" in flags:
        return
    new_flags = "".join(sorted(set(flags) | {"S"}))
    maildir = path.parent.parent
    for sub in ("cur", "tmp"):  # a Maildir copied with git or by hand may have lost them
        (maildir / sub).mkdir(mode=0o700, exist_ok=True)
    path.rename(maildir / "cur" / f"{base}:2,{new_flags}")


def read_messages(
    path: Path, *, any_folder: bool = False
) -> Iterator[tuple[str, bytes, Path | None, str]]:
    """(hash of the message, its bytes, its file in a Maildir or None, where it is) of each
    message of a Maildir, an mbox or a single message file; with ``any_folder``, of each file of
    a folder that is not a Maildir."""
    if path.is_dir() and any_folder and not (path / "new").is_dir() and not (path / "cur").is_dir():
        for item in sorted(p for p in path.iterdir() if p.is_file()):
            raw = item.read_bytes()
            yield hashlib.sha256(raw).hexdigest(), raw, None, display_path(item)
        return
    if path.is_dir():
        # Seen ones too: an admin may have opened the bounce box in a mail client.
        for item in maildir_messages(path, include_seen=True):
            raw = item.read_bytes()
            yield hashlib.sha256(raw).hexdigest(), raw, item, display_path(item)
        return
    if not path.is_file():
        raise HebdoError("does not exist; give a Maildir folder or an mbox file", path=path)
    with path.open("rb") as handle:
        start = handle.read(5)
    if start and start != b"From ":  # not an mbox: one message
        raw = path.read_bytes()
        yield hashlib.sha256(raw).hexdigest(), raw, None, display_path(path)
        return
    try:
        box = mailbox.mbox(path, create=False)
        keys = box.keys()
    except (OSError, mailbox.Error) as exc:
        raise HebdoError(f"cannot be read as an mbox ({exc})", path=path) from None
    try:
        for number, key in enumerate(keys, start=1):
            raw = box.get_bytes(key)
            yield (
                hashlib.sha256(raw).hexdigest(),
                raw,
                None,
                f"{display_path(path)}, message {number}",
            )
    finally:
        box.close()
