"""Erasing a reader entirely, at their request (GDPR article 17): their row, their bounces and
every other row of the store about them go; their status history stays counted in the list's
figures, tied to nobody.

What is kept is a one-way digest of the address (SHA-256), so that an import of an old file does
not silently put them back: the import rejects the row and says why. The address cannot be read
back from the digest, though someone who already knows an address can test whether it was erased.
An explicit new consent (``subscribers add``, a confirmed subscription) clears the digest.

The record of the sends is the ledger's to change (``DeliveryRecords.forget``), in the same
transaction: the file logs are append-only and keep the address (the dashboard says which do);
the shared ledger's rows no longer name the reader (see the README).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .addresses import address_key
from .database import StoreError

if TYPE_CHECKING:
    from .database import Database
    from .store import SubscriberStore

# Tables holding rows about one address, by its key (the status history is anonymised instead).
PERSONAL_TABLES = (
    "subscribers",
    "bounce_events",
    "sender_events",
    "deliveries",
    "confirmation_mail",
)
CHUNK = 500
ERASED = "(erased reader)"


def address_digest(key: str) -> str:
    return hashlib.sha256(f"hebdo-mail erased address\n{key}".encode()).hexdigest()


@dataclass(frozen=True)
class ErasedSends:
    """What erasing did to the record of the sends."""

    issues: list[str]  # the issues whose records named the reader
    rewritten: bool  # True: they no longer do; False: append-only logs that still do
    rows: dict[str, int]  # rows deleted or anonymised, per table


@dataclass(frozen=True)
class Erasure:
    email: str
    rows: dict[str, int]  # rows deleted per table
    sends: ErasedSends


def erase_reader(
    store: SubscriberStore, email: str, stamp: str, forget_sends: Callable[[str], ErasedSends]
) -> Erasure:
    """Delete everything the store holds about ``email`` in one transaction, keeping its digest;
    ``forget_sends`` (the ledger's) runs in the same transaction, first."""
    key = address_key(email)
    rows: dict[str, int] = {}
    with store.db.transaction():
        if store.get(email) is None:
            raise StoreError(f"{email} is not in the list; nothing was erased")
        sends = forget_sends(key)
        for table in PERSONAL_TABLES:
            rows[table] = store.db.execute(
                f"DELETE FROM {table} WHERE email_key = ?", (key,)
            ).rowcount
        store.history.anonymise(key)
        # The audit log names readers by address key: the entries stay, the name goes.
        store.db.execute("UPDATE admin_audit SET target = ? WHERE target = ?", (ERASED, key))
        store.db.execute(
            "INSERT INTO erased_addresses (digest, erased_at) VALUES (?, ?)"
            " ON CONFLICT (digest) DO UPDATE SET erased_at = excluded.erased_at",
            (address_digest(key), stamp),
        )
    return Erasure(email, rows, sends)


def erased_among(db: Database, keys: Sequence[str]) -> dict[str, str]:
    """Which of these address keys were erased: key -> when."""
    if not db.execute("SELECT 1 FROM erased_addresses LIMIT 1").fetchone():
        return {}  # the usual case: no digest to compute
    digests = {address_digest(key): key for key in keys}
    wanted = list(digests)
    found: dict[str, str] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        marks = ",".join("?" * len(chunk))
        for digest, erased_at in db.execute(
            f"SELECT digest, erased_at FROM erased_addresses WHERE digest IN ({marks})", chunk
        ):
            found[digests[digest]] = erased_at
    return found


def forget_erasure(db: Database, key: str) -> None:
    """Within a caller's transaction: a new consent, so the address may come back."""
    db.execute("DELETE FROM erased_addresses WHERE digest = ?", (address_digest(key),))
