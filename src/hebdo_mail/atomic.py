"""Writing files so that a crash never leaves half of one: the data goes to a temporary file
beside the target, which then replaces it in one rename.

Only a regular file (or a path where nothing is yet) is replaced that way. Anything else is
opened and written in place: a FIFO, a device such as ``/dev/null``, or a symbolic link such as
``/dev/stdout``. Renaming over one of those would not write to it but destroy it, turning
``/dev/null`` into a regular file and leaving a FIFO's reader with nothing.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def replaceable(path: Path) -> bool:
    """Whether ``path`` may be replaced by a rename: a regular file, or nothing yet."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return True


@contextmanager
def atomic_output(path: Path, *, mode: int = 0o600) -> Iterator[BinaryIO]:
    """A binary handle whose data replaces ``path`` whole when the block ends without error
    (a new file gets ``mode``); for a FIFO, a device or a link, the file itself, opened."""
    if not replaceable(path):
        with path.open("wb") as handle:
            yield handle
        return
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def real_folder(path: Path) -> Path:
    """The folder a symbolic link points to (a folder replaced whole is replaced there, and the
    link kept); any other path as it is."""
    return path.resolve() if path.is_symlink() else path
