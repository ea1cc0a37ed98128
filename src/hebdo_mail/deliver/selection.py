"""Who a run mails: the send log's verdict on each recipient (done, unknown, or to send) and the
store's last word, asked as late as possible (unsubscribed and bounced readers are skipped).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..audience.recipients import Recipient, RecipientSource
from ..audience.store import Store
from ..vocabulary import FINAL_EVENTS, NOT_MAILABLE, Outcome, Status
from .sendlog import LogState, RecipientStates, running_loop
from .stoprule import StopLimits

MAX_ANSWERS = 10_000  # store answers kept by StoreWatch; far more than messages in flight
NOT_IN_LIST = "no longer in the list"  # why a reader gone from the store is skipped
MARKER_AGE = 0.05  # seconds a change marker read elsewhere stands for one read now


@dataclass
class SendOptions:
    concurrency: int = 10
    rate: float = 0.0
    attempts: int = 3
    retry_delay: float = 2.0
    limit: int | None = None
    resend_unknown: bool = False
    stop: StopLimits | None = None  # the stop rule's limits; None: the run never stops itself


def decide(state: RecipientStates, key: str, options: SendOptions) -> str:
    """ "done" (final in the log), "unknown" (left alone unless --resend-unknown) or "send", for
    the recipient of that address key."""
    status = state.status_of(key)
    if status in FINAL_EVENTS:
        return "done"
    if status == Outcome.UNKNOWN and not options.resend_unknown:
        return "unknown"
    return "send"


def refusal_of(status: str | None, *, source_is_store: bool) -> str | None:
    """Why a reader of that status in the store (None: not in it) must not be mailed, or None."""
    if status is None:
        return NOT_IN_LIST if source_is_store else None
    if status in NOT_MAILABLE:
        return status
    if source_is_store and status != Status.ACTIVE:
        return status
    return None


def store_refusal(
    store: Store | None, recipient: Recipient, *, source_is_store: bool
) -> str | None:
    """Why the store says not to mail this recipient now, or None. Read at the last moment, so an
    unsubscribe recorded while a send runs is honoured for everyone not yet handed to the relay."""
    if store is None:
        return None
    return refusal_of(store.status_of(recipient.email), source_is_store=source_is_store)


class StoreWatch:
    """Answers store_refusal() for every message without a query per message in the usual case.

    While no other process has committed to the store since the run began (its change marker
    is unchanged), what was read at the start still holds: active subscribers streamed from the
    store are still active, and the unsubscribed and bounced addresses are those loaded then. From
    the first change on (an unsubscribe made while the send runs), each reader is asked about, and
    the answer kept as long as the marker does not move: the sender asks twice per message, before
    its batch's first command (for the whole batch in one query) and just before its content,
    and the second costs nothing unless the store changed in between.

    A marker read elsewhere a moment ago can stand for a fresh one (``observe``): the shared
    ledger reads one with every write, which spares the event loop a round trip to the server.
    """

    def __init__(
        self, store: Store | None, *, source_is_store: bool, since: int | None = None
    ) -> None:
        """``since``: the change marker as of the moment the recipients were read from the store
        (a change between that moment and this one must count as a change)."""
        self.store = store
        self.source_is_store = source_is_store
        self.changed = False
        self.marker_this_turn: int | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.observed: tuple[int, float] | None = None  # (marker, time.monotonic() read)
        self.answers: dict[str, tuple[int, str | None]] = {}  # key -> (marker, refusal)
        if store is not None:
            self.version = store.change_marker() if since is None else since
            self.blocked = {} if source_is_store else store.not_mailable()

    def refusal(self, recipient: Recipient) -> str | None:
        store = self.store
        if store is None:
            return None
        marker = self._marker(store)
        if not self.changed and marker == self.version:
            return None if self.source_is_store else self.blocked.get(recipient.key)
        self.changed = True
        known = self.answers.get(recipient.key)
        if known is not None and known[0] == marker:
            return known[1]
        answer = store_refusal(store, recipient, source_is_store=self.source_is_store)
        self._keep(recipient.key, marker, answer)
        return answer

    def refusals(self, recipients: Sequence[Recipient]) -> list[str | None]:
        """refusal() of each, asking the store about all those it must in one query."""
        store = self.store
        if store is None or not recipients:
            return [None] * len(recipients)
        marker = self._marker(store)
        if not self.changed and marker == self.version:
            return [self.refusal(recipient) for recipient in recipients]
        self.changed = True
        answers = {
            r.key: known[1]
            for r in recipients
            if (known := self.answers.get(r.key)) and known[0] == marker
        }
        asked = [r for r in recipients if r.key not in answers]
        statuses = store.statuses_of([r.key for r in asked]) if asked else {}
        for recipient in asked:
            status = statuses.get(recipient.key)
            answer = refusal_of(status, source_is_store=self.source_is_store)
            self._keep(recipient.key, marker, answer)
            answers[recipient.key] = answer
        return [answers[r.key] for r in recipients]

    def _keep(self, key: str, marker: int, answer: str | None) -> None:
        if len(self.answers) >= MAX_ANSWERS:  # only the messages in flight need theirs
            self.answers.clear()
        self.answers[key] = (marker, answer)

    def observe(self, marker: int) -> None:
        """A change marker just read elsewhere, in this process."""
        self.observed = (marker, time.monotonic())

    def _marker(self, store: Store) -> int:
        """One change-marker read serves every message of the same event-loop turn (SQLite's
        takes a read lock, which showed in profiles at several thousand messages a second), and
        one observed less than MARKER_AGE ago serves as well as a read."""
        if self.marker_this_turn is not None:
            return self.marker_this_turn
        observed = self.observed
        if observed is not None and time.monotonic() - observed[1] < MARKER_AGE:
            marker = observed[0]
        else:
            marker = store.change_marker()
        self.loop = running_loop(self.loop)
        if self.loop is None:  # no loop: nothing marks the end of a turn, so keep nothing
            return marker
        self.loop.call_soon(self._new_turn)
        self.marker_this_turn = marker
        return marker

    def _new_turn(self) -> None:
        self.marker_this_turn = None


def count_to_send(state: LogState, recipients: RecipientSource, options: SendOptions) -> int:
    """How many messages a run would send: what the confirmation question states, and whether
    an issue edited since a run recorded it would mail anyone. A first run sends to everyone; a
    later one asks the log about each address (not its whole row)."""
    if len(state.recipients):
        count = sum(1 for key in recipients.address_keys() if decide(state, key, options) == "send")
    else:
        count = len(recipients)
    return min(count, options.limit) if options.limit is not None else count
