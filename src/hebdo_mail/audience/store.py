"""The mailing list: who reads, in which language and format, and where each reader stands
(pending, active, unsubscribed, bounced): the subscriber lifecycle (the schema is schema.py's).

Every change is one transaction. The store runs on a ``Database`` (SQLite by default); the bounce
ledger (bounce_ledger.py) and CSV import/export (importer.py) work on the same one. Delivery, the
web app and the CLI depend on the ``Store`` protocol below, not on this class.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..checks import check_language
from ..vocabulary import FORMATS, NOT_MAILABLE, STATUSES, Status
from .addresses import InvalidAddress, address_key, check_name, normalise_address
from .batching import growing_sizes
from .bounce_ledger import BounceLedger
from .database import Bracket, Database, SqliteDatabase, StoreError, now
from .erasure import forget_erasure
from .history import StatusHistory, statuses_of
from .schema import MIGRATIONS, TABLES
from .subscriptions import Subscriptions
from .tallies import IssueTallies

if TYPE_CHECKING:
    from ..config import BounceSettings
    from ..workspace import Workspace

__all__ = [
    "MIGRATIONS", "TABLES", "Store", "StoreError", "Subscriber", "SubscriberStore", "open_store",
]  # fmt: skip


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
    def from_row(cls, row: Any) -> Subscriber:
        return cls(
            id=row["id"], email=row["email"], name=row["name"], lang=row["lang"],
            format=row["format"], status=row["status"], attributes=json.loads(row["attributes"]),
            source=row["source"], created_at=row["created_at"], updated_at=row["updated_at"],
            unsubscribed_at=row["unsubscribed_at"], bounce_score=row["bounce_score"],
        )  # fmt: skip


# What a send needs of a reader, from the store or a CSV list: email, name, lang, format (None:
# the default), attributes.
MailingRow = tuple[str, str, str | None, str | None, dict[str, str]]


class Store(Protocol):
    """What delivery, the web app and the CLI ask of the mailing list."""

    bounces: BounceLedger
    subscriptions: Subscriptions
    tallies: IssueTallies

    def close(self) -> None: ...
    def change_marker(self) -> int: ...
    def get(self, email: str) -> Subscriber | None: ...
    def status_of(self, email: str) -> str | None: ...
    def not_mailable(self) -> dict[str, str]: ...
    def statuses_of(self, keys: Sequence[str]) -> dict[str, str]: ...
    def iter_subscribers(
        self, *, status: str | None = None, search: str | None = None, batch: int = 1000
    ) -> Iterator[Subscriber]: ...
    def count(self, status: str | None = None) -> int: ...
    def mark_unsubscribed(
        self, email: str, *, source: str, issue_id: str | None = None
    ) -> Subscriber: ...
    def update_preferences(
        self, email: str, *, name: str, lang: str | None, format: str
    ) -> Subscriber: ...


class SubscriberStore:
    """One open store. Use as a context manager so the connection is always closed."""

    def __init__(self, db: Database, *, bounces: BounceSettings | None = None) -> None:
        self.db = db
        self.history = StatusHistory(db)
        if bounces is None:  # the defaults (a send passes the workspace's, read without the models)
            from ..config import BounceSettings

            bounces = BounceSettings()
        self.bounces = BounceLedger(db, bounces, self.history)
        self.tallies = IssueTallies(db)
        self.subscriptions = Subscriptions(db, self.history)

    @classmethod
    def at(
        cls, path: Path, *, create: bool = True, bounces: BounceSettings | None = None
    ) -> SubscriberStore:
        """The SQLite store in the file ``path``."""
        return cls(SqliteDatabase(path, create=create, migrations=MIGRATIONS), bounces=bounces)

    def __enter__(self) -> SubscriberStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def change_marker(self) -> int:
        """Moves whenever another process commits: cheaper than asking about every reader."""
        return self.db.change_marker()

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

    def statuses_of(self, keys: Sequence[str]) -> dict[str, str]:
        """address key -> status, of those of these keys the store knows."""
        return statuses_of(self.db, keys)

    def not_mailable(self) -> dict[str, str]:
        """email_key -> status of everyone unsubscribed or bounced."""
        rows = self.db.execute(
            "SELECT email_key, status FROM subscribers WHERE status IN ('unsubscribed', 'bounced')"
        )
        return {key: status for key, status in rows}

    def keys_of(self, status: str, *, batch: int = 10_000) -> Iterator[list[str]]:
        """The address keys of every subscriber of that status, in id order, a batch at a time
        (a server's cursor would otherwise bring every row over at once). The first batches are
        small, doubling up to ``batch``: whoever waits for the first keys gets them at once."""
        last, sizes = 0, growing_sizes(256, batch)
        while True:
            size = next(sizes)
            rows = self.db.execute(
                "SELECT id, email_key FROM subscribers WHERE status = ? AND id > ? ORDER BY id"
                " LIMIT ?",
                (status, last, size),
            ).fetchall()
            if rows:
                yield [row[1] for row in rows]
            if len(rows) < size:
                return
            last = rows[-1][0]

    def mailing_rows(self, keys: Sequence[str]) -> dict[str, MailingRow]:
        """What a send needs of the subscribers of these address keys (email, name, lang,
        format, attributes), one query per 500; the rest of their rows is not read."""
        found: dict[str, MailingRow] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, email, name, lang, fmt, attributes in self.db.execute(
                "SELECT email_key, email, name, lang, format, attributes FROM subscribers"
                f" WHERE email_key IN ({marks})",
                chunk,
            ):
                found[key] = (email, name, lang, fmt, json.loads(attributes))
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
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params += [f"%{escaped}%", f"%{escaped}%"]
        query = f"SELECT * FROM subscribers WHERE {' AND '.join(conditions)} ORDER BY id LIMIT ?"
        while True:
            rows = self.db.execute(query, (last_id, *params, batch)).fetchall()
            if not rows:
                return
            for row in rows:
                yield Subscriber.from_row(row)
            last_id = rows[-1]["id"]

    def snapshot(self) -> Bracket:
        """A read transaction: what it reads is the store as of its first read, whatever is
        committed meanwhile (SQLite's WAL keeps that moment for it; a server needs REPEATABLE
        READ). Takes no write lock."""
        begin = "BEGIN" if self.db.engine == "sqlite" else "BEGIN ISOLATION LEVEL REPEATABLE READ"
        return Bracket(self.db.execute, begin)

    def count(self, status: str | None = None) -> int:
        if status:
            query = self.db.execute("SELECT count(*) FROM subscribers WHERE status = ?", (status,))
        else:
            query = self.db.execute("SELECT count(*) FROM subscribers")
        return int(query.fetchone()[0])

    def stats(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = {}
        for column in ("status", "lang", "format"):
            rows = self.db.execute(
                f"SELECT coalesce({column}, '(default)') AS value, count(*) AS n FROM subscribers "
                f"GROUP BY 1 ORDER BY n DESC, value"
            )
            result[column] = {row["value"]: row["n"] for row in rows}
        return result

    def attribute_names(self, status: str | None = None) -> list[str]:
        """Every attribute any subscriber (of that status) has, sorted."""
        query = "SELECT DISTINCT attributes FROM subscribers" + (
            " WHERE status = ?" if status else ""
        )
        rows = self.db.execute(query, (status,) if status else ())
        return sorted({key for (text,) in rows for key in json.loads(text)})

    # -- changing ------------------------------------------------------------------------------

    def add(
        self, email: str, *, name: str = "", lang: str | None = None, format: str = "html",
        status: str = "active", attributes: dict[str, str] | None = None, source: str = "cli",
    ) -> tuple[Subscriber, str]:  # fmt: skip
        """Add a subscriber, or re-activate a known one: an explicit add is consent again.

        Returns the subscriber and what happened: "added", "reactivated" or "updated".
        """
        address = self._address(email)
        self._check_fields(address, name, lang, format, status)
        stamp = now()
        key = address_key(address)
        with self.db.transaction(), self.history.watch([key], source):
            forget_erasure(self.db, key)  # an explicit add is a new consent
            existing = self.get(address)
            if existing is None:
                self.db.execute(
                    "INSERT INTO subscribers (email, email_key, name, lang, format, status, attributes,"
                    " source, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (address, key, name, lang, format, status,
                     json.dumps(attributes or {}, ensure_ascii=False), source, stamp, stamp),
                )  # fmt: skip
                outcome = "added"
            else:
                outcome = "reactivated" if existing.status in NOT_MAILABLE else "updated"
                if status == Status.ACTIVE:  # a fresh start: old bounces must not re-bounce them
                    self.bounces.forget(key)
                merged = {**existing.attributes, **(attributes or {})}
                self.db.execute(
                    "UPDATE subscribers SET name = ?, lang = ?, format = ?, status = ?, attributes = ?,"
                    " updated_at = ?, unsubscribed_at = NULL,"
                    " bounce_score = CASE WHEN ? = 'active' THEN 0 ELSE bounce_score END"
                    " WHERE id = ?",
                    (name or existing.name, lang or existing.lang, format, status,
                     json.dumps(merged, ensure_ascii=False), stamp, status, existing.id),
                )  # fmt: skip
        return self._reread(address), outcome

    def set_status(self, email: str, status: str, *, source: str = "cli") -> Subscriber:
        """Mark a known subscriber (unsubscribed, bounced…); idempotent."""
        address = self._address(email)
        stamp = now()
        with self.db.transaction(), self.history.watch([address_key(address)], source):
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
        return self._reread(address)

    def mark_unsubscribed(
        self, email: str, *, source: str, issue_id: str | None = None
    ) -> Subscriber:
        """Unsubscribe an address, recording it even when the store did not know it (a reader
        of a CSV send): later sends skip it either way. Idempotent. ``issue_id``: the issue whose
        link they used, counted for its report when this unsubscribes them."""
        address = self._address(email)
        stamp = now()
        with self.db.transaction(), self.history.watch([address_key(address)], source):
            changed = self.db.execute(
                "INSERT INTO subscribers (email, email_key, status, source, created_at, updated_at,"
                " unsubscribed_at) VALUES (?, ?, 'unsubscribed', ?, ?, ?, ?)"
                " ON CONFLICT (email_key) DO UPDATE SET status = 'unsubscribed',"
                " updated_at = excluded.updated_at,"
                " unsubscribed_at = coalesce(subscribers.unsubscribed_at, excluded.unsubscribed_at)"
                " WHERE subscribers.status != 'unsubscribed'",
                (address, address_key(address), source, stamp, stamp, stamp),
            ).rowcount
            if changed and issue_id:
                self.tallies.note_unsubscribe(issue_id, source)
        return self._reread(address)

    def update_preferences(
        self, email: str, *, name: str, lang: str | None, format: str
    ) -> Subscriber:
        """A reader changed their name, language or format (on the preferences page); their
        status is theirs to change by unsubscribing, not here."""
        address = self._address(email)
        existing = self.get(address)
        if existing is None:
            raise StoreError(f"{address} is not in the list; nothing was changed")
        self._check_fields(address, name, lang, format, existing.status)
        with self.db.transaction():
            self.db.execute(
                "UPDATE subscribers SET name = ?, lang = ?, format = ?, updated_at = ?"
                " WHERE id = ?",
                (name, lang, format, now(), existing.id),
            )
        return self._reread(address)

    def remove(self, email: str) -> None:
        address = self._address(email)
        with self.db.transaction():
            deleted = self.db.execute(
                "DELETE FROM subscribers WHERE email_key = ?", (address_key(address),)
            ).rowcount
        if not deleted:
            raise StoreError(f"{address} is not in the list; nothing was removed")

    def _reread(self, address: str) -> Subscriber:
        subscriber = self.get(address)
        assert subscriber is not None, "read back after a committed change"
        return subscriber

    @staticmethod
    def _address(email: str) -> str:
        try:
            return normalise_address(email)
        except InvalidAddress as exc:
            raise StoreError(f"{exc}; check the address") from None

    @staticmethod
    def _check_fields(address: str, name: str, lang: str | None, format: str, status: str) -> None:
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


def open_store(
    workspace: Workspace, *, create: bool = True, migrate: bool = False
) -> SubscriberStore:
    """The workspace's store: its PostgreSQL server when [store] url (or HEBDO_STORE_URL) names
    one, else the SQLite file. ``migrate`` brings a server's schema up to date."""
    url = workspace.store_url
    if url is None:
        return SubscriberStore.at(
            workspace.store_path, create=create, bounces=workspace.settings.bounces
        )
    from .postgres import PostgresDatabase

    database = PostgresDatabase(url, migrations=MIGRATIONS, migrate=migrate)
    return SubscriberStore(database, bounces=workspace.settings.bounces)
