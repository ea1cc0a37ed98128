"""The SQL connection under the store: SQLite by default (``hebdo.db``, WAL mode), PostgreSQL for
several hosts (postgres.py).

Everything above speaks through ``Database``: SQLite's SQL with ``?`` placeholders (the PostgreSQL
side translates the few differences), ``transaction()`` for all-or-nothing changes,
``change_marker()`` to learn cheaply whether another process committed, and versioned migrations.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..errors import HebdoError

Row = sqlite3.Row
# A migration is SQL both engines run, a table of SQL per engine where they differ, or a
# function that changes the database through its methods (for what SQL alone cannot do).
Migration = str | dict[str, str] | Callable[["Database"], None]


def migration_sql(migration: Migration, engine: str) -> str:
    if callable(migration):
        return ""
    return migration if isinstance(migration, str) else migration.get(engine, "")


def now() -> str:
    """A timestamp as the store writes them: UTC, ISO 8601, to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class StoreError(HebdoError):
    """The subscriber store cannot be used, or a command's input is wrong."""


class Database(Protocol):
    """What the store needs of an SQL engine."""

    engine: str  # "sqlite" or "postgresql"
    where: str  # the file or server, as errors name it

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int: ...

    def transaction(self) -> Transaction: ...

    def change_marker(self) -> int: ...

    def schema_version(self) -> int: ...

    def reset_identity(self, table: str) -> None:
        """After rows were inserted with their ids, new rows must still get fresh ones."""

    def close(self) -> None: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int) -> list[Any]: ...

    def __iter__(self) -> Any: ...


class Transaction(Protocol):
    def __enter__(self) -> Transaction: ...

    def __exit__(self, kind: object, *rest: object) -> None: ...

    def rollback(self) -> None: ...


class SqliteDatabase:
    """One SQLite connection in autocommit mode; ``transaction()`` brackets the changes.
    The embedded store migrates itself when opened."""

    engine = "sqlite"

    def __init__(self, path: Path, *, create: bool, migrations: Sequence[Migration]) -> None:
        self.path = path
        self.where = str(path)
        if not path.exists() and not create:
            raise StoreError(
                "no subscriber store here yet; import a list first "
                "(hebdo-mail subscribers import FILE) or pass --subscribers FILE.csv",
                path=path,
            )
        try:
            if not path.exists():
                # Created for its owner only (SQLite gives its -wal and -shm files the same mode).
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            # Not tied to the thread that opened it: the web app keeps one store per process,
            # and its requests may run on different threads, one after the other, never at once.
            self.db = sqlite3.connect(
                path, isolation_level=None, timeout=30, check_same_thread=False
            )
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self._migrate(migrations)
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"is not a usable subscriber store ({exc}); restore it from a backup or move it "
                "aside — it was left as it is",
                path=path,
            ) from None
        except OSError as exc:
            raise StoreError(
                f"cannot be created ({exc.strerror}); check the folder and its permissions",
                path=path,
            ) from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        return self.db.executemany(sql, rows).rowcount

    def transaction(self) -> Bracket:
        return Bracket(self.db.execute, "BEGIN IMMEDIATE")

    def change_marker(self) -> int:
        """Changes whenever another connection commits: a cheap way to know nothing changed."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def reset_identity(self, table: str) -> None:
        return None  # INTEGER PRIMARY KEY continues from the highest id by itself

    def close(self) -> None:
        self.db.close()

    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(migrations):
            raise StoreError(
                f"was written by a newer hebdo-mail (schema {version}); upgrade hebdo-mail",
                path=self.path,
            )
        if version == 0 and self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise StoreError(
                "is an SQLite database but not a hebdo-mail store; point [store] path elsewhere",
                path=self.path,
            )
        for number in range(version, len(migrations)):
            # Statement by statement: executescript() would commit half-way through.
            migration = migrations[number]
            with self.transaction():
                if callable(migration):
                    migration(self)
                else:
                    for statement in migration_sql(migration, self.engine).split(";"):
                        if statement.strip():
                            self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number + 1}")


class Bracket:
    """``begin`` … COMMIT, or ROLLBACK on any exception, on a connection in autocommit mode (both
    engines: SQLite begins IMMEDIATE, to take its write lock at once)."""

    def __init__(
        self, execute: Callable[[str], object], begin: str = "BEGIN",
        gone: Callable[[], bool] = lambda: False,
    ) -> None:  # fmt: skip
        self.execute = execute
        self.begin = begin
        self.gone = gone  # the connection is lost: nothing to end
        self.rolled_back = False

    def __enter__(self) -> Bracket:
        self.execute(self.begin)
        return self

    def rollback(self) -> None:
        self.execute("ROLLBACK")
        self.rolled_back = True

    def __exit__(self, kind: object, *rest: object) -> None:
        if self.rolled_back or self.gone():
            return
        self.execute("ROLLBACK" if kind else "COMMIT")
