"""Finding readers for the dashboard: search by part of an address or name, filters by status,
language and format, one page at a time; one reader by id, with their bounces."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .database import Database
from .store import Subscriber

DEFAULT_LANGUAGE = "-"  # the filter value for readers with no language of their own


@dataclass(frozen=True)
class ReaderFilter:
    text: str = ""
    status: str = ""
    lang: str = ""
    format: str = ""

    def where(self) -> tuple[str, list[Any]]:
        conditions, params = ["1 = 1"], []
        if self.text:
            escaped = self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conditions.append("(email LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\')")
            params += [f"%{escaped}%", f"%{escaped}%"]
        for column in ("status", "format"):
            if value := getattr(self, column):
                conditions.append(f"{column} = ?")
                params.append(value)
        if self.lang == DEFAULT_LANGUAGE:
            conditions.append("lang IS NULL")
        elif self.lang:
            conditions.append("lang = ?")
            params.append(self.lang)
        return " AND ".join(conditions), params


@dataclass(frozen=True)
class Bounce:
    day: str
    kind: str
    category: str
    status: str
    reason: str


def find(
    db: Database, chosen: ReaderFilter, *, page: int, per_page: int
) -> tuple[list[Subscriber], int]:
    """One page of the readers the filter matches, by address, and how many match in all."""
    where, params = chosen.where()
    total = int(db.execute(f"SELECT count(*) FROM subscribers WHERE {where}", params).fetchone()[0])
    rows = db.execute(
        f"SELECT * FROM subscribers WHERE {where} ORDER BY email_key LIMIT ? OFFSET ?",
        (*params, per_page, max(page - 1, 0) * per_page),
    )
    return [Subscriber.from_row(row) for row in rows], total


def matching(db: Database, chosen: ReaderFilter, *, batch: int = 1000) -> Iterator[Subscriber]:
    """Every reader the filter matches, in id order, a batch at a time (for an export)."""
    where, params = chosen.where()
    last_id = 0
    while rows := db.execute(
        f"SELECT * FROM subscribers WHERE {where} AND id > ? ORDER BY id LIMIT ?",
        (*params, last_id, batch),
    ).fetchall():
        yield from (Subscriber.from_row(row) for row in rows)
        last_id = rows[-1]["id"]


def by_id(db: Database, reader_id: int) -> Subscriber | None:
    row = db.execute("SELECT * FROM subscribers WHERE id = ?", (reader_id,)).fetchone()
    return Subscriber.from_row(row) if row else None


def languages(db: Database) -> list[str]:
    """The languages readers have, for the filter's choices."""
    rows = db.execute("SELECT DISTINCT lang FROM subscribers WHERE lang IS NOT NULL ORDER BY 1")
    return [lang for (lang,) in rows]


def bounces_of(db: Database, key: str) -> list[Bounce]:
    rows = db.execute(
        "SELECT day, kind, category, status, reason FROM bounce_events WHERE email_key = ?"
        " ORDER BY day DESC, id DESC",
        (key,),
    )
    return [Bounce(*row) for row in rows]
