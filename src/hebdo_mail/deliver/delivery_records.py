"""What the dashboard reads of the sends, whichever ledger keeps them: the issues sent and their
progress, a send running now, what one reader was sent, an issue's messages per minute and its
failures; and what erasing a reader does to those records.

Two implementations stand behind ``DeliveryRecords``, and ``ledger.delivery_records`` picks one:
the file logs (``logs/<issue>.jsonl``) read through their index in the store (delivery_index.py),
or the shared ledger's tables read with SQL (pgdeliveries.py), in the store's own database.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..vocabulary import Event

if TYPE_CHECKING:
    from ..audience.erasure import ErasedSends

# An issue's name as the dashboard takes it (a folder name; a log file's stem).
ISSUE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
RUNNING = 120  # seconds: an issue written to this recently, with readers left, is being sent
TIMED = (Event.SENT, Event.DEFERRED, Event.FAILED)  # the events the send's chart counts


@dataclass(frozen=True)
class Delivery:
    issue: str
    event: str  # the last event; "attempt" means the outcome is unknown
    edition: str
    event_at: str
    code: int | None
    reply: str


@dataclass(frozen=True)
class Progress:
    issue: str
    total: int  # readers the issue counts (every sender's, on the shared ledger)
    done: int  # sent, failed or skipped
    counts: dict[str, int]  # by last event
    last_event_at: str


class DeliveryRecords(Protocol):
    def refresh(self) -> None:
        """Bring what the other calls read up to date (it may read for a while after a large
        send: call it off the event loop)."""
        ...

    def issues(self, limit: int | None = None) -> list[Progress]:
        """The issues sent (or being sent), the latest written to first; ``limit`` at most."""
        ...

    def progress(self, issue: str) -> Progress | None:
        """The issue's counts; None if it was never sent."""
        ...

    def running(self, at: float | None = None) -> list[Progress]:
        """Issues written to in the last ``RUNNING`` seconds that still have readers left."""
        ...

    def of_reader(self, key: str) -> list[Delivery]:
        """The last event of each issue sent to one reader (by address key), newest first."""
        ...

    def per_minute(self, issue: str) -> Counter[tuple[str, str]]:
        """Messages per (minute as ``YYYY-MM-DDTHH:MM`` UTC, event), for the ``TIMED`` events."""
        ...

    def final_failures(self, issue: str) -> list[str]:
        """``CODE REPLY`` of the last refusal of each reader whose outcome is failed."""
        ...

    def forget(self, key: str) -> ErasedSends:
        """Within the caller's transaction: what these records hold about one reader goes, as far
        as they can be changed; says what was done and what is left."""
        ...


def minute_of(moment: str) -> str:
    """The minute of an event's time (``2026-11-28T10:05:31.200+00:00`` -> ``2026-11-28T10:05``)."""
    return moment[:16]
