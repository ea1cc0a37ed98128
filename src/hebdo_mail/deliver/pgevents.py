"""The shared ledger's events, written as the sender makes them: a thread of its own writes each
batch in one statement (one round trip, the same statement whatever the batch's size), and answers
each attempt, once committed, with the reader's standing in the store read by that statement.
The event loop hands events over and waits only for an attempt's answer, never for the outcomes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Awaitable
from typing import Any

from ..audience.database import StoreError
from ..audience.postgres import PostgresDatabase
from ..audience.schema import MIGRATIONS
from ..vocabulary import Event
from .sendlog import LogError, Standing, now

EVENT_COLUMNS = (
    "issue_id", "time", "recipient", "event", "edition", "code", "reply", "message_id",
    "attempt", "stage", "relay",
)  # fmt: skip
EVENT_TYPES = (
    "text",
    "text",
    "text",
    "text",
    "int",
    "text",
    "text",
    "int",
    "text",
    "text",
)  # after issue_id
# One statement for any batch: the rows as one JSON document (one parameter to encode, where a
# column of values each cost the client twice as much per statement).
_RECORD = ", ".join(
    f"{name} {kind}" for name, kind in zip(EVENT_COLUMNS[1:], EVENT_TYPES, strict=True)
)
WRITE_EVENTS = (
    f"WITH written AS (INSERT INTO send_events ({', '.join(EVENT_COLUMNS)})"
    f" SELECT ?, * FROM json_to_recordset(?::json) AS r({_RECORD})"
    " RETURNING recipient, event)"
    " SELECT written.recipient, s.status, (SELECT last_value FROM store_changes)"
    " FROM written LEFT JOIN subscribers s ON s.email_key = written.recipient"
    " WHERE written.event = 'attempt'"
)


class EventWriter:
    """The sender's ``EventLog`` on the shared ledger: events go to a thread that writes each
    batch in one round trip. ``event`` returns, for an attempt, what to await before the content
    leaves: its commit, and with it the reader's standing in the store, read by the same
    statement after the attempt is recorded (the last word on them, without a round trip of its
    own). Outcomes are written soon after, never waited for."""

    confirms_standing = True

    def __init__(self, url: str, issue_id: str) -> None:
        self.issue_id = issue_id
        self.db = PostgresDatabase(url, migrations=MIGRATIONS)
        self.db.execute("SET synchronous_commit = off")  # as durable as the file log's writes
        self._rows: list[tuple[Any, ...]] = []
        self._waiters: list[tuple[str, asyncio.Future[Standing]]] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._idle = True
        self.failure: LogError | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def event(
        self, recipient: str, event: Event, *, edition: str | None = None,
        code: int | None = None, reply: str | None = None, message_id: str | None = None,
        attempt: int | None = None, stage: str | None = None, relay: str | None = None,
    ) -> Awaitable[Standing] | None:  # fmt: skip
        if self.failure is not None:
            raise self.failure
        row = (
            self.issue_id, now(), recipient, str(event), edition, code, reply, message_id,
            attempt, str(stage) if stage else None, relay,
        )  # fmt: skip
        waiter: asyncio.Future[Standing] | None = None
        if event == Event.ATTEMPT:
            waiter = asyncio.get_running_loop().create_future()
        with self._lock:
            self._rows.append(row)
            if waiter is not None:
                self._waiters.append((recipient, waiter))
            if self._idle:  # a writer at work takes the rows of its next round by itself
                self._idle = False
                self._wake.notify()
        return waiter

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._rows and not self._closing:
                    self._idle = True
                    self._wake.notify_all()
                    self._wake.wait()
                if not self._rows and self._closing:
                    self._idle = True
                    self._wake.notify_all()
                    return
                rows, self._rows = self._rows, []
                waiters, self._waiters = self._waiters, []
            try:
                standings = self._write(rows)
            except Exception as exc:  # a thread's error would otherwise end it unseen
                message, where = (
                    (exc.message, exc.where)
                    if isinstance(exc, StoreError)
                    else (f"the shared ledger refused an event ({exc})", self.db.where)
                )
                self.failure = LogError(
                    f"{message}; stopping so that no message goes unrecorded", where=where
                )
                _settle(waiters, {}, self.failure)
                with self._lock:
                    _settle(self._waiters, {}, self.failure)
                    self._rows, self._waiters = [], []
                continue
            _settle(waiters, standings, None)

    def _write(self, rows: list[tuple[Any, ...]]) -> dict[str, Standing]:
        """One statement for the batch, whatever its size: the events (one JSON document: the
        same statement for any batch, prepared once by the server), then (read after them) the
        standing of each reader whose attempt is among them."""
        document = json.dumps(
            [dict(zip(EVENT_COLUMNS[1:], row[1:], strict=True)) for row in rows],
            separators=(",", ":"),
        )
        found = self.db.execute(WRITE_EVENTS, (self.issue_id, document)).fetchall()
        return {recipient: Standing(status, marker) for recipient, status, marker in found}

    def sync(self) -> None:
        """Wait until every event handed over is written."""
        with self._lock:
            while not self._idle or self._rows:
                self._wake.wait(timeout=1)
        if self.failure is not None:
            raise self.failure

    def close(self) -> None:
        with self._lock:
            self._closing = True
            self._wake.notify_all()
        self._thread.join(timeout=30)
        with contextlib.suppress(StoreError):
            self.db.execute("RESET synchronous_commit")  # the connection goes back to the pool
        self.db.close()


def _settle(
    waiters: list[tuple[str, asyncio.Future[Standing]]], standings: dict[str, Standing],
    failure: Exception | None,
) -> None:  # fmt: skip
    """Hand the attempts' answers to their event loop: one wake-up for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[str, asyncio.Future[Standing]]]] = {}
    for recipient, waiter in waiters:
        by_loop.setdefault(waiter.get_loop(), []).append((recipient, waiter))
    for loop, mine in by_loop.items():
        if not loop.is_closed():
            loop.call_soon_threadsafe(_answer, mine, standings, failure)


def _answer(
    waiters: list[tuple[str, asyncio.Future[Standing]]], standings: dict[str, Standing],
    failure: Exception | None,
) -> None:  # fmt: skip
    for recipient, waiter in waiters:
        if waiter.done():
            continue
        if failure is not None:
            waiter.set_exception(failure)
        else:
            waiter.set_result(standings[recipient])
