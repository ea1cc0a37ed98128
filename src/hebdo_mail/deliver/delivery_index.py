"""The file ledger's records for the dashboard (a ``DeliveryRecords``): the send logs, and their
index in the store. For each issue and reader, the index keeps the last event of the log (sent,
failed, deferred, skipped, or an attempt whose reply never came), with its edition, time, code and
reply. It answers "did Marie get last week's issue?" and a running send's progress without reading
every log again.

The logs stay the record; the index follows them. ``catch_up`` reads only what each log gained
since the last call (the index remembers how far it read, and the start of the file, so a log
replaced by another is read again from its start). Workers that catch up at the same time do not
overwrite each other: each moves the mark only from where it found it, else rolls back.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ..audience.addresses import address_key
from ..audience.database import Database
from ..audience.erasure import ErasedSends, erased_among
from ..vocabulary import FINAL_EVENTS, Event, Outcome
from ..workspace import Workspace
from .delivery_records import ISSUE_ID, RUNNING, TIMED, Delivery, Progress, minute_of
from .sendlog import TOTAL_EVENTS, read_log, recipient_events

HEAD = 200  # bytes from a log's start that tell one log from another
EVENTS = frozenset(Event)


class FileDeliveryRecords:
    """The send logs of ``logs/`` and their index in the store."""

    def __init__(self, workspace: Workspace, db: Database) -> None:
        self.workspace = workspace
        self.db = db

    def refresh(self) -> None:
        catch_up(self.workspace, self.db)

    def logs(self) -> list[Path]:
        """The issues' logs, the latest written to first."""
        folder = self.workspace.logs_dir
        if not folder.is_dir():
            return []
        found = []
        for log in folder.glob("*.jsonl"):
            try:
                found.append((log.stat().st_mtime, log))
            except OSError:
                continue  # a log being replaced
        return [log for _, log in sorted(found, reverse=True) if ISSUE_ID.fullmatch(log.stem)]

    def issues(self, limit: int | None = None) -> list[Progress]:
        found = (progress(self.db, log.stem) for log in self.logs())
        return list(itertools.islice((row for row in found if row), limit))

    def progress(self, issue: str) -> Progress | None:
        return progress(self.db, issue)

    def running(self, at: float | None = None) -> list[Progress]:
        moment = time.time() if at is None else at
        running = []
        for log in self.logs():
            try:
                recent = moment - log.stat().st_mtime < RUNNING
            except OSError:
                continue
            state = progress(self.db, log.stem) if recent else None
            if state is not None and state.done < state.total:
                running.append(state)
        return running

    def of_reader(self, key: str) -> list[Delivery]:
        return deliveries_of(self.db, key)

    def per_minute(self, issue: str) -> Counter[tuple[str, str]]:
        return Counter(
            (minute_of(event.time), str(event.event))
            for event in recipient_events(self._log(issue), warnings=[])
            if event.event in TIMED
        )

    def final_failures(self, issue: str) -> list[str]:
        path = self._log(issue)
        state = read_log(path)
        replies = {
            event.recipient: f"{event.code or ''} {event.reply or ''}".strip()
            for event in recipient_events(path, warnings=[])
            if event.event == Event.FAILED
        }
        return [
            reply
            for recipient, reply in replies.items()
            if state.status_of(recipient) == Outcome.FAILED
        ]

    def forget(self, key: str) -> ErasedSends:
        # The logs are append-only records (a send may be writing one): they keep the address.
        # Its lines in the index go with the reader's other rows (erasure.PERSONAL_TABLES).
        issues = [delivery.issue for delivery in deliveries_of(self.db, key)]
        return ErasedSends(issues=issues, rewritten=False, rows={})

    def _log(self, issue: str) -> Path:
        return self.workspace.logs_dir / f"{issue}.jsonl"


def catch_up(workspace: Workspace, db: Database) -> None:
    """Bring the index up to date with every send log of the workspace."""
    if workspace.logs_dir.is_dir():
        for log in sorted(workspace.logs_dir.glob("*.jsonl")):
            _catch_up(db, log.stem, log)


def _catch_up(db: Database, issue: str, path: Path) -> None:
    try:
        with path.open("rb") as handle:
            head = handle.read(HEAD).hex()
            row = db.execute(
                "SELECT read_to, head, total FROM delivery_logs WHERE issue = ?", (issue,)
            ).fetchone()
            fresh = row is None or row[1] != head or row[0] > path.stat().st_size
            start = 0 if fresh else int(row[0])
            handle.seek(start)
            data = handle.read()
    except OSError:
        return  # a log being replaced: the next call reads it
    data = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next call
    if not data and not fresh:
        return
    total, last, last_at = _last_events(data, 0 if fresh or row is None else int(row[2]))
    with db.transaction() as transaction:
        if fresh:
            db.execute("DELETE FROM deliveries WHERE issue = ?", (issue,))
            db.execute("DELETE FROM delivery_logs WHERE issue = ?", (issue,))
            db.execute(
                "INSERT INTO delivery_logs (issue, read_to, head, total, last_event_at)"
                " VALUES (?, 0, ?, 0, '')",
                (issue, head),
            )
        moved = db.execute(
            "UPDATE delivery_logs SET read_to = ?, total = ?,"
            " last_event_at = CASE WHEN ? = '' THEN last_event_at ELSE ? END"
            " WHERE issue = ? AND read_to = ? AND head = ?",
            (start + len(data), total, last_at, last_at, issue, start, head),
        ).rowcount
        if not moved:  # another worker read the same lines first
            transaction.rollback()
            return
        for key in erased_among(db, list(last)):
            del last[key]
        db.executemany(
            "INSERT INTO deliveries (issue, email_key, event, edition, event_at, code, reply)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (issue, email_key) DO UPDATE SET"
            " event = excluded.event, edition = excluded.edition, event_at = excluded.event_at,"
            " code = excluded.code, reply = excluded.reply",
            [(issue, key, *values) for key, values in last.items()],
        )


def _last_events(data: bytes, total: int) -> tuple[int, dict[str, tuple[Any, ...]], str]:
    """The run's total and each recipient's last event in these lines, and the last time."""
    last: dict[str, tuple[Any, ...]] = {}
    keys: dict[str, str] = {}  # each recipient has two lines or more: normalised once
    last_at = ""
    for raw in data.split(b"\n"):
        try:
            record = json.loads(raw) if raw.strip() else None
        except ValueError:
            continue  # a line cut short by a crash (read_log warns of it)
        if not isinstance(record, dict):
            continue
        if record.get("event") in TOTAL_EVENTS:
            total = int(record.get("total") or 0)
            continue
        recipient, event = record.get("recipient"), record.get("event")
        if not isinstance(recipient, str) or event not in EVENTS:
            continue
        moment = str(record.get("time") or "")
        code = record.get("code")
        key = keys.get(recipient)
        if key is None:
            key = keys[recipient] = address_key(recipient)
        last[key] = (
            event, str(record.get("edition") or ""), moment,
            code if isinstance(code, int) else None, str(record.get("reply") or "")[:500],
        )  # fmt: skip
        last_at = moment or last_at
    return total, last, last_at


def deliveries_of(db: Database, key: str) -> list[Delivery]:
    """What the logs say was sent to one reader, newest first."""
    rows = db.execute(
        "SELECT issue, event, edition, event_at, code, reply FROM deliveries"
        " WHERE email_key = ? ORDER BY event_at DESC, issue DESC",
        (key,),
    )
    return [Delivery(*row) for row in rows]


def progress(db: Database, issue: str) -> Progress | None:
    row = db.execute(
        "SELECT total, last_event_at FROM delivery_logs WHERE issue = ?", (issue,)
    ).fetchone()
    if row is None:
        return None
    counts = {
        str(event): int(number)
        for event, number in db.execute(
            "SELECT event, count(*) FROM deliveries WHERE issue = ? GROUP BY event", (issue,)
        )
    }
    done = sum(n for event, n in counts.items() if event in FINAL_EVENTS)
    return Progress(issue, max(int(row[0]), sum(counts.values())), done, counts, str(row[1]))
