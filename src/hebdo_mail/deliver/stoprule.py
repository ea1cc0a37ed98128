"""The send that stops itself: a relay that starts refusing (a block list, a quota, a broken DNS
record) must not burn the whole list. The Sender shows every reply to a ``StopRule``; once the
relay's hard refusals among the last ``window`` replies pass the ``failed`` share, or its
deferrals the ``deferred`` share, the rule gives the reason and the send stops: the messages in
flight finish, nothing new starts, and the next run resumes as after any stop.

The shares are of the whole window even while fewer replies have come: the rule stops as soon as
the refusals seen already pass what a full window allows (21 refusals at 10% of 200), so a few
bad addresses early in a list never stop a send, and a relay refusing everyone is stopped after
about a tenth of a window.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

from ..vocabulary import Outcome
from .transport import Reply, without_addresses


@dataclass(frozen=True)
class StopLimits:
    window: int = 200  # replies looked at
    failed: float = 0.10  # share of hard refusals (5xx) that stops the send
    deferred: float = 0.50  # share of deferrals (4xx, connections lost before the content)


class StopRule:
    def __init__(self, limits: StopLimits) -> None:
        self.limits = limits
        self.recent: deque[tuple[Outcome, str]] = deque(maxlen=limits.window)
        self.counts: Counter[Outcome] = Counter()
        self.replies = 0  # every reply seen, for the report of when it stopped

    def note(self, reply: Reply) -> str | None:
        """Take one reply into account; returns why the send should stop, if it should."""
        outcome = reply.outcome
        if outcome == Outcome.UNKNOWN:
            return None  # no reply came: nothing said about the relay's mood
        if len(self.recent) == self.limits.window:
            self.counts[self.recent[0][0]] -= 1
        text = f"{reply.code} {reply.text}" if reply.code else reply.text
        self.recent.append((outcome, text))
        self.counts[outcome] += 1
        self.replies += 1
        for kind, share in ((Outcome.FAILED, self.limits.failed), (Outcome.DEFERRED, self.limits.deferred)):  # fmt: skip
            if self.counts[kind] > share * self.limits.window:
                return self._reason(kind, share)
        return None

    def _reason(self, kind: Outcome, share: float) -> str:
        count, seen = self.counts[kind], len(self.recent)
        texts = (without_addresses(text) for outcome, text in self.recent if outcome == kind)
        common = Counter(texts).most_common(1)
        verb = "refused" if kind == Outcome.FAILED else "deferred"
        return (
            f"the relay {verb} {count} of the last {seen} messages, {count / seen:.0%} against "
            f"the {share:.0%} allowed; most common reply: {common[0][0]}; --no-stop carries on "
            "regardless"
        )
