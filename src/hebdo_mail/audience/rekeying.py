"""A store migration: addresses keyed the way addresses.py now compares them.

Stores written before compared addresses with ``casefold()`` and kept the local part as typed, so
``josé`` written composed and decomposed (NFC and NFD) could be two subscribers. This migration
puts every address in its normal form, finds the rows that are now one address, and merges them
into the oldest, keeping the most restrictive status (an unsubscribe or a bounce is never lost);
each merge is reported as a warning.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .addresses import InvalidAddress, address_key, normalise_address
from .database import Database

log = logging.getLogger(__name__)

# The most restrictive first: a merged reader keeps the first of these any of its rows had.
RESTRICTIVE = ("unsubscribed", "bounced", "active", "pending")


def normal_form(email: str) -> str:
    try:
        return normalise_address(email)
    except InvalidAddress:  # kept as it was; it only needs a key
        return email


def rekey_addresses(db: Database) -> None:
    rows = db.execute("SELECT * FROM subscribers ORDER BY id").fetchall()
    groups: dict[str, list[Any]] = {}
    for row in rows:
        groups.setdefault(address_key(normal_form(row["email"])), []).append(row)
    # Free every key first, so that no intermediate state breaks the UNIQUE constraint.
    db.execute("UPDATE subscribers SET email_key = '#' || id")
    for key, members in groups.items():
        keep = members[0]
        if len(members) > 1:
            _merge(db, keep, members[1:])
        db.execute(
            "UPDATE subscribers SET email = ?, email_key = ? WHERE id = ?",
            (normal_form(keep["email"]), key, keep["id"]),
        )
    for table in ("bounce_events", "sender_events"):
        for event_id, email in db.execute(f"SELECT id, email FROM {table}").fetchall():
            db.execute(
                f"UPDATE {table} SET email_key = ? WHERE id = ?",
                (address_key(normal_form(email)), event_id),
            )
    for (old,) in db.execute("SELECT DISTINCT email_key FROM confirmation_mail").fetchall():
        db.execute(
            "UPDATE confirmation_mail SET email_key = ? WHERE email_key = ?",
            (address_key(old), old),
        )


def _merge(db: Database, keep: Any, others: list[Any]) -> None:
    members = [keep, *others]
    status = min((row["status"] for row in members), key=RESTRICTIVE.index)
    attributes: dict[str, str] = {}
    for row in reversed(members):  # the oldest row's values win
        attributes.update(json.loads(row["attributes"]))
    left = [row["unsubscribed_at"] for row in members if row["unsubscribed_at"]]
    confirmed = [row["confirmed_at"] for row in members if row["confirmed_at"]]
    db.execute(
        "UPDATE subscribers SET name = ?, status = ?, attributes = ?, unsubscribed_at = ?,"
        " bounce_score = ?, confirmed_at = ?, created_at = ?, updated_at = ? WHERE id = ?",
        (
            next((row["name"] for row in members if row["name"]), ""),
            status,
            json.dumps(attributes, ensure_ascii=False),
            min(left) if left and status == "unsubscribed" else None,
            max(row["bounce_score"] for row in members),
            max(confirmed) if confirmed else None,
            min(row["created_at"] for row in members),
            max(row["updated_at"] for row in members),
            keep["id"],
        ),
    )
    for row in others:
        db.execute("DELETE FROM subscribers WHERE id = ?", (row["id"],))
    log.warning(
        "%s: %s are one address; merged into one subscriber, %s",
        db.where,
        " and ".join(repr(row["email"]) for row in members),
        status,
    )
