"""Who a run mails: the send log's verdict on each recipient (done, unknown, or to send) and the
store's last word, asked as late as possible (unsubscribed and bounced readers are skipped).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from ..audience.recipients import Recipient
from ..audience.store import Store
from ..vocabulary import FINAL_EVENTS, NOT_MAILABLE, Outcome, Status
from .sendlog import LogState


@dataclass
class SendOptions:
    concurrency: int = 10
    rate: float = 0.0
    attempts: int = 3
    retry_delay: float = 2.0
    limit: int | None = None
    resend_unknown: bool = False


def decide(state: LogState, recipient: Recipient, options: SendOptions) -> str:
    """ "done" (final in the log), "unknown" (left alone unless --resend-unknown) or "send"."""
    status = state.status_of(recipient.key)
    if status in FINAL_EVENTS:
        return "done"
    if status == Outcome.UNKNOWN and not options.resend_unknown:
        return "unknown"
    return "send"


def store_refusal(
    store: Store | None, recipient: Recipient, *, source_is_store: bool
) -> str | None:
    """Why the store says not to mail this recipient now, or None. Read at the last moment, so an
    unsubscribe recorded while a send runs is honoured for everyone not yet handed to the relay."""
    if store is None:
        return None
    status = store.status_of(recipient.email)
    if status is None:
        return "no longer in the list" if source_is_store else None
    if status in NOT_MAILABLE:
        return status
    if source_is_store and status != Status.ACTIVE:
        return status
    return None


class StoreWatch:
    """Answers store_refusal() for every message without a query per message in the usual case.

    While no other process has committed to the store since the run began (its change marker
    is unchanged), what was read at the start still holds: active subscribers streamed from the
    store are still active, and the unsubscribed and bounced addresses are those loaded then. From
    the first change on (an unsubscribe made while the send runs), every message asks the store.
    """

    def __init__(
        self, store: Store | None, *, source_is_store: bool, since: int | None = None
    ) -> None:
        """``since``: the change marker as of the moment the recipients were read from the store
        (a change between that moment and this one must count as a change)."""
        self.store = store
        self.source_is_store = source_is_store
        self.changed = False
        self.checked_this_turn = False
        if store is not None:
            self.version = store.change_marker() if since is None else since
            self.blocked = {} if source_is_store else store.not_mailable()

    def refusal(self, recipient: Recipient) -> str | None:
        store = self.store
        if store is None:
            return None
        if not self.changed and (self.checked_this_turn or store.change_marker() == self.version):
            self._checked()
            return None if self.source_is_store else self.blocked.get(recipient.key)
        self.changed = True
        return store_refusal(store, recipient, source_is_store=self.source_is_store)

    def _checked(self) -> None:
        """One change-marker read serves every message of the same event-loop turn (SQLite's
        takes a read lock, which showed in profiles at several thousand messages a second)."""
        if not self.checked_this_turn:
            self.checked_this_turn = True
            try:
                asyncio.get_running_loop().call_soon(self._new_turn)
            except RuntimeError:
                self.checked_this_turn = False

    def _new_turn(self) -> None:
        self.checked_this_turn = False


def count_to_send(state: LogState, recipients: Iterable[Recipient], options: SendOptions) -> int:
    """How many messages a run would send: what the confirmation question states."""
    count = sum(1 for r in recipients if decide(state, r, options) == "send")
    return min(count, options.limit) if options.limit is not None else count
