"""Returned mail: ``hebdo-mail bounces process PATH`` reads a Maildir or an mbox of bounces, finds
whose address failed and why (returned_mail.py, the same analysis as ``bounces analyse``), and
scores it in the store (see bounce_ledger.py).

Every failed recipient of a report is counted, with its reason. Refusals of our side (our IP,
sender or message: blocked, rejected, policy) are noted for the admin per receiving domain and
never weigh on the reader. A complaint (an ARF feedback report) unsubscribes its reader at once.
The reader is found by the report's recipient, else (for a report about one recipient) by the
VERP token of the address the bounce came back to, the unsubscribe token or the To of the
returned original. Auto-replies, challenges and delivery notices are set aside, never counted.
A message that cannot be read is reported and kept where it is. Each bounce is recorded under a
hash of the message, so processing a mailbox twice changes nothing the second time.

The same command sweeps the send logs: a relay's permanent refusal of a recipient during a send
is a bounce too (the sender records it at once when a store is open; the sweep catches the
rest, such as a send to a CSV list). The logs belong to delivery, which hands them in as a
``SendRecord``, so this module does not depend on how they are kept.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..workspace import Workspace, load_secret
from .addresses import InvalidAddress, address_key, normalise_address
from .bounce_reasons import counts_against_reader
from .failures import Failure, refusal
from .maildir import mark_seen, read_messages
from .returned_mail import (
    Bounce,
    Complaint,
    Ignored,
    Returned,
    Unreadable,
    analyse,
)  # fmt: skip
from .store import Store, SubscriberStore, open_store
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


def verdict_rows(where: str, raw: bytes, verp_prefix: str) -> list[dict[str, str]]:
    """What ``bounces analyse`` prints of one message: a row per recipient found (for a bounce
    or a complaint), else one row saying why it is not a bounce. The same analysis as process."""
    result = analyse(raw, verp_prefix)
    base = {"file": where, "recipient": "", "verdict": "", "reason": "", "counts": "",
            "status": "", "diagnostic": "", "why": "", "message_id": ""}  # fmt: skip
    if isinstance(result, Bounce):
        return [
            base | {
                "recipient": f.recipient or result.returned.original_to or "",
                "verdict": str(f.kind), "reason": str(f.reason),
                "counts": "reader" if f.counts else "our side", "status": f.status,
                "diagnostic": f.diagnostic, "message_id": result.returned.message_id or "",
            }
            for f in result.failures
        ]  # fmt: skip
    if isinstance(result, Complaint):
        return [
            base | {
                "recipient": result.recipient or "", "verdict": "complaint",
                "reason": "complaint", "counts": "unsubscribes", "why": result.feedback_type,
                "message_id": result.returned.message_id or "",
            }
        ]  # fmt: skip
    verdict = "not-a-bounce" if isinstance(result, Ignored) else "unreadable"
    return [base | {"verdict": verdict, "why": result.why}]


@dataclass
class BounceReport:
    counted: int = 0
    duplicates: int = 0
    refusals: int = 0  # from the send logs
    complaints: int = 0  # readers unsubscribed because they reported the issue as spam
    became_bounced: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Refusals of our side, per receiving domain: the replies, to tell the admin what to fix.
    our_side: dict[str, list[str]] = field(default_factory=dict)

    def our_side_summary(self) -> list[tuple[str, int, str]]:
        """(domain, refusals, the most common reply), most refused first."""
        rows = [
            (domain, len(replies), Counter(replies).most_common(1)[0][0])
            for domain, replies in self.our_side.items()
        ]
        return sorted(rows, key=lambda row: (-row[1], row[0]))


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

    def find(self, recipient: str | None, returned: Returned, *, alone: bool) -> str | None:
        """The reader a report's recipient is; ``alone`` when the report names no other, so
        that what the returned copy says (VERP, token, To) is about this recipient."""
        found = self._find_known(recipient, returned, alone)
        if found is None and not self._logs_read:  # the logs are read once, and only if needed
            self._read_logs()
            found = self._find_known(recipient, returned, alone)
        return found

    def _find_known(self, recipient: str | None, returned: Returned, alone: bool) -> str | None:
        if alone and returned.verp and returned.verp in self.by_verp:
            return self.by_verp[returned.verp]
        if (found := self._known_address(recipient)) or not alone:
            return found
        for token in returned.tokens:
            if (address := self.signer.verify(token)) and (found := self._known_address(address)):
                return found
        return self._known_address(returned.original_to)

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
            elif isinstance(result, Unreadable):
                report.problems.append(f"{where}: {result.why}; left as it is")
                continue
            elif isinstance(result, Complaint):
                if not _complaint(report, store, readers, result, source, where):
                    continue
            elif not _bounce(report, store, readers, result, source, where):
                continue
            if item is not None:
                mark_seen(item)
        _sweep_refusals(sent, store, report)
    return report


def _bounce(
    report: BounceReport, store: SubscriberStore, readers: Readers, bounce: Bounce, source: str,
    where: str,
) -> bool:  # fmt: skip
    """Count every failed recipient of a report; False when one of them is no known reader."""
    handled = True
    alone = len(bounce.failures) == 1
    for failure in bounce.failures:
        address = readers.find(failure.recipient, bounce.returned, alone=alone)
        if address is None:
            named = failure.recipient or bounce.returned.original_to or "no address"
            report.problems.append(
                f"{where}: a {failure.kind} bounce ({failure.reason}) for {named}, who is not a "
                "reader of this list; left as it is"
            )
            handled = False
            continue
        # One source per recipient; a report about one keeps the message's hash alone, as
        # before reports were read recipient by recipient.
        key = f"bounce {source}" if alone else f"bounce {source} {address.lower()}"
        record(
            report, store, address, failure, key, bounce.returned.message_id, bounce.returned.day
        )
    return handled


def _complaint(
    report: BounceReport, store: SubscriberStore, readers: Readers, complaint: Complaint,
    source: str, where: str,
) -> bool:  # fmt: skip
    address = readers.find(complaint.recipient, complaint.returned, alone=True)
    if address is None:
        named = complaint.recipient or "no address"
        report.problems.append(
            f"{where}: a complaint about {named}, who is not a reader of this list; left as it is"
        )
        return False
    noted = store.bounces.record_sender_event(
        address, "complaint", complaint.feedback_type, source=f"complaint {source}",
        message_id=complaint.returned.message_id or "", day=complaint.returned.day,
    )  # fmt: skip
    if noted:
        store.mark_unsubscribed(address, source="complaint")
        report.complaints += 1
    else:
        report.duplicates += 1
    return True


def record(
    report: BounceReport | None, store: Store | SubscriberStore, address: str, failure: Failure,
    source: str, message_id: str | None, day: dt.date | None,
) -> None:  # fmt: skip
    """Count one failed recipient: in the reader's score, or, for a refusal of our side, among
    the problems the admin must fix. Also what a send records at once for a refused recipient."""
    if not counts_against_reader(failure.reason):
        noted = store.bounces.record_sender_event(
            address, "refusal", failure.reason, source=source, status=failure.status,
            reply=failure.diagnostic, message_id=message_id or "", day=day,
        )  # fmt: skip
        if report is not None:
            if noted:
                domain = address.rpartition("@")[2].lower()
                report.our_side.setdefault(domain, []).append(failure.diagnostic)
            else:
                report.duplicates += 1
        return
    outcome = store.bounces.record(
        address, failure.kind, failure.diagnostic, source=source, day=day,
        category=failure.reason, status=failure.status, message_id=message_id or "",
    )  # fmt: skip
    if report is None:
        return
    if outcome == "duplicate":
        report.duplicates += 1
    else:
        report.counted += 1
        if outcome == "bounced":
            report.became_bounced.append(address)


def _sweep_refusals(sent: SendRecord, store: SubscriberStore, report: BounceReport) -> None:
    for logged in sent.refusals():
        failure = refusal(logged.code, logged.stage, logged.reply, logged.address)
        if failure is None:
            continue
        before = report.counted
        record(
            report, store, logged.address, failure, f"send {logged.message_id}",
            logged.message_id, logged.day,
        )  # fmt: skip
        report.refusals += report.counted - before
