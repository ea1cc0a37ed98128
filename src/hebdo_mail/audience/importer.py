"""Lists in and out of the store: ``subscribers import`` and ``subscribers export``.

An import is all or nothing: bad rows are reported with their line and skipped, the rest goes in
one transaction. Someone who unsubscribed or bounced is never re-activated by a file. Both
directions stream: a list of a million readers is never held in memory.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..vocabulary import NOT_MAILABLE, Format, Status
from .addresses import address_key
from .database import Database, now
from .erasure import address_digest
from .listfile import CsvSubscriber, Rejected, read_subscribers, write_csv
from .store import Subscriber, SubscriberStore

EXPORT_COLUMNS = [
    "email", "name", "lang", "format", "status", "source", "created_at", "updated_at",
    "unsubscribed_at", "bounce_score",
]  # fmt: skip


BATCH = 1000  # rows read back from the database at a time

ERASED_REASON = (
    "erased at the reader's request on %s; only they can come back (subscribe, or "
    "`subscribers add` with their new consent)"
)


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0  # rows that repeated an address earlier in the same file
    kept_out: int = 0  # unsubscribed or bounced readers the file did not re-activate
    rejected: list[Rejected] = field(default_factory=list)
    warnings: list[Rejected] = field(default_factory=list)  # rows taken, with a remark

    def summary(self) -> str:
        return (
            f"added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
            f"rejected {len(self.rejected)}"
        )


def import_list(
    store: SubscriberStore, path: Path, *, update: bool = False, dry_run: bool = False,
    check_dns: bool = False,
) -> ImportReport:  # fmt: skip
    """Import a CSV list in one transaction; bad rows are reported and skipped.

    The rows are streamed into a temporary table of that transaction, and the database finds the
    repeated addresses, the readers it knows and the new ones: memory stays flat whatever the
    length of the list, and nothing is kept if anything fails."""
    report = ImportReport()
    stamp = now()
    source = f"import:{path.name}"
    db = store.db
    with db.transaction() as transaction:
        erasures = db.execute("SELECT 1 FROM erased_addresses LIMIT 1").fetchone() is not None
        db.execute("DROP TABLE IF EXISTS import_rows")
        db.execute(
            "CREATE TEMPORARY TABLE import_rows (line INTEGER PRIMARY KEY, email_key TEXT NOT NULL,"
            " email TEXT NOT NULL, name TEXT NOT NULL, lang TEXT, format TEXT, status TEXT,"
            " attributes TEXT NOT NULL, erased TEXT)"
        )
        db.executemany(
            "INSERT INTO import_rows (line, email_key, email, name, lang, format, status,"
            " attributes, erased) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _staged(path, report, check_dns=check_dns, erasures=erasures),
        )
        db.execute("CREATE INDEX import_rows_by_key ON import_rows (email_key, line)")
        _merge_repeated(db, report)
        if erasures:
            _reject_erased(db, report)
        _known_readers(store, report, update=update, stamp=stamp, source=source)
        _new_readers(store, report, stamp=stamp, source=source)
        db.execute("DROP TABLE import_rows")
        if dry_run:
            transaction.rollback()
    report.rejected.sort(key=lambda rejected: rejected.line)
    return report


def _staged(
    path: Path, report: ImportReport, *, check_dns: bool, erasures: bool
) -> Iterator[tuple[Any, ...]]:
    """The file's good rows as the temporary table takes them; bad ones go to the report."""
    for item in read_subscribers(path, check_dns=check_dns):
        if isinstance(item, Rejected):
            report.rejected.append(item)
            continue
        if item.warning:
            report.warnings.append(Rejected(item.line, item.warning))
        key = address_key(item.email)
        yield (
            item.line, key, item.email, item.name, item.lang, item.format, item.status,
            json.dumps(item.attributes, ensure_ascii=False),
            address_digest(key) if erasures else None,
        )  # fmt: skip


def _staged_row(row: Any) -> CsvSubscriber:
    return CsvSubscriber(
        line=row["line"], email=row["email"], name=row["name"], lang=row["lang"],
        format=row["format"], status=row["status"], attributes=json.loads(row["attributes"]),
    )  # fmt: skip


def _merge_repeated(db: Database, report: ImportReport) -> None:
    """Rows repeating an address merge into its first row, a batch of addresses at a time."""
    last = ""
    while True:
        keys = [
            row[0]
            for row in db.execute(
                "SELECT email_key FROM import_rows WHERE email_key > ? GROUP BY email_key"
                " HAVING count(*) > 1 ORDER BY email_key LIMIT ?",
                (last, BATCH),
            ).fetchall()
        ]
        if not keys:
            return
        last = keys[-1]
        marks = ",".join("?" * len(keys))
        rows = db.execute(
            f"SELECT * FROM import_rows WHERE email_key IN ({marks}) ORDER BY email_key, line", keys
        ).fetchall()
        groups: dict[str, list[CsvSubscriber]] = {}
        for row in rows:
            groups.setdefault(row["email_key"], []).append(_staged_row(row))
        for key, group in groups.items():
            merged = functools.reduce(_merge, group)
            db.execute(
                "UPDATE import_rows SET name = ?, lang = ?, format = ?, status = ?, attributes = ?"
                " WHERE line = ?",
                (merged.name, merged.lang, merged.format, merged.status,
                 json.dumps(merged.attributes, ensure_ascii=False), merged.line),
            )  # fmt: skip
            db.execute(
                "DELETE FROM import_rows WHERE email_key = ? AND line != ?", (key, merged.line)
            )
            report.merged += len(group) - 1


def _reject_erased(db: Database, report: ImportReport) -> None:
    rows = db.execute(
        "SELECT i.line, i.email, e.erased_at FROM import_rows i"
        " JOIN erased_addresses e ON e.digest = i.erased"
    ).fetchall()
    for line, email, erased_at in rows:
        report.rejected.append(Rejected(line, f"{email}: {ERASED_REASON % erased_at[:10]}"))
    db.execute("DELETE FROM import_rows WHERE erased IN (SELECT digest FROM erased_addresses)")


def _known_readers(
    store: SubscriberStore, report: ImportReport, *, update: bool, stamp: str, source: str
) -> None:
    """The file's readers the store knows: unchanged, or with --update, updated (a batch at a
    time). Someone who left or bounced is never re-activated by a file."""
    db = store.db
    if not update:  # counted, not read
        known, kept_out = db.execute(
            "SELECT count(*), coalesce(sum(CASE WHEN s.status IN (?, ?) AND i.status IS NOT NULL"
            " AND i.status != s.status THEN 1 ELSE 0 END), 0)"
            " FROM import_rows i JOIN subscribers s ON s.email_key = i.email_key",
            tuple(sorted(NOT_MAILABLE)),
        ).fetchone()
        report.unchanged += known
        report.kept_out += kept_out
        return
    last = 0
    while True:
        rows = db.execute(
            "SELECT i.line AS i_line, i.email AS i_email, i.name AS i_name, i.lang AS i_lang,"
            " i.format AS i_format, i.status AS i_status, i.attributes AS i_attributes, s.*"
            " FROM import_rows i JOIN subscribers s ON s.email_key = i.email_key"
            " WHERE i.line > ? ORDER BY i.line LIMIT ?",
            (last, BATCH),
        ).fetchall()
        if not rows:
            return
        last = rows[-1]["i_line"]
        updates: list[tuple[Any, ...]] = []
        changes: list[tuple[str, str | None, str]] = []  # status history: key, before, after
        for row in rows:
            current = Subscriber.from_row(row)
            status = row["i_status"]
            if current.status in NOT_MAILABLE and status not in (None, current.status):
                report.kept_out += 1
            changed = _updated(current, _known_row(row))
            if changed is None:
                report.unchanged += 1
                continue
            changes.append((row["email_key"], current.status, changed[3]))
            unsubscribed_at = current.unsubscribed_at
            if changed[3] == Status.UNSUBSCRIBED and current.status != Status.UNSUBSCRIBED:
                unsubscribed_at = stamp
            updates.append((*changed, unsubscribed_at, stamp, current.id))
        db.executemany(
            "UPDATE subscribers SET name = ?, lang = ?, format = ?, status = ?, attributes = ?,"
            " unsubscribed_at = ?, updated_at = ? WHERE id = ?",
            updates,
        )
        report.updated += len(updates)
        store.history.record(changes, source)  # in the transaction: a dry run takes it back too


def _known_row(row: Any) -> CsvSubscriber:
    return CsvSubscriber(
        line=row["i_line"], email=row["i_email"], name=row["i_name"], lang=row["i_lang"],
        format=row["i_format"], status=row["i_status"],
        attributes=json.loads(row["i_attributes"]),
    )  # fmt: skip


def _new_readers(store: SubscriberStore, report: ImportReport, *, stamp: str, source: str) -> None:
    """The file's readers the store does not know yet, added in the file's order."""
    new = (
        "FROM import_rows i"
        " WHERE NOT EXISTS (SELECT 1 FROM subscribers s WHERE s.email_key = i.email_key)"
    )
    # Their history first: once they are added, nothing tells them from the known ones.
    store.history.record_selected(
        f"SELECT email_key, NULL AS old_status, coalesce(status, 'active') AS new_status {new}",
        (),
        source,
    )
    report.added += store.db.execute(
        "INSERT INTO subscribers (email, email_key, name, lang, format, status, attributes,"
        " source, created_at, updated_at, unsubscribed_at)"
        " SELECT email, email_key, name, lang, coalesce(format, ?), coalesce(status, ?),"
        " attributes, ?, ?, ?, CASE WHEN status = ? THEN ? END"
        f" {new} ORDER BY line",
        (Format.HTML, Status.ACTIVE, source, stamp, stamp, Status.UNSUBSCRIBED, stamp),
    ).rowcount


def export_list(
    store: SubscriberStore, target: Path | None, *, status: str | None = None,
    readers: Iterable[Subscriber] | None = None,
) -> int:  # fmt: skip
    """Write the list (or one status of it, or the ``readers`` given) as CSV; attributes become
    columns."""
    attribute_names = store.attribute_names(status)
    chosen = store.iter_subscribers(status=status) if readers is None else readers

    def rows() -> Iterator[list[str]]:
        for s in chosen:
            yield [
                s.email, s.name, s.lang or "", s.format, s.status, s.source, s.created_at,
                s.updated_at, s.unsubscribed_at or "", f"{s.bounce_score:g}",
                *(s.attributes.get(name, "") for name in attribute_names),
            ]  # fmt: skip

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
    if row.status and row.status != status and status not in NOT_MAILABLE:
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
