"""The shared ledger read from any host: an issue's counts for ``status``, its events as the
JSONL the file ledger keeps (``log export``), whether it was published, what is left for a next
run, and the relays' refusals for bounce processing. (The senders' side is pgledger.py.)"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

from ..audience.erasure import ERASED
from ..audience.postgres import PostgresDatabase
from ..audience.schema import MIGRATIONS
from ..vocabulary import STATUS_KEYS
from .pgevents import EVENT_COLUMNS

if TYPE_CHECKING:  # bounce processing is the only reader of refusals: imported there
    from ..audience.bounces import Refusal


def shared_counts(url: str, issue_id: str) -> dict[str, int]:
    """``status``'s counts of an issue, from its queue."""
    database = PostgresDatabase(url, migrations=MIGRATIONS)
    try:
        return counts_of(database, issue_id)
    finally:
        database.close()


def counts_of(database: PostgresDatabase, issue_id: str) -> dict[str, int]:
    row = database.execute(
        "SELECT count(*),"
        " count(*) FILTER (WHERE last_event = 'sent'),"
        " count(*) FILTER (WHERE last_event = 'deferred'),"
        " count(*) FILTER (WHERE last_event = 'failed'),"
        " count(*) FILTER (WHERE last_event = 'skipped'),"
        " count(*) FILTER (WHERE last_event = 'attempt'),"
        " count(*) FILTER (WHERE last_event IS NULL)"
        " FROM send_queue WHERE issue_id = ?",
        (issue_id,),
    ).fetchone()
    assert row is not None
    return dict(zip(STATUS_KEYS, (int(value) for value in row), strict=True))


def shared_events(url: str, issue_id: str) -> Iterator[dict[str, Any]]:
    """The issue's records in the order they were written, as the file log holds them: a
    ``run`` line per run, then the recipients' events."""
    database = PostgresDatabase(url, migrations=MIGRATIONS)
    try:
        runs = database.execute(
            "SELECT time, total, source, transport, digest FROM send_runs WHERE issue_id = ?"
            " ORDER BY id",
            (issue_id,),
        ).fetchall()
        events = database.execute(
            f"SELECT {', '.join(EVENT_COLUMNS[1:])} FROM send_events WHERE issue_id = ?"
            " ORDER BY id",
            (issue_id,),
        )
        pending_runs = list(runs)
        for row in events:
            while pending_runs and pending_runs[0][0] <= row[0]:
                yield _run_record(pending_runs.pop(0))
            record = {"time": row[0], "recipient": row[1], "event": row[2]}
            for name, value in zip(EVENT_COLUMNS[4:], row[3:], strict=True):
                if value is not None:
                    record[name] = value
            yield record
        for run in pending_runs:
            yield _run_record(run)
    finally:
        database.close()


def _run_record(row: Any) -> dict[str, Any]:
    record = {
        "time": row[0],
        "event": "run",
        "total": row[1],
        "source": row[2],
        "transport": row[3],
    }
    if row[4]:
        record["digest"] = json.loads(row[4])
    return record


def shared_published(url: str, issue_id: str) -> bool:
    """Whether a message of the issue was accepted (its web page may then be shown)."""
    database = PostgresDatabase(url, migrations=MIGRATIONS)
    try:
        row = database.execute(
            "SELECT 1 FROM send_queue WHERE issue_id = ? AND last_event = 'sent' LIMIT 1",
            (issue_id,),
        ).fetchone()
    finally:
        database.close()
    return row is not None


def write_jsonl(url: str, issue_id: str, handle: TextIO) -> int:
    """The issue's shared ledger as the JSONL the file ledger keeps; returns the lines written."""
    count = 0
    for record in shared_events(url, issue_id):
        handle.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    return count


def waiting(database: PostgresDatabase, issue_id: str, *, resend_unknown: bool = False) -> int:
    """Recipients no live sender holds and a run would mail: pending, deferred, claims lapsed
    (and with ``resend_unknown``, attempts nobody will answer)."""
    states = "'pending', 'deferred'" + (", 'attempted'" if resend_unknown else "")
    row = database.execute(
        f"SELECT count(*) FROM send_queue WHERE issue_id = ? AND (state IN ({states})"
        " OR (state = 'claimed' AND lease_until < now()))",
        (issue_id,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def shared_waiting(url: str, issue_id: str) -> int:
    database = PostgresDatabase(url, migrations=MIGRATIONS)
    try:
        return waiting(database, issue_id)
    finally:
        database.close()


class SharedSendRecord:
    """The shared ledger read for bounce processing (a ``SendRecord``): the addresses it names
    and the relays' permanent refusals it holds."""

    def __init__(self, url: str) -> None:
        self.url = url

    def addresses(self) -> Iterator[str]:
        database = PostgresDatabase(self.url, migrations=MIGRATIONS)
        try:
            rows = database.execute(
                "SELECT DISTINCT email FROM send_queue WHERE email <> ?", (ERASED,)
            )  # an erased reader's rows stay counted, named by nobody
            yield from (row[0] for row in rows)
        finally:
            database.close()

    def refusals(self) -> Iterator[Refusal]:
        from ..audience.bounces import Refusal

        database = PostgresDatabase(self.url, migrations=MIGRATIONS)
        try:
            rows = database.execute(
                "SELECT q.email, e.code, e.stage, e.reply, e.message_id, e.time"
                " FROM send_events e JOIN send_queue q"
                " ON q.issue_id = e.issue_id AND q.recipient = e.recipient"
                " WHERE e.event = 'failed' AND q.email <> ? ORDER BY e.id",
                (ERASED,),
            )
            for email, code, stage, reply, message_id, time in rows:
                yield Refusal(
                    address=email, code=code, stage=stage, reply=reply or "",
                    message_id=message_id, day=dt.date.fromisoformat(time[:10]),
                )  # fmt: skip
        finally:
            database.close()
