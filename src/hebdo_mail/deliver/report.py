"""What an issue did, in numbers that are true: from the send log, who was mailed and what the
relays answered; from the store, the bounces that came back later, the unsubscribes made from the
issue's own links, and the clicks per link. ``issue_report`` is the one source of these figures,
for ``hebdo-mail report`` and for any page that shows them.

There is no open rate: an issue carries no tracking pixel, and mail apps and security scanners
fetch every picture of a message anyway, so "opens" would count machines, not readers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from ..audience.store import open_store
from ..errors import HebdoError
from ..publish.issue import load_issue
from ..publish.render import outgoing_links
from ..vocabulary import Event, Outcome
from ..workspace import Workspace
from .ledger import ledger_mark, readable_log
from .sendlog import read_log, recipient_events
from .transport import without_addresses


class Figures(BaseModel):
    model_config = ConfigDict(frozen=True)


class DomainReplies(Figures):
    """Messages one receiving domain refused, and what it said most often."""

    domain: str
    count: int
    reply: str


class RelayCounts(Figures):
    """What one relay of a pool took, by its last answer for each reader."""

    relay: str
    sent: int
    failed: int
    deferred: int


class LinkCount(Figures):
    url: str
    clicks: int


class IssueReport(Figures):
    issue: str
    total: int  # recipients the log knows of (the list at the last run)
    sent: int
    failed: int
    deferred: int
    unknown: int
    skipped: int
    pending: int
    failures: list[DomainReplies]  # the failed, by recipient domain, most first
    bounced: int  # bounces that came back for this issue later (bounces process)
    bounces: dict[str, int]  # the same by reason
    complaints: int
    problems_on_our_side: list[DomainReplies]  # refusals of our IP, sender or message
    unsubscribed: int  # readers who left through this issue's links
    relays: list[RelayCounts] = []  # with [[smtp.relays]]: what each relay took
    clicks_counted: bool  # [tracking] clicks is on
    clicks: list[LinkCount]  # per link of the issue, in reading order

    def to_json(self) -> str:
        return self.model_dump_json()


@dataclass(frozen=True)
class Delivered:
    """The log's half of a report: who was mailed and what the relays answered."""

    counts: dict[str, int]
    failures: list[DomainReplies]
    relays: list[RelayCounts]


# The log's half of the last reports, by ledger and issue, with the ledger's mark when it was
# read: a page showing several issues reads again only the logs that changed since (reading a
# large one takes seconds). Per process; a changed mark always means a fresh read.
_delivered: dict[tuple[str, str], tuple[Hashable, Delivered]] = {}
KEPT = 32


def issue_report(workspace: Workspace, issue_id: str) -> IssueReport:
    delivered = delivered_figures(workspace, issue_id)
    counts = delivered.counts
    bounces: dict[str, int] = {}
    problems: list[DomainReplies] = []
    complaints = unsubscribed = 0
    stored: dict[int, LinkCount] = {}
    if workspace.store_exists():
        with open_store(workspace, create=False) as store:
            feedback = store.bounces.issue_counts(issue_id, returned_only=True)
            bounces, complaints = feedback.bounces, feedback.complaints
            problems = [
                DomainReplies(domain=p.domain, count=p.count, reply=p.common_reply)
                for p in feedback.refusals
            ]
            unsubscribed = store.tallies.unsubscribes(issue_id)
            stored = {
                row.link: LinkCount(url=row.url, clicks=row.clicks)
                for row in store.tallies.clicks(issue_id)
            }
    links = {
        n: LinkCount(url=url, clicks=0) for n, url in enumerate(_links(workspace, issue_id), 1)
    }
    links.update(stored)
    return IssueReport(
        issue=issue_id, total=counts["total"], sent=counts[Outcome.SENT],
        failed=counts[Outcome.FAILED], deferred=counts[Outcome.DEFERRED],
        unknown=counts[Outcome.UNKNOWN], skipped=counts[Outcome.SKIPPED],
        pending=counts["pending"], failures=delivered.failures, bounced=sum(bounces.values()),
        bounces=bounces, complaints=complaints, problems_on_our_side=problems,
        unsubscribed=unsubscribed, relays=delivered.relays,
        clicks_counted=workspace.settings.tracking.clicks,
        clicks=[links[n] for n in sorted(links)],
    )  # fmt: skip


def delivered_figures(workspace: Workspace, issue_id: str) -> Delivered:
    """The log's half of the report, read again only if the ledger changed since last time."""
    where = (workspace.store_url or str(workspace.logs_dir), issue_id)
    mark = ledger_mark(workspace, issue_id)  # before reading: a change meanwhile reads again
    kept = _delivered.get(where)
    if kept is not None and mark is not None and kept[0] == mark:
        return kept[1]
    with readable_log(workspace, issue_id) as path:
        state = read_log(path)
        failed: dict[str, str] = {}
        carried: dict[str, tuple[str, Event]] = {}  # reader -> (relay, last outcome)
        for event in recipient_events(path, warnings=[]):
            if event.event == Event.FAILED:
                failed[event.recipient] = f"{event.code} {event.reply or ''}".strip()
            if event.relay and event.event in (Event.SENT, Event.FAILED, Event.DEFERRED):
                carried[event.recipient] = (event.relay, event.event)
    failures = _by_domain(
        (key, reply) for key, reply in failed.items() if state.status_of(key) == Outcome.FAILED
    )
    delivered = Delivered(state.counts(), failures, _by_relay(carried.values()))
    if mark is not None:
        _delivered.pop(where, None)
        _delivered[where] = (mark, delivered)
        while len(_delivered) > KEPT:
            del _delivered[next(iter(_delivered))]  # the oldest read
    return delivered


def _links(workspace: Workspace, issue_id: str) -> tuple[str, ...]:
    """The issue's links as the send numbered them (none if its folder is gone or broken)."""
    folder = workspace.issues_dir / issue_id
    if not workspace.settings.tracking.clicks or not folder.is_dir():
        return ()
    try:
        return outgoing_links(load_issue(folder, workspace), workspace, None).links
    except HebdoError:
        return ()


def _by_domain(failures: Iterable[tuple[str, str]]) -> list[DomainReplies]:
    replies: dict[str, Counter[str]] = {}
    for key, reply in failures:
        domain = key.rpartition("@")[2].lower()
        replies.setdefault(domain, Counter())[without_addresses(reply)] += 1
    groups = [
        DomainReplies(domain=domain, count=sum(c.values()), reply=c.most_common(1)[0][0])
        for domain, c in replies.items()
    ]
    return sorted(groups, key=lambda g: (-g.count, g.domain))


def _by_relay(outcomes: Iterable[tuple[str, Event]]) -> list[RelayCounts]:
    tally: dict[str, Counter[Event]] = {}
    for relay, event in outcomes:
        tally.setdefault(relay, Counter())[event] += 1
    return [
        RelayCounts(
            relay=relay, sent=c[Event.SENT], failed=c[Event.FAILED], deferred=c[Event.DEFERRED]
        )
        for relay, c in sorted(tally.items())
    ]
