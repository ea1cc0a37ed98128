"""The history of each reader's status: every change (joined, unsubscribed, bounced, back again)
with when and why, for the reader's page and the dashboard's chart of the list over time.

The store's lifecycle methods, the bounce ledger and the importer change statuses in SQL of many
shapes (upserts, batches); rather than each working out what it changed, each wraps its change in
``watch``, which reads the statuses before and after, inside the same transaction, and records the
difference (the importer, which knows what it changes, records it directly). So a change is
recorded exactly when it is committed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .database import Database

CHUNK = 500  # keys per query


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def statuses_of(db: Database, keys: Sequence[str]) -> dict[str, str]:
    """The current status of each of these address keys the store knows, one query per 500."""
    found: dict[str, str] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = db.execute(
            f"SELECT email_key, status FROM subscribers WHERE email_key IN ({marks})", chunk
        )
        found.update((key, status) for key, status in rows)
    return found


@dataclass(frozen=True)
class StatusChange:
    changed_at: str
    old_status: str | None  # None: the reader was not on the list before
    new_status: str
    source: str


@dataclass(frozen=True)
class WeekCounts:
    week: dt.date  # its Monday
    joined: int  # became active, new or after confirming
    unsubscribed: int
    bounced: int


class StatusHistory:
    def __init__(self, db: Database) -> None:
        self.db = db

    @contextmanager
    def watch(self, keys: Sequence[str], source: str) -> Iterator[None]:
        """Record the status changes the block makes to these readers (call inside the block's
        transaction, so that the record and the change commit together)."""
        before = statuses_of(self.db, keys)
        yield
        after = statuses_of(self.db, keys)
        self.record([(key, before.get(key), status) for key, status in after.items()], source)

    def record(self, changes: Sequence[tuple[str, str | None, str]], source: str) -> None:
        """Within a caller's transaction: (key, old status, new status) of readers it changed
        (those whose status stayed as it was are left out)."""
        stamp = now()
        self.db.executemany(
            "INSERT INTO status_changes (email_key, changed_at, old_status, new_status, source)"
            " VALUES (?, ?, ?, ?, ?)",
            [(key, stamp, old, new, source[:200]) for key, old, new in changes if old != new],
        )

    def record_selected(self, select: str, params: Sequence[Any], source: str) -> None:
        """Within a caller's transaction: the changes a query selects, as rows of (email_key,
        old_status, new_status), for changes made in bulk whose rows never come into Python."""
        self.db.execute(
            "INSERT INTO status_changes (email_key, changed_at, old_status, new_status, source)"
            f" SELECT email_key, ?, old_status, new_status, ? FROM ({select}) AS changes",
            (now(), source[:200], *params),
        )

    def of(self, key: str) -> list[StatusChange]:
        """One reader's changes, oldest first."""
        rows = self.db.execute(
            "SELECT changed_at, old_status, new_status, source FROM status_changes"
            " WHERE email_key = ? ORDER BY id",
            (key,),
        )
        return [StatusChange(*row) for row in rows]

    def weekly(self, weeks: int, today: dt.date | None = None) -> list[WeekCounts]:
        """Readers who joined, unsubscribed and bounced in each of the last ``weeks`` weeks,
        oldest first (the current week last)."""
        today = today or dt.datetime.now(dt.UTC).date()
        first = today - dt.timedelta(days=today.weekday() + 7 * (weeks - 1))
        counts = {
            first + dt.timedelta(weeks=n): {"joined": 0, "unsubscribed": 0, "bounced": 0}
            for n in range(weeks)
        }
        # Grouped by day in SQL (both engines spell substr alike), by week here.
        rows = self.db.execute(
            "SELECT substr(changed_at, 1, 10), old_status, new_status, count(*) FROM status_changes"
            " WHERE changed_at >= ? GROUP BY 1, 2, 3",
            (first.isoformat(),),
        )
        for day, old, new, number in rows:
            date = dt.date.fromisoformat(day)
            week = counts.get(date - dt.timedelta(days=date.weekday()))
            if week is None:
                continue
            if new == "active" and old in (None, "pending"):
                week["joined"] += number
            elif new in ("unsubscribed", "bounced"):
                week[new] += number
        return [WeekCounts(week, **values) for week, values in counts.items()]

    def anonymise(self, key: str) -> None:
        """Within a caller's transaction: an erased reader's changes stay counted in the list's
        history, tied to nobody."""
        self.db.execute("UPDATE status_changes SET email_key = '' WHERE email_key = ?", (key,))
