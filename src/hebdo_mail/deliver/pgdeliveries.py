"""The shared ledger's records for the dashboard (a ``DeliveryRecords``): the tables of
pgledger.py read with SQL, on the store's own connection (they live in the same database).

Every figure is the issue's, whatever the number of senders: the queue holds one row per reader
of the issue, kept at its last event by the ledger's trigger, so a running send's progress is
a count over it; the events give the times (the send's chart), the replies and a reader's
deliveries (by recipient key, through the indexes of schema.py).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import Counter

from ..audience.database import Database
from ..audience.erasure import ERASED, ErasedSends
from ..vocabulary import FINAL_EVENTS, Event
from .delivery_records import RUNNING, TIMED, Delivery, Progress
from .selection import NOT_IN_LIST
from .sendlog import now
from .transport import without_addresses

REPLY_KEPT = 500  # characters of a relay's reply shown on a reader's page (as the file index)
# The domain of an erased reader's name in the ledger (reserved, RFC 2606): the report's failures
# by domain count them there.
ERASED_DOMAIN = "erased.invalid"


class SharedDeliveryRecords:
    def __init__(self, db: Database) -> None:
        self.db = db

    def refresh(self) -> None:
        """Nothing to catch up: the tables are the record."""

    def issues(self, limit: int | None = None) -> list[Progress]:
        written = {issue: self._last_written(issue) or "" for issue in self._issue_ids()}
        latest = sorted(written, key=lambda issue: (written[issue], issue), reverse=True)
        found = (self.progress(issue) for issue in latest[:limit])
        return [row for row in found if row is not None]

    def progress(self, issue: str) -> Progress | None:
        written = self._last_written(issue)
        if written is None:
            return None
        counts: dict[str, int] = {}
        total = 0
        for event, number in self.db.execute(
            "SELECT last_event, count(*) FROM send_queue WHERE issue_id = ? GROUP BY last_event",
            (issue,),
        ):
            total += int(number)
            if event is not None:  # never tried yet: pending, counted in the total only
                counts[str(event)] = int(number)
        done = sum(n for event, n in counts.items() if event in FINAL_EVENTS)
        return Progress(issue, total, done, counts, written)

    def running(self, at: float | None = None) -> list[Progress]:
        moment = time.time() if at is None else at
        running = []
        for issue in self._issue_ids():
            written = self._last_written(issue)
            if (
                written is None
                or moment - dt.datetime.fromisoformat(written).timestamp() >= RUNNING
            ):
                continue  # quiet for a while: the queue is not counted
            state = self.progress(issue)
            if state is not None and state.done < state.total:
                running.append(state)
        return running

    def of_reader(self, key: str) -> list[Delivery]:
        rows = self.db.execute(
            "SELECT DISTINCT ON (issue_id) issue_id, event, edition, time, code, reply"
            " FROM send_events WHERE recipient = ? ORDER BY issue_id, id DESC",
            (key,),
        ).fetchall()
        deliveries = [
            Delivery(issue, event, edition or "", moment, code, (reply or "")[:REPLY_KEPT])
            for issue, event, edition, moment, code, reply in rows
        ]
        return sorted(deliveries, key=lambda d: (d.event_at, d.issue), reverse=True)

    def per_minute(self, issue: str) -> Counter[tuple[str, str]]:
        marks = ", ".join("?" * len(TIMED))
        rows = self.db.execute(
            f"SELECT substr(time, 1, 16), event, count(*) FROM send_events"
            f" WHERE issue_id = ? AND event IN ({marks}) GROUP BY 1, 2",
            (issue, *(str(event) for event in TIMED)),
        )
        return Counter({(str(minute), str(event)): int(n) for minute, event, n in rows})

    def final_failures(self, issue: str) -> list[str]:
        rows = self.db.execute(
            "SELECT DISTINCT ON (e.recipient) e.code, e.reply FROM send_events e"
            " JOIN send_queue q ON q.issue_id = e.issue_id AND q.recipient = e.recipient"
            " WHERE e.issue_id = ? AND e.event = ? AND q.last_event = ?"
            " ORDER BY e.recipient, e.id DESC",
            (issue, str(Event.FAILED), str(Event.FAILED)),
        )
        return [f"{code or ''} {reply or ''}".strip() for code, reply in rows]

    def forget(self, key: str) -> ErasedSends:
        """The reader's rows stay, so that the issue's figures stay true, under a random name
        per issue (``HEX@erased.invalid``): the address, name and attributes blanked, the
        Message-ID dropped, the relays' replies masked. Every row is made final: a reader not
        mailed yet is skipped as the sender skips one who left (an event of its own), an attempt
        whose reply never came stays unknown; no run mails the row again."""
        issues = [
            str(row[0])
            for row in self.db.execute(
                "SELECT issue_id FROM send_queue WHERE recipient = ? ORDER BY issue_id", (key,)
            )
        ]
        rows = Counter[str]()
        for issue in issues:
            alias = f"{uuid.uuid4().hex}@{ERASED_DOMAIN}"
            (last_event,) = self.db.execute(
                "UPDATE send_queue SET recipient = ?, email = ?, name = '', attributes = '{}',"
                " state = 'done', claimed_by = NULL, lease_until = NULL"
                " WHERE issue_id = ? AND recipient = ? RETURNING last_event",
                (alias, ERASED, issue, key),
            ).fetchone()
            rows["send_queue"] += 1
            events = self.db.execute(
                "UPDATE send_events SET recipient = ?, message_id = NULL"
                " WHERE issue_id = ? AND recipient = ? RETURNING id, reply",
                (alias, issue, key),
            ).fetchall()
            rows["send_events"] += len(events)
            self.db.executemany(
                "UPDATE send_events SET reply = ? WHERE id = ?",
                [(without_addresses(reply), id_) for id_, reply in events if reply],
            )
            if last_event in (None, Event.DEFERRED):
                self.db.execute(
                    "INSERT INTO send_events (issue_id, time, recipient, event, reply)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (issue, now(), alias, str(Event.SKIPPED), NOT_IN_LIST),
                )
        return ErasedSends(issues=issues, rewritten=True, rows=dict(rows))

    def _last_written(self, issue: str) -> str | None:
        """When the issue's ledger was last written to (an event, or a run joining); None if
        no run ever did."""
        run = self.db.execute(
            "SELECT time FROM send_runs WHERE issue_id = ? ORDER BY id DESC LIMIT 1", (issue,)
        ).fetchone()
        if run is None:
            return None
        event = self.db.execute(
            "SELECT time FROM send_events WHERE issue_id = ? ORDER BY id DESC LIMIT 1", (issue,)
        ).fetchone()
        return max(str(run[0]), str(event[0]) if event else "")

    def _issue_ids(self) -> list[str]:
        return [str(row[0]) for row in self.db.execute("SELECT DISTINCT issue_id FROM send_runs")]
