"""The send ledger in PostgreSQL: the record of an issue shared by every sender, on any host.

Where the file ledger (ledger.py) lets one run at a time write the JSONL log, this one lets
several runs cooperate on one issue. The first to join fills the issue's queue with its
recipients; every sender then claims batches of pending recipients (``FOR UPDATE SKIP LOCKED``,
with a lease it renews while it lives), so each recipient is handed to exactly one of them. The
events are the file log's (an ``attempt`` committed before the message content goes out, then
``sent``, ``deferred``, ``failed`` or ``skipped``); a trigger keeps each queue row's last event,
so ``status`` is one query from any host (pgrecords.py reads it). A sender that dies leaves its
claims to lapse: the recipients it never attempted become pending again, the ones it attempted
stay ``unknown``.

Events are written by a thread of their own, a batch per round trip (pgevents.py): the event loop
hands them over and waits only for an attempt's commit, never for the outcomes. A claim walks
the queue's index from where the sender's last one stopped, so it costs the same at any point of
any list; the heartbeat renews the leases without ever waiting for a row the event writer holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..audience.database import StoreError
from ..audience.postgres import PostgresDatabase
from ..audience.recipients import Recipient, RecipientBatch, RecipientSource, StoreRecipients
from ..audience.schema import MIGRATIONS
from .pgevents import EventWriter
from .pgrecords import counts_of, waiting
from .sendlog import now

LEASE_SECONDS = 60.0  # a dead sender's claims lapse after this long
CLAIM_BATCH = 64  # recipients a sender claims at a time; less leaves more to share
FILL_BATCH = 1000


@dataclass
class Claims:
    """What the sender asks of the ledger's state for the recipients it claimed: they are all to
    be mailed (the claim chose them), with the attempts earlier runs made. The sender asks for a
    recipient's attempts once, as their message is made: the answer is then dropped, so what is
    kept is the claims in hand, not every recipient of the run."""

    attempts: dict[str, int] = field(default_factory=dict)

    def status_of(self, key: str) -> str:
        return "pending"

    def attempts_of(self, key: str) -> int:
        return self.attempts.pop(key, 0)


class SharedLedger:
    """One sender's view of an issue's shared ledger."""

    def __init__(self, url: str, issue_id: str, *, lease: float = LEASE_SECONDS) -> None:
        self.url = url
        self.issue_id = issue_id
        self.lease = lease
        self.me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.db = PostgresDatabase(url, migrations=MIGRATIONS)
        self.claims = Claims()
        self._heartbeat: threading.Thread | None = None
        self._stop_heartbeat = threading.Event()
        self._writer: EventWriter | None = None
        self._frontier = -1  # the queue position of this sender's last claim

    # -- joining ---------------------------------------------------------------------------

    def last_run(self) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT transport, digest FROM send_runs WHERE issue_id = ? ORDER BY id DESC LIMIT 1",
            (self.issue_id,),
        ).fetchone()
        return (
            {"transport": row[0], "digest": json.loads(row[1]) if row[1] else None} if row else None
        )

    def started(self) -> bool:
        """Whether any message of the issue has been attempted (its content may be out)."""
        row = self.db.execute(
            "SELECT 1 FROM send_queue WHERE issue_id = ? AND attempts > 0 LIMIT 1",
            (self.issue_id,),
        ).fetchone()
        return row is not None

    def prepare(self, source: RecipientSource) -> None:
        """Add the source's recipients the issue's queue lacks (who the issue is for; not yet
        an event), and hand back the claims of senders of this host that are gone."""
        with self.db.transaction():
            # Senders joining at once take turns here; claiming never waits on it.
            self.db.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (self.issue_id,))
            self._fill(source)
            self._release_dead_senders()

    def _release_dead_senders(self) -> None:
        """A sender of this host that no longer runs (killed) holds nothing: its claims need not
        wait for their lease (senders of other hosts are trusted to their leases)."""
        host = socket.gethostname()
        holders = self.db.execute(
            "SELECT DISTINCT claimed_by FROM send_queue WHERE issue_id = ? AND claimed_by LIKE ?",
            (self.issue_id, f"{host}:%"),
        ).fetchall()
        for (holder,) in holders:
            if holder != self.me and not _alive(int(holder.split(":")[1])):
                self.db.execute(
                    "UPDATE send_queue SET state = CASE state WHEN 'claimed' THEN 'pending'"
                    " ELSE state END, claimed_by = NULL, lease_until = NULL"
                    " WHERE issue_id = ? AND claimed_by = ?",
                    (self.issue_id, holder),
                )

    def join(
        self, source: RecipientSource, *, transport: str, digest: dict[str, Any] | None,
        resend_unknown: bool,
    ) -> dict[str, int]:  # fmt: skip
        """Record this run, and make deferred (and with ``resend_unknown``, unknown) recipients
        claimable again. Returns the issue's counts as this run found them (``status``'s
        keys)."""
        with self.db.transaction():
            self.db.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (self.issue_id,))
            self.db.execute(
                "UPDATE send_queue SET state = 'pending' WHERE issue_id = ? AND state = 'deferred'"
                " AND (claimed_by IS NULL OR lease_until < now())",  # not one a live sender retries
                (self.issue_id,),
            )
            if resend_unknown:
                self.db.execute(
                    "UPDATE send_queue SET state = 'pending' WHERE issue_id = ?"
                    " AND state = 'attempted' AND (lease_until IS NULL OR lease_until < now())",
                    (self.issue_id,),
                )
            counts = self._counts()
            # Unknown are the attempts nobody will answer: not those of a sender still at work.
            counts["unknown"] = self._one(
                "SELECT count(*) FROM send_queue WHERE issue_id = ? AND state = 'attempted'"
                " AND (claimed_by IS NULL OR lease_until < now())"
            )
            total = counts["total"]
            self.db.execute(
                "INSERT INTO send_runs (issue_id, time, sender, total, source, transport, digest)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self.issue_id, now(), self.me, total, source.description, transport,
                 json.dumps(digest) if digest else None),
            )  # fmt: skip
        return counts

    def _fill(self, source: RecipientSource) -> None:
        insert = (
            "INSERT INTO send_queue (issue_id, recipient, position, email, name, lang, format,"
            " attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
        )
        if isinstance(source, StoreRecipients):
            # The list is in the same database: one statement, nothing through this process.
            self.db.execute(
                "INSERT INTO send_queue (issue_id, recipient, position, email, name, lang, format,"
                " attributes) SELECT ?, email_key, id, email, name, lang, format, attributes"
                " FROM subscribers WHERE status = 'active' ON CONFLICT DO NOTHING",
                (self.issue_id,),
            )
            return
        rows: list[tuple[Any, ...]] = []
        for position, recipient in enumerate(source):
            rows.append((
                self.issue_id, recipient.key, position, recipient.email, recipient.name,
                recipient.lang, recipient.format, json.dumps(dict(recipient.attributes)),
            ))  # fmt: skip
            if len(rows) >= FILL_BATCH:
                self.db.executemany(insert, rows)
                rows = []
        if rows:
            self.db.executemany(insert, rows)

    def _counts(self) -> dict[str, int]:
        return counts_of(self.db, self.issue_id)

    def _one(self, sql: str) -> int:
        row = self.db.execute(sql, (self.issue_id,)).fetchone()
        assert row is not None, sql
        return int(row[0])

    # -- claiming --------------------------------------------------------------------------

    def pending(self, *, resend_unknown: bool = False) -> int:
        """How many recipients are there for the taking (what a run would mail, at most)."""
        return waiting(self.db, self.issue_id, resend_unknown=resend_unknown)

    def recipients(
        self, limit: int | None = None, *, batch: int = CLAIM_BATCH
    ) -> Iterator[RecipientBatch]:
        """Pending recipients, claimed ``batch`` at a time for this sender, until none is left
        (or ``limit`` were handed out). Small batches leave work for the other senders. The next
        batch is claimed by a thread while this one is handed out: the send's event loop never
        waits for the server's answer."""
        self._start_heartbeat()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="claims") as claimer:
            wanted = batch if limit is None else min(batch, limit)
            claiming = claimer.submit(self._claim, wanted) if wanted else None
            while claiming is not None:
                claimed = claiming.result()
                if limit is not None:
                    limit -= len(claimed)
                wanted = batch if limit is None else min(batch, limit)
                claiming = claimer.submit(self._claim, wanted) if claimed and wanted else None
                yield RecipientBatch.of(claimed)

    def _claim(self, size: int) -> list[Recipient]:
        """Up to ``size`` recipients for this sender: first the pending ones past its last claim
        (an index walk that starts where the last one stopped, so a claim costs the same at any
        point of any list), and once none is left there, any pending from the start (handed back
        by a sender that stopped) and the claims whose lease lapsed (a sender gone)."""
        rows = self._pick("state = 'pending' AND position > ?", self._frontier, size)
        if not rows:
            rows = self._pick("state = 'pending' AND position > ?", -1, size)
        if not rows:
            rows = self._pick(
                "state = 'claimed' AND lease_until < now() AND position > ?", -1, size
            )
        if rows:
            self._frontier = max(row[0] for row in rows)
        recipients = []
        for row in sorted(rows, key=lambda r: r[0]):
            self.claims.attempts[row[1]] = row[7]
            recipient = Recipient(
                email=row[2], name=row[3], lang=row[4], format=row[5],
                attributes=json.loads(row[6]),
            )  # fmt: skip
            recipients.append(recipient)
        return recipients

    def _pick(self, condition: str, after: int, size: int) -> list[Any]:
        """Claim the first ``size`` rows in queue order that meet ``condition`` (one range of
        the claimable index, walked in order: never a scan of the whole queue)."""
        rows: list[Any] = self.db.execute(
            f"WITH picked AS (SELECT recipient FROM send_queue WHERE issue_id = ? AND {condition}"
            " ORDER BY position LIMIT ? FOR UPDATE SKIP LOCKED)"
            " UPDATE send_queue q SET state = 'claimed', claimed_by = ?,"
            " lease_until = now() + make_interval(secs => ?)"
            " FROM picked WHERE q.issue_id = ? AND q.recipient = picked.recipient"
            " RETURNING q.position, q.recipient, q.email, q.name, q.lang, q.format,"
            " q.attributes, q.attempts",
            (self.issue_id, after, size, self.me, self.lease, self.issue_id),
        ).fetchall()
        return rows

    def _start_heartbeat(self) -> None:
        if self._heartbeat is None:
            self._heartbeat = threading.Thread(target=self._renew, daemon=True)
            self._heartbeat.start()

    def _renew(self) -> None:
        """Keep this sender's claims alive while it lives (on a connection of its own)."""
        database = PostgresDatabase(self.url, migrations=MIGRATIONS)
        try:
            while not self._stop_heartbeat.wait(self.lease / 3):
                self._renew_once(database)
        except StoreError:
            pass  # the writer notices a lost server and stops the send; the claims lapse
        finally:
            database.close()

    def _renew_once(self, database: PostgresDatabase) -> None:
        """Renew every claim of this sender without ever waiting for a row's lock: the event
        writer locks the rows it records (through the trigger), in an order of its own, so a
        renewal that waited could deadlock with it. A row locked now is renewed by a next pass a
        moment later (the writer holds a lock for one statement)."""
        mine = (
            "issue_id = ? AND claimed_by = ? AND state IN ('claimed', 'attempted', 'deferred')"
            " AND lease_until < now() + make_interval(secs => ?)"
        )
        stale = (self.issue_id, self.me, self.lease * 2 / 3)  # not renewed by this round yet
        while True:
            database.execute(
                "UPDATE send_queue SET lease_until = now() + make_interval(secs => ?)"
                " WHERE (issue_id, recipient) IN (SELECT issue_id, recipient FROM send_queue"
                f" WHERE {mine} FOR UPDATE SKIP LOCKED)",
                (self.lease, *stale),
            )
            left = database.execute(f"SELECT 1 FROM send_queue WHERE {mine} LIMIT 1", stale)
            if left.fetchone() is None or self._stop_heartbeat.wait(0.05):
                return

    # -- recording -------------------------------------------------------------------------

    def writer(self) -> EventWriter:
        self._writer = EventWriter(self.url, self.issue_id)
        return self._writer

    def close(self) -> None:
        """Stop renewing, hand back what was claimed and never attempted."""
        self._stop_heartbeat.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=10)
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            try:
                # Unattempted claims go back to the queue; attempted ones stay unknown, free
                # for --resend-unknown at once. (A server gone: the claims lapse instead.)
                with contextlib.suppress(StoreError):
                    self.db.execute(
                        "UPDATE send_queue SET state = CASE state WHEN 'claimed' THEN 'pending'"
                        " ELSE state END, claimed_by = NULL, lease_until = NULL"
                        " WHERE issue_id = ? AND claimed_by = ?",
                        (self.issue_id, self.me),
                    )
            finally:
                self.db.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True
