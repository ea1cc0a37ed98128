"""The mailing list: a SQLite store of subscribers (WAL mode, versioned migrations), CSV import and
export, and what delivery reads from it.

Every change is one transaction: an import commits once at the end, so a crash never leaves half
of it behind. An existing file that is not a hebdo-mail store is reported, never recreated.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import BounceSettings, check_language
from ..errors import HebdoError
from ..vocabulary import FORMATS, STATUSES
from .addresses import InvalidAddress, address_key, check_name, normalise_address
from .listfile import CsvSubscriber, Rejected, read_subscribers, write_csv

# Each entry moves the schema one version up; PRAGMA user_version records where a store stands.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE subscribers (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL,
        email_key TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL DEFAULT '',
        lang TEXT,
        format TEXT NOT NULL DEFAULT 'html' CHECK (format IN ('html', 'text')),
        status TEXT NOT NULL DEFAULT 'active'
            CHECK (status IN ('pending', 'active', 'unsubscribed', 'bounced')),
        attributes TEXT NOT NULL DEFAULT '{}',
        source TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        unsubscribed_at TEXT,
        bounce_score REAL NOT NULL DEFAULT 0
    );
    CREATE INDEX subscribers_by_status ON subscribers (status, id);
    """,
    """
    CREATE TABLE bounce_events (
        id INTEGER PRIMARY KEY,
        email_key TEXT NOT NULL,
        email TEXT NOT NULL,
        day TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('hard', 'soft')),
        reason TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
    );
    CREATE INDEX bounce_events_by_address ON bounce_events (email_key, day);
    """,
]


class StoreError(HebdoError):
    """The subscriber store cannot be used, or a command's input is wrong."""


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str
    lang: str | None
    format: str
    status: str
    attributes: dict[str, str]
    source: str
    created_at: str
    updated_at: str
    unsubscribed_at: str | None
    bounce_score: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Subscriber:
        return cls(
            id=row["id"],
            email=row["email"],
            name=row["name"],
            lang=row["lang"],
            format=row["format"],
            status=row["status"],
            attributes=json.loads(row["attributes"]),
            source=row["source"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            unsubscribed_at=row["unsubscribed_at"],
            bounce_score=row["bounce_score"],
        )


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0  # rows that repeated an address earlier in the same file
    kept_out: int = 0  # unsubscribed or bounced readers the file did not re-activate
    rejected: list[Rejected] = field(default_factory=list)


EXPORT_COLUMNS = [
    "email",
    "name",
    "lang",
    "format",
    "status",
    "source",
    "created_at",
    "updated_at",
    "unsubscribed_at",
    "bounce_score",
]


class SubscriberStore:
    """One open store. Use as a context manager so the connection is always closed."""

    def __init__(
        self, path: Path, *, create: bool = True, bounces: BounceSettings | None = None
    ) -> None:
        self.path = path
        self.bounce_policy = bounces or BounceSettings()
        if not path.exists() and not create:
            raise StoreError(
                "no subscriber store here yet; import a list first "
                "(hebdo-mail subscribers import FILE) or pass --subscribers FILE.csv",
                path=path,
            )
        try:
            self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"is not a usable subscriber store ({exc}); restore it from a backup or move it "
                "aside — it was left as it is",
                path=path,
            ) from None

    def __enter__(self) -> SubscriberStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(
                f"was written by a newer hebdo-mail (schema {version}); upgrade hebdo-mail",
                path=self.path,
            )
        if version == 0 and self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise StoreError(
                "is an SQLite database but not a hebdo-mail store; point [store] path elsewhere",
                path=self.path,
            )
        for number in range(version, len(MIGRATIONS)):
            # Statement by statement: executescript() would commit half-way through.
            with self.transaction():
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number + 1}")

    def transaction(self) -> Transaction:
        return Transaction(self.db)

    # -- reading -------------------------------------------------------------------------------

    def get(self, email: str) -> Subscriber | None:
        row = self.db.execute(
            "SELECT * FROM subscribers WHERE email_key = ?", (address_key(email),)
        ).fetchone()
        return Subscriber.from_row(row) if row else None

    def status_of(self, email: str) -> str | None:
        """The current status of one address, or None when unknown: read just before each send."""
        row = self.db.execute(
            "SELECT status FROM subscribers WHERE email_key = ?", (address_key(email),)
        ).fetchone()
        return row[0] if row else None

    def data_version(self) -> int:
        """Changes whenever another connection commits: a cheap way to know nothing changed."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def not_mailable(self) -> dict[str, str]:
        """email_key -> status of everyone unsubscribed or bounced."""
        rows = self.db.execute(
            "SELECT email_key, status FROM subscribers WHERE status IN ('unsubscribed', 'bounced')"
        )
        return {key: status for key, status in rows}

    def statuses(self, emails: Sequence[str]) -> dict[str, str]:
        """Current status of each known address (by normalised address), in one query per 500."""
        found: dict[str, str] = {}
        keys = [address_key(e) for e in emails]
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                f"SELECT email_key, status FROM subscribers WHERE email_key IN ({marks})", chunk
            ):
                found[row["email_key"]] = row["status"]
        return found

    def iter_subscribers(
        self, *, status: str | None = None, search: str | None = None, batch: int = 1000
    ) -> Iterator[Subscriber]:
        """Subscribers in id order, fetched ``batch`` at a time so memory stays flat."""
        last_id = 0
        conditions, params = ["id > ?"], []
        if status:
            conditions.append("status = ?")
            params.append(status)
        if search:
            conditions.append("(email LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\')")
            pattern = (
                "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            )
            params += [pattern, pattern]
        query = f"SELECT * FROM subscribers WHERE {' AND '.join(conditions)} ORDER BY id LIMIT ?"
        while True:
            rows = self.db.execute(query, (last_id, *params, batch)).fetchall()
            if not rows:
                return
            for row in rows:
                yield Subscriber.from_row(row)
            last_id = rows[-1]["id"]

    def count(self, status: str | None = None) -> int:
        if status:
            return int(
                self.db.execute(
                    "SELECT count(*) FROM subscribers WHERE status = ?", (status,)
                ).fetchone()[0]
            )
        return int(self.db.execute("SELECT count(*) FROM subscribers").fetchone()[0])

    def stats(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = {}
        for column in ("status", "lang", "format"):
            rows = self.db.execute(
                f"SELECT coalesce({column}, '(default)') AS value, count(*) AS n FROM subscribers "
                f"GROUP BY 1 ORDER BY n DESC, value"
            )
            result[column] = {row["value"]: row["n"] for row in rows}
        return result

    # -- changing ------------------------------------------------------------------------------

    def add(
        self,
        email: str,
        *,
        name: str = "",
        lang: str | None = None,
        format: str = "html",
        status: str = "active",
        attributes: dict[str, str] | None = None,
        source: str = "cli",
    ) -> tuple[Subscriber, str]:
        """Add a subscriber, or re-activate a known one: an explicit add is consent again.

        Returns the subscriber and what happened: "added", "reactivated" or "updated".
        """
        address = self._address(email)
        try:
            check_name(name)
        except InvalidAddress as exc:
            raise StoreError(f"{address}: {exc}") from None
        if lang:
            try:
                check_language(lang)
            except ValueError as exc:
                raise StoreError(f"--lang: {exc}") from None
        if format not in FORMATS or status not in STATUSES:
            raise StoreError(
                f"format must be one of {', '.join(FORMATS)} and status one of {', '.join(STATUSES)}"
            )
        stamp = now()
        with self.transaction():
            existing = self.get(address)
            if existing is None:
                self.db.execute(
                    "INSERT INTO subscribers (email, email_key, name, lang, format, status, attributes,"
                    " source, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        address,
                        address_key(address),
                        name,
                        lang,
                        format,
                        status,
                        json.dumps(attributes or {}, ensure_ascii=False),
                        source,
                        stamp,
                        stamp,
                    ),
                )
                outcome = "added"
            else:
                outcome = (
                    "reactivated" if existing.status in ("unsubscribed", "bounced") else "updated"
                )
                if status == "active":  # a fresh start: old bounces must not re-bounce them
                    self.db.execute(
                        "DELETE FROM bounce_events WHERE email_key = ?", (address_key(address),)
                    )
                self.db.execute(
                    "UPDATE subscribers SET name = ?, lang = ?, format = ?, status = ?, attributes = ?,"
                    " updated_at = ?, unsubscribed_at = NULL,"
                    " bounce_score = CASE WHEN ? = 'active' THEN 0 ELSE bounce_score END"
                    " WHERE id = ?",
                    (
                        name or existing.name,
                        lang or existing.lang,
                        format,
                        status,
                        json.dumps(
                            {**existing.attributes, **(attributes or {})}, ensure_ascii=False
                        ),
                        stamp,
                        status,
                        existing.id,
                    ),
                )
        subscriber = self.get(address)
        assert subscriber is not None
        return subscriber, outcome

    def set_status(self, email: str, status: str) -> Subscriber:
        """Mark a known subscriber (unsubscribed, bounced…); idempotent."""
        address = self._address(email)
        stamp = now()
        with self.transaction():
            existing = self.get(address)
            if existing is None:
                raise StoreError(
                    f"{address} is not in the list; check the address (subscribers list --search)"
                )
            if existing.status != status:
                self.db.execute(
                    "UPDATE subscribers SET status = ?, updated_at = ?,"
                    " unsubscribed_at = CASE WHEN ? = 'unsubscribed' THEN ? ELSE unsubscribed_at END"
                    " WHERE id = ?",
                    (status, stamp, status, stamp, existing.id),
                )
        result = self.get(address)
        assert result is not None
        return result

    def mark_unsubscribed(self, email: str, *, source: str) -> Subscriber:
        """Unsubscribe an address, recording it even when the store did not know it (a reader
        of a CSV send): later sends skip it either way. Idempotent."""
        address = self._address(email)
        stamp = now()
        with self.transaction():
            self.db.execute(
                "INSERT INTO subscribers (email, email_key, status, source, created_at, updated_at,"
                " unsubscribed_at) VALUES (?, ?, 'unsubscribed', ?, ?, ?, ?)"
                " ON CONFLICT (email_key) DO UPDATE SET status = 'unsubscribed',"
                " updated_at = excluded.updated_at,"
                " unsubscribed_at = coalesce(subscribers.unsubscribed_at, excluded.unsubscribed_at)"
                " WHERE subscribers.status != 'unsubscribed'",
                (address, address_key(address), source, stamp, stamp, stamp),
            )
        result = self.get(address)
        assert result is not None
        return result

    def request_subscription(
        self, email: str, *, name: str, lang: str | None, format: str, source: str
    ) -> Subscriber:
        """A subscribe form was sent: a new address becomes pending; a known one is left as it
        is until its owner confirms (the form proves nothing about who sent it)."""
        address = self._address(email)
        stamp = now()
        with self.transaction():
            self.db.execute(
                "INSERT INTO subscribers (email, email_key, name, lang, format, status, source,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)"
                " ON CONFLICT (email_key) DO UPDATE SET name = excluded.name, lang = excluded.lang,"
                " format = excluded.format, updated_at = excluded.updated_at"
                " WHERE subscribers.status = 'pending'",
                (address, address_key(address), name, lang, format, source, stamp, stamp),
            )
        result = self.get(address)
        assert result is not None
        return result

    def confirm(self, email: str, *, source: str) -> Subscriber:
        """The owner of the address confirmed: active from now on (and re-activated if they had
        left: confirming is an explicit new consent)."""
        address = self._address(email)
        stamp = now()
        with self.transaction():
            self.db.execute(
                "INSERT INTO subscribers (email, email_key, status, source, created_at, updated_at)"
                " VALUES (?, ?, 'active', ?, ?, ?)"
                " ON CONFLICT (email_key) DO UPDATE SET status = 'active', updated_at = excluded.updated_at,"
                " unsubscribed_at = NULL, bounce_score = 0 WHERE subscribers.status != 'active'",
                (address, address_key(address), source, stamp, stamp),
            )
        result = self.get(address)
        assert result is not None
        return result

    def remove(self, email: str) -> None:
        address = self._address(email)
        with self.transaction():
            deleted = self.db.execute(
                "DELETE FROM subscribers WHERE email_key = ?", (address_key(address),)
            ).rowcount
        if not deleted:
            raise StoreError(f"{address} is not in the list; nothing was removed")

    def record_bounce(
        self, email: str, kind: str, reason: str, *, source: str, day: dt.date | None = None
    ) -> str:
        """Count a bounce: hard 1, soft 0.5, at most one per address and day (the hardest), only
        the last ``expire_days`` count. At the threshold a subscriber becomes ``bounced``; an
        address the store did not know (a reader of a CSV send) is recorded as bounced then.

        Returns "duplicate" when this ``source`` was counted before, "bounced" when this bounce
        made the address bounced, else "counted"."""
        address = address_key(email)
        today = dt.datetime.now(dt.UTC).date()
        bounce_day = min(day or today, today)
        with self.transaction():
            inserted = self.db.execute(
                "INSERT INTO bounce_events (email_key, email, day, kind, reason, source, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source) DO NOTHING",
                (address, email, bounce_day.isoformat(), kind, reason[:500], source, now()),
            ).rowcount
            if not inserted:
                return "duplicate"
            score = self._bounce_score(address, today)
            self.db.execute(
                "UPDATE subscribers SET bounce_score = ?, updated_at = ? WHERE email_key = ?",
                (score, now(), address),
            )
            if score >= self.bounce_policy.threshold:
                stamp = now()
                became_bounced = self.db.execute(
                    "INSERT INTO subscribers (email, email_key, status, source, created_at, updated_at,"
                    " bounce_score) VALUES (?, ?, 'bounced', 'bounces', ?, ?, ?)"
                    " ON CONFLICT (email_key) DO UPDATE SET status = 'bounced', updated_at = excluded.updated_at"
                    " WHERE subscribers.status IN ('active', 'pending')",
                    (email, address, stamp, stamp, score),
                ).rowcount
                if became_bounced:
                    return "bounced"
        return "counted"

    def _bounce_score(self, key: str, today: dt.date) -> float:
        since = (today - dt.timedelta(days=self.bounce_policy.expire_days - 1)).isoformat()
        rows = self.db.execute(
            "SELECT day, max(CASE kind WHEN 'hard' THEN 1.0 ELSE 0.5 END) FROM bounce_events"
            " WHERE email_key = ? AND day >= ? GROUP BY day",
            (key, since),
        )
        return float(sum(weight for _, weight in rows))

    def bounce_report(self, today: dt.date | None = None) -> list[dict[str, Any]]:
        """Every address with bounces: current score, status, last bounce and its reason."""
        day = today or dt.datetime.now(dt.UTC).date()
        keys = [
            k
            for (k,) in self.db.execute(
                "SELECT DISTINCT email_key FROM bounce_events ORDER BY email_key"
            )
        ]
        report = []
        for key in keys:
            last = self.db.execute(
                "SELECT email, day, kind, reason FROM bounce_events WHERE email_key = ? ORDER BY day DESC, id DESC LIMIT 1",
                (key,),
            ).fetchone()
            subscriber = self.db.execute(
                "SELECT email, status FROM subscribers WHERE email_key = ?", (key,)
            ).fetchone()
            report.append({
                "email": subscriber["email"] if subscriber else last["email"],
                "score": self._bounce_score(key, day),
                "status": subscriber["status"] if subscriber else "-", "last_day": last["day"],
                "last_kind": last["kind"], "last_reason": last["reason"],
            })  # fmt: skip
        return sorted(report, key=lambda r: (-r["score"], r["email"]))

    def reset_bounces(self, email: str) -> Subscriber | None:
        """Forget an address's bounces; if they had made it ``bounced``, it is active again."""
        address = self._address(email)
        with self.transaction():
            removed = self.db.execute(
                "DELETE FROM bounce_events WHERE email_key = ?", (address_key(address),)
            ).rowcount
            self.db.execute(
                "UPDATE subscribers SET bounce_score = 0, updated_at = ?,"
                " status = CASE status WHEN 'bounced' THEN 'active' ELSE status END WHERE email_key = ?",
                (now(), address_key(address)),
            )
        subscriber = self.get(address)
        if subscriber is None and not removed:
            raise StoreError(f"{address} has no bounces and is not in the list")
        return subscriber

    @staticmethod
    def _address(email: str) -> str:
        try:
            return normalise_address(email)
        except InvalidAddress as exc:
            raise StoreError(f"{exc}; check the address") from None

    # -- import / export -----------------------------------------------------------------------

    def import_csv(
        self, path: Path, *, update: bool = False, dry_run: bool = False, check_dns: bool = False
    ) -> ImportReport:
        """Import a CSV list in one transaction; bad rows are reported and skipped."""
        report = ImportReport()
        rows: dict[str, CsvSubscriber] = {}
        for item in read_subscribers(path, check_dns=check_dns):
            if isinstance(item, Rejected):
                report.rejected.append(item)
                continue
            key = address_key(item.email)
            if key in rows:
                rows[key] = _merge(rows[key], item)
                report.merged += 1
            else:
                rows[key] = item

        stamp = now()
        source = f"import:{path.name}"
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        with self.transaction() as transaction:
            existing = self._existing(list(rows))
            for key, row in rows.items():
                current = existing.get(key)
                if current is None:
                    inserts.append(
                        (
                            row.email,
                            key,
                            row.name,
                            row.lang,
                            row.format or "html",
                            row.status or "active",
                            json.dumps(row.attributes, ensure_ascii=False),
                            source,
                            stamp,
                            stamp,
                            stamp if row.status == "unsubscribed" else None,
                        )
                    )
                    report.added += 1
                    continue
                if current.status in ("unsubscribed", "bounced") and row.status not in (
                    None,
                    current.status,
                ):
                    report.kept_out += 1
                changed = _updated(current, row) if update else None
                if changed is None:
                    report.unchanged += 1
                    continue
                unsubscribed_at = current.unsubscribed_at
                if changed[3] == "unsubscribed" and current.status != "unsubscribed":
                    unsubscribed_at = stamp
                updates.append((*changed, unsubscribed_at, stamp, current.id))
                report.updated += 1
            self.db.executemany(
                "INSERT INTO subscribers (email, email_key, name, lang, format, status, attributes,"
                " source, created_at, updated_at, unsubscribed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                inserts,
            )
            self.db.executemany(
                "UPDATE subscribers SET name = ?, lang = ?, format = ?, status = ?, attributes = ?,"
                " unsubscribed_at = ?, updated_at = ? WHERE id = ?",
                updates,
            )
            if dry_run:
                transaction.rollback()
        return report

    def _existing(self, keys: list[str]) -> dict[str, Subscriber]:
        found: dict[str, Subscriber] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                f"SELECT * FROM subscribers WHERE email_key IN ({marks})", chunk
            ):
                found[row["email_key"]] = Subscriber.from_row(row)
        return found

    def export_csv(self, target: Path | None, *, status: str | None = None) -> int:
        """Write the list (or one status of it) as CSV; attributes become columns."""
        attribute_names = sorted(
            {
                key
                for (text,) in self.db.execute(
                    "SELECT DISTINCT attributes FROM subscribers"
                    + (" WHERE status = ?" if status else ""),
                    (status,) if status else (),
                )
                for key in json.loads(text)
            }
        )

        def rows() -> Iterator[list[str]]:
            for s in self.iter_subscribers(status=status):
                yield [
                    s.email,
                    s.name,
                    s.lang or "",
                    s.format,
                    s.status,
                    s.source,
                    s.created_at,
                    s.updated_at,
                    s.unsubscribed_at or "",
                    f"{s.bounce_score:g}",
                    *(s.attributes.get(name, "") for name in attribute_names),
                ]

        return write_csv(rows(), EXPORT_COLUMNS + attribute_names, target)


def _merge(first: CsvSubscriber, later: CsvSubscriber) -> CsvSubscriber:
    """Two rows for one address: the first row's values win, the later one fills the gaps."""
    return CsvSubscriber(
        line=first.line,
        email=first.email,
        name=first.name or later.name,
        lang=first.lang or later.lang,
        format=first.format or later.format,
        status=first.status or later.status,
        attributes={**later.attributes, **first.attributes},
    )


def _updated(current: Subscriber, row: CsvSubscriber) -> tuple[Any, ...] | None:
    """The new column values for --update, or None when nothing changes.

    A file may mark someone unsubscribed, but never brings back someone who left or bounced.
    """
    status = current.status
    if row.status and row.status != status and status not in ("unsubscribed", "bounced"):
        status = row.status
    values = (
        row.name or current.name,
        row.lang or current.lang,
        row.format or current.format,
        status,
        json.dumps({**current.attributes, **row.attributes}, ensure_ascii=False),
    )
    before = (
        current.name,
        current.lang,
        current.format,
        current.status,
        json.dumps(current.attributes, ensure_ascii=False),
    )
    return None if values == before else values


class Transaction:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception (the connection is in autocommit)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.rolled_back = False

    def __enter__(self) -> Transaction:
        self.db.execute("BEGIN IMMEDIATE")
        return self

    def rollback(self) -> None:
        self.db.execute("ROLLBACK")
        self.rolled_back = True

    def __exit__(self, kind: object, *rest: object) -> None:
        if self.rolled_back:
            return
        self.db.execute("ROLLBACK" if kind else "COMMIT")
