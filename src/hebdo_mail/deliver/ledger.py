"""The file ledger: an issue's record kept as ``logs/<issue-id>.jsonl`` (sendlog.py), which one run
at a time may write, held with the issue's lock (issuelock.py). A ledger shared by several
senders (a database table) would take its place behind the same three calls.
"""

from __future__ import annotations

from pathlib import Path

from .issuelock import IssueLock, lock_path
from .sendlog import LogState, LogWriter, read_log


class FileLedger:
    """An issue's record kept as the file ``logs/<issue-id>.jsonl``, which one run at a time may
    write. ``claim()`` takes the issue's lock (``logs/<issue-id>.lock``) before replaying the log,
    so no other run can change the state this one starts from; ``writer()`` appends to it;
    ``close()`` lets the next run in. Reading alone (``status``) needs no lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = IssueLock(lock_path(path), path.stem)
        self._writer: LogWriter | None = None

    def claim(self) -> LogState:
        self.lock.acquire()
        try:
            return read_log(self.path)
        except BaseException:
            self.lock.release()
            raise

    def writer(self) -> LogWriter:
        self._writer = LogWriter(self.path)
        return self._writer

    def close(self) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            self.lock.release()
