"""Lists in and out of the store: ``subscribers import`` and ``subscribers export``.

An import is all or nothing: bad rows are reported with their line and skipped, the rest goes in
one transaction at the end. Someone who unsubscribed or bounced is never re-activated by a file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..vocabulary import NOT_MAILABLE, Format, Status
from .addresses import address_key
from .database import now
from .erasure import erased_among
from .listfile import CsvSubscriber, Rejected, read_subscribers, write_csv
from .store import Subscriber, SubscriberStore

EXPORT_COLUMNS = [
    "email", "name", "lang", "format", "status", "source", "created_at", "updated_at",
    "unsubscribed_at", "bounce_score",
]  # fmt: skip


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
    """Import a CSV list in one transaction; bad rows are reported and skipped."""
    report = ImportReport()
    rows: dict[str, CsvSubscriber] = {}
    for item in read_subscribers(path, check_dns=check_dns):
        if isinstance(item, Rejected):
            report.rejected.append(item)
            continue
        if item.warning:
            report.warnings.append(Rejected(item.line, item.warning))
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
    changes: list[tuple[str, str | None, str]] = []  # status history: key, before, after
    db = store.db
    with db.transaction() as transaction:
        for key, erased_at in erased_among(db, list(rows)).items():
            row = rows.pop(key)
            report.rejected.append(
                Rejected(row.line, f"{row.email}: {ERASED_REASON % erased_at[:10]}")
            )
        existing = store.existing(list(rows))
        for key, row in rows.items():
            current = existing.get(key)
            if current is None:
                inserts.append((
                    row.email, key, row.name, row.lang, row.format or Format.HTML,
                    row.status or Status.ACTIVE, json.dumps(row.attributes, ensure_ascii=False),
                    source, stamp, stamp, stamp if row.status == Status.UNSUBSCRIBED else None,
                ))  # fmt: skip
                changes.append((key, None, row.status or Status.ACTIVE))
                report.added += 1
                continue
            if current.status in NOT_MAILABLE and row.status not in (None, current.status):
                report.kept_out += 1
            changed = _updated(current, row) if update else None
            if changed is None:
                report.unchanged += 1
                continue
            changes.append((key, current.status, changed[3]))
            unsubscribed_at = current.unsubscribed_at
            if changed[3] == Status.UNSUBSCRIBED and current.status != Status.UNSUBSCRIBED:
                unsubscribed_at = stamp
            updates.append((*changed, unsubscribed_at, stamp, current.id))
            report.updated += 1
        db.executemany(
            "INSERT INTO subscribers (email, email_key, name, lang, format, status, attributes,"
            " source, created_at, updated_at, unsubscribed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            inserts,
        )
        db.executemany(
            "UPDATE subscribers SET name = ?, lang = ?, format = ?, status = ?, attributes = ?,"
            " unsubscribed_at = ?, updated_at = ? WHERE id = ?",
            updates,
        )
        # Inside the transaction: a dry run's rollback takes the history too.
        store.history.record(changes, source)
        if dry_run:
            transaction.rollback()
    report.rejected.sort(key=lambda rejected: rejected.line)
    return report


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
