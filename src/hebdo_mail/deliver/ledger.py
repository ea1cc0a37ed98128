"""The file ledger: an issue's record kept as ``logs/<issue-id>.jsonl`` (sendlog.py), which one run
at a time may write, held with the issue's lock (issuelock.py). The ledger shared by several
senders (pgledger.py, when the store is a PostgreSQL server) takes its place; the functions below
are where the readers of the sends (archive, report, bounces, dashboard) are given one or the other.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ..workspace import Workspace

if TYPE_CHECKING:
    from ..audience.bounces import SendRecord
    from ..audience.database import Database
    from .delivery_records import DeliveryRecords
from .issuelock import IssueLock, lock_path
from .logsummary import CountingLogWriter
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
        self._start: LogState | None = None

    def claim(self) -> LogState:
        self.lock.acquire()
        try:
            self._start = read_log(self.path)
        except BaseException:
            self.lock.release()
            raise
        return self._start

    def writer(self) -> LogWriter:
        """The log's writer; it leaves the log's counts beside it when it closes
        (logsummary.py), for ``status``."""
        assert self._start is not None, "claim() first: the counts start from the replay"
        self._writer = CountingLogWriter(self.path, self._start)
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
    from .pgrecords import shared_published

    return lambda issue_id: shared_published(url, issue_id)


@contextmanager
def readable_log(workspace: Workspace, issue_id: str) -> Iterator[Path]:
    """The issue's log as a JSONL file to read: the file ledger's own, or the shared ledger
    written out the same way (for reports and the dashboard, whichever ledger runs)."""
    url = workspace.store_url
    if url is None:
        yield workspace.logs_dir / f"{issue_id}.jsonl"
        return
    from .pgrecords import write_jsonl

    with tempfile.TemporaryDirectory(prefix="hebdo-log-") as folder:
        path = Path(folder) / f"{issue_id}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            write_jsonl(url, issue_id, handle)
        yield path


def ledger_mark(workspace: Workspace, issue_id: str) -> Hashable | None:
    """A value that changes whenever the issue's record does (None: there is none yet): the
    log file's identity, size and time, or the shared ledger's last event and run, and the
    erasures (they rewrite its rows in place)."""
    url = workspace.store_url
    if url is None:
        try:
            found = (workspace.logs_dir / f"{issue_id}.jsonl").stat()
        except OSError:
            return None
        return (found.st_ino, found.st_size, found.st_mtime_ns)
    from ..audience.postgres import PostgresDatabase
    from ..audience.schema import MIGRATIONS

    database = PostgresDatabase(url, migrations=MIGRATIONS)
    try:
        row = database.execute(
            "SELECT (SELECT max(id) FROM send_events WHERE issue_id = ?),"
            " (SELECT max(id) FROM send_runs WHERE issue_id = ?),"
            " (SELECT count(*) FROM erased_addresses), (SELECT max(erased_at) FROM erased_addresses)",
            (issue_id, issue_id),
        ).fetchone()
    finally:
        database.close()
    assert row is not None
    return tuple(row) if row[1] is not None else None


def send_record(workspace: Workspace) -> SendRecord:
    """What bounce processing reads of the sends: the file logs, or the shared ledger."""
    url = workspace.store_url
    if url is None:
        return SendLogs(workspace.logs_dir)
    from .pgrecords import SharedSendRecord

    return SharedSendRecord(url)


def delivery_records(workspace: Workspace, db: Database) -> DeliveryRecords:
    """What the dashboard reads of the sends (``db``: the workspace's store): the file logs and
    their index, or the shared ledger's tables in the store's own database."""
    if workspace.store_url is None:
        from .delivery_index import FileDeliveryRecords

        return FileDeliveryRecords(workspace, db)
    from .pgdeliveries import SharedDeliveryRecords

    return SharedDeliveryRecords(db)
