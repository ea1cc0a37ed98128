"""The file ledger: an issue's record kept as ``logs/<issue-id>.jsonl`` (sendlog.py), which one run
at a time may write, held with the issue's lock (issuelock.py). A ledger shared by several
senders (a database table) would take its place behind the same three calls.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ..workspace import Workspace

if TYPE_CHECKING:
    from ..audience.bounces import SendRecord
from .issuelock import IssueLock, lock_path
from .sendlog import LogState, LogWriter, SendLogs, read_log


def log_path(workspace: Workspace, issue_id: str) -> Path:
    return workspace.logs_dir / f"{issue_id}.jsonl"


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


def published_check(workspace: Workspace) -> Callable[[str], bool] | None:
    """How the archive learns that an issue went out: from the shared ledger when the store is
    a server (None: the archive reads the file logs itself)."""
    url = workspace.store_url
    if url is None:
        return None
    from .pgledger import shared_published

    return lambda issue_id: shared_published(url, issue_id)


@contextmanager
def readable_log(workspace: Workspace, issue_id: str) -> Iterator[Path]:
    """The issue's log as a JSONL file to read: the file ledger's own, or the shared ledger
    written out the same way (for reports and the dashboard, whichever ledger runs)."""
    url = workspace.store_url
    if url is None:
        yield workspace.logs_dir / f"{issue_id}.jsonl"
        return
    from .pgledger import write_jsonl

    with tempfile.TemporaryDirectory(prefix="hebdo-log-") as folder:
        path = Path(folder) / f"{issue_id}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            write_jsonl(url, issue_id, handle)
        yield path


def send_record(workspace: Workspace) -> SendRecord:
    """What bounce processing reads of the sends: the file logs, or the shared ledger."""
    url = workspace.store_url
    if url is None:
        return SendLogs(workspace.logs_dir)
    from .pgledger import SharedSendRecord

    return SharedSendRecord(url)
