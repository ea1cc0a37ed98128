"""``hebdo-mail store copy``: a whole store moved between SQLite and PostgreSQL (either way), in
one transaction on the target, which must be empty. Rows keep their ids, so the bounce ledger
and everything else that refers to a subscriber stays joined."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..storeurl import check_store_url
from .database import StoreError
from .schema import MIGRATIONS, TABLES
from .store import SubscriberStore

BATCH = 2000


def open_target(target: str, source: SubscriberStore) -> SubscriberStore:
    """The store ``target`` names: a postgresql:// URL (its schema created if need be) or an
    SQLite file."""
    if "://" in target:
        try:
            url = check_store_url(target)
        except ValueError as exc:
            raise ConfigError(f"--to: {exc}") from None
        from .postgres import PostgresDatabase

        database = PostgresDatabase(url, migrations=MIGRATIONS, migrate=True)
        return SubscriberStore(database, bounces=source.bounces.policy)
    return SubscriberStore.at(Path(target), create=True, bounces=source.bounces.policy)


def copy_store(source: SubscriberStore, target: SubscriberStore) -> dict[str, int]:
    """Copy every table; returns the rows copied per table."""
    if source.db.where == target.db.where:
        raise StoreError("is the store being copied; give another target", where=target.db.where)
    counts: dict[str, int] = {}
    with target.db.transaction():
        for table in TABLES:
            if target.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]:
                raise StoreError(
                    f"already holds {table}; copy into a new, empty store", where=target.db.where
                )
        for table in TABLES:
            counts[table] = _copy_table(source, target, table)
            target.db.reset_identity(table)
    return counts


def _copy_table(source: SubscriberStore, target: SubscriberStore, table: str) -> int:
    cursor = source.db.execute(f"SELECT * FROM {table} ORDER BY id")
    columns = [column[0] for column in cursor.description]
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    copied = 0
    while rows := cursor.fetchmany(BATCH):
        target.db.executemany(insert, [tuple(row) for row in rows])
        copied += len(rows)
    return copied
