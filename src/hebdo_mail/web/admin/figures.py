"""One issue's figures for the dashboard, with the field names of ``hebdo-mail report --json``.

Stop-gap until the report's function (``issue_report``) is available: delivery from the send log,
bounces and complaints from the bounce ledger. Unsubscribes per issue and clicks are not counted
by this version, and show as "not counted".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ...audience.store import SubscriberStore
from ...deliver.ledger import log_path
from ...deliver.sendlog import read_log, recipient_events
from ...vocabulary import Event, Outcome
from ...workspace import Workspace


@dataclass(frozen=True)
class DomainReplies:
    domain: str
    count: int
    reply: str


@dataclass(frozen=True)
class IssueFigures:
    issue: str
    total: int
    sent: int
    failed: int
    deferred: int
    unknown: int
    skipped: int
    pending: int
    failures: list[DomainReplies]
    bounced: int
    bounces: dict[str, int]
    complaints: int
    problems_on_our_side: list[DomainReplies]
    unsubscribed: int | None = None  # None: not counted by this version
    clicks_counted: bool = False
    clicks: list[tuple[str, int]] = field(default_factory=list)


def issue_figures(workspace: Workspace, store: SubscriberStore, issue_id: str) -> IssueFigures:
    path = log_path(workspace, issue_id)
    state = read_log(path)
    counts = state.counts()
    replies: dict[str, Counter[str]] = {}
    for event in recipient_events(path, warnings=[]):
        if event.event == Event.FAILED and state.status_of(event.recipient) == Outcome.FAILED:
            domain = event.recipient.rpartition("@")[2].lower()
            replies.setdefault(domain, Counter())[f"{event.code} {event.reply or ''}".strip()] += 1
    failures = sorted(
        (DomainReplies(d, sum(c.values()), c.most_common(1)[0][0]) for d, c in replies.items()),
        key=lambda group: (-group.count, group.domain),
    )
    feedback = store.bounces.issue_counts(issue_id)
    return IssueFigures(
        issue=issue_id, total=counts["total"], sent=counts[Outcome.SENT],
        failed=counts[Outcome.FAILED], deferred=counts[Outcome.DEFERRED],
        unknown=counts[Outcome.UNKNOWN], skipped=counts[Outcome.SKIPPED],
        pending=counts["pending"], failures=failures, bounced=sum(feedback.bounces.values()),
        bounces=feedback.bounces, complaints=feedback.complaints,
        problems_on_our_side=[
            DomainReplies(p.domain, p.count, p.common_reply) for p in feedback.refusals
        ],
    )  # fmt: skip
