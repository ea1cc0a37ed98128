"""Returned mail: ``hebdo-mail bounces process PATH`` reads a Maildir or an mbox of bounces, finds
whose address failed and why, and scores it in the store (see bounce_ledger.py).

Each message is read as an RFC 3464 delivery status notification when it is one, else as the
text the common mail systems write (Postfix, Exim, Sendmail, Gmail, Outlook/Exchange, qmail).
The reader is found by the VERP token of the address the bounce came back to, else by the
report's recipient, else by the unsubscribe token or the To of the returned original.
Auto-replies and challenge messages are recognised and set aside, never counted. A message that
cannot be read is reported and kept where it is. Each bounce is recorded under a hash of the
message, so processing a mailbox twice changes nothing the second time.

The same command sweeps the send logs: a relay's permanent refusal of a recipient during a send
is a bounce too (the sender records it at once when a store is open; the sweep catches the
rest, such as a send to a CSV list). The logs belong to delivery, which hands them in as a
``SendRecord``, so this module does not depend on how they are kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..workspace import Workspace, load_secret
from .addresses import InvalidAddress, address_key, normalise_address
from .maildir import mark_seen, read_messages
from .returned_mail import Bounce, Ignored, Unreadable, analyse, refusal_kind
from .store import SubscriberStore, open_store
from .tokens import TokenSigner


@dataclass(frozen=True)
class Refusal:
    """A relay's permanent refusal of a recipient during a send, as the send log recorded it."""

    address: str
    code: int | None
    stage: str | None
    reply: str
    message_id: str | None
    day: dt.date


class SendRecord(Protocol):
    """What bounce processing needs of the send logs."""

    def addresses(self) -> Iterable[str]:
        """Every address the logs name (the readers of a send to a CSV list)."""
        ...

    def refusals(self) -> Iterable[Refusal]: ...


@dataclass
class BounceReport:
    counted: int = 0
    duplicates: int = 0
    refusals: int = 0  # from the send logs
    became_bounced: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class Readers:
    """Finds the reader a bounce is about, among the store's subscribers and, when that fails,
    every address a send log names (a send to a CSV list leaves no one in the store)."""

    def __init__(self, store: SubscriberStore, signer: TokenSigner, sent: SendRecord) -> None:
        self.sent = sent
        self.signer = signer
        self.known = {address_key(s.email): s.email for s in store.iter_subscribers()}
        self.by_verp = {signer.verp_token(a): a for a in self.known.values()}
        self._logs_read = False

    def _read_logs(self) -> None:
        self._logs_read = True
        for address in self.sent.addresses():
            if address not in self.known:
                self.known[address] = address
                self.by_verp[self.signer.verp_token(address)] = address

    def find(self, bounce: Bounce) -> str | None:
        found = self._find_known(bounce)
        if found is None and not self._logs_read:  # the logs are read once, and only if needed
            self._read_logs()
            found = self._find_known(bounce)
        return found

    def _find_known(self, bounce: Bounce) -> str | None:
        if bounce.verp and bounce.verp in self.by_verp:
            return self.by_verp[bounce.verp]
        if found := self._known_address(bounce.recipient):
            return found
        for token in bounce.tokens:
            if (address := self.signer.verify(token)) and (found := self._known_address(address)):
                return found
        return self._known_address(bounce.original_to)

    def _known_address(self, candidate: str | None) -> str | None:
        if not candidate:
            return None
        try:
            return self.known.get(address_key(normalise_address(candidate)))
        except InvalidAddress:
            return None


def process_bounces(workspace: Workspace, path: Path, sent: SendRecord) -> BounceReport:
    settings = workspace.settings
    secret, _ = load_secret(workspace.root, create=False)
    signer = TokenSigner(secret, settings.newsletter.list_identifier)
    report = BounceReport()
    with open_store(workspace) as store:
        readers = Readers(store, signer, sent)
        for source, raw, item, where in read_messages(path):
            result = analyse(raw, settings.bounces.prefix)
            if isinstance(result, Ignored):
                report.ignored.append(f"{where}: {result.why}; not counted")
                if item is not None:
                    mark_seen(item)
                continue
            if isinstance(result, Unreadable):
                report.problems.append(f"{where}: {result.why}; left as it is")
                continue
            address = readers.find(result)
            if address is None:
                named = result.recipient or result.original_to or "no address"
                report.problems.append(
                    f"{where}: a {result.kind} bounce for {named}, who is not a reader of this "
                    "list; left as it is"
                )
                continue
            _count(
                report, store, address, result.kind, result.reason, f"bounce {source}", result.day
            )
            if item is not None:
                mark_seen(item)
        _sweep_refusals(sent, store, report)
    return report


def _sweep_refusals(sent: SendRecord, store: SubscriberStore, report: BounceReport) -> None:
    for refusal in sent.refusals():
        kind = refusal_kind(refusal.code, refusal.stage, refusal.reply)
        if kind is None:
            continue
        counted = _count(
            report, store, refusal.address, kind, f"{refusal.code} {refusal.reply}",
            f"send {refusal.message_id}", refusal.day,
        )  # fmt: skip
        report.refusals += counted


def _count(
    report: BounceReport,
    store: SubscriberStore,
    address: str,
    kind: str,
    reason: str,
    source: str,
    day: dt.date | None,
) -> bool:
    """Record one bounce in the store and the report; False when it was counted before."""
    outcome = store.bounces.record(address, kind, reason, source=source, day=day)
    if outcome == "duplicate":
        report.duplicates += 1
        return False
    report.counted += 1
    if outcome == "bounced":
        report.became_bounced.append(address)
    return True
