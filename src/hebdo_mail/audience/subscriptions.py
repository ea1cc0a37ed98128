"""Subscription requests from the web form, on the store's database (``store.subscriptions``).

A new address waits as ``pending`` until its owner confirms; what the form asked for (name,
language, format) travels in the confirmation link and applies only when that link is confirmed,
so a second request cannot change a pending reader. A link is single-use, and dead once the reader
has unsubscribed after it was made. However many requests come, an address is mailed a
confirmation at most once per interval and a few times a day.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from .addresses import address_key
from .database import Database, now
from .erasure import forget_erasure
from .history import StatusHistory

DAY = 24 * 3600


@dataclass(frozen=True)
class Choices:
    """What the form asked for, applied when the link is confirmed."""

    name: str
    lang: str | None
    format: str


class Subscriptions:
    def __init__(self, db: Database, history: StatusHistory | None = None) -> None:
        self.db = db
        self.history = history or StatusHistory(db)

    def request(self, address: str, *, source: str) -> str:
        """A subscribe form named ``address`` (normalised): a new address is recorded as pending,
        with nothing else about it yet; a known one is left as it is (the form proves nothing about
        who sent it). Returns the address's status."""
        key = address_key(address)
        stamp = now()
        with self.db.transaction(), self.history.watch([key], source):
            self.db.execute(
                "INSERT INTO subscribers (email, email_key, status, source, created_at, updated_at)"
                " VALUES (?, ?, 'pending', ?, ?, ?) ON CONFLICT (email_key) DO NOTHING",
                (address, key, source, stamp, stamp),
            )
            row = self.db.execute(
                "SELECT status FROM subscribers WHERE email_key = ?", (key,)
            ).fetchone()
        return str(row[0])

    def may_mail_confirmation(
        self, address: str, *, interval: float, per_day: int, at: float | None = None
    ) -> bool:
        """Whether ``address`` may be mailed a confirmation now; if so, this one is counted."""
        moment = time.time() if at is None else at
        key = address_key(address)
        with self.db.transaction():
            self.db.execute("DELETE FROM confirmation_mail WHERE sent_at < ?", (moment - DAY,))
            count, last = self.db.execute(
                "SELECT count(*), max(sent_at) FROM confirmation_mail WHERE email_key = ?", (key,)
            ).fetchone()
            if count >= per_day or (last is not None and moment - last < interval):
                return False
            self.db.execute(
                "INSERT INTO confirmation_mail (email_key, sent_at) VALUES (?, ?)", (key, moment)
            )
        return True

    def confirm(
        self, address: str, choices: Choices | None, *, issued_at: float, source: str
    ) -> bool:
        """The owner of ``address`` confirmed with a link made at ``issued_at`` (epoch seconds):
        active from now on, with the link's choices (re-activated if they had left: confirming is
        a new consent). False, and nothing changed, when the link is dead: already used, or made
        before the reader last confirmed or unsubscribed."""
        key = address_key(address)
        stamp = now()
        with self.db.transaction(), self.history.watch([key], source):
            row = self.db.execute(
                "SELECT confirmed_at, unsubscribed_at FROM subscribers WHERE email_key = ?", (key,)
            ).fetchone()
            if row is not None and any(
                moment is not None and _epoch(moment) >= issued_at for moment in row
            ):
                return False
            forget_erasure(self.db, key)  # confirming is a new consent
            chosen = choices or Choices(name="", lang=None, format="html")
            if row is None:
                self.db.execute(
                    "INSERT INTO subscribers (email, email_key, name, lang, format, status, source,"
                    " created_at, updated_at, confirmed_at)"
                    " VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?, ?)",
                    (address, key, chosen.name, chosen.lang, chosen.format, source, stamp, stamp,
                     stamp),
                )  # fmt: skip
                return True
            self.db.execute(
                "UPDATE subscribers SET status = 'active', updated_at = ?, confirmed_at = ?,"
                " unsubscribed_at = NULL, bounce_score = 0 WHERE email_key = ?",
                (stamp, stamp, key),
            )
            if choices is not None:  # a link made before links carried choices has none
                self.db.execute(
                    "UPDATE subscribers SET name = ?, lang = ?, format = ? WHERE email_key = ?",
                    (choices.name, choices.lang, choices.format, key),
                )
        return True


def _epoch(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp).timestamp()
