"""The bounce ledger: every counted bounce of an address, its score, and the moment it becomes
``bounced``. In the spirit of Mailman: a hard bounce weighs 1 and a soft one 0.5, at most one per
address and day (the hardest), and only the last ``expire_days`` count.

Each bounce is recorded under a unique ``source`` (a hash of the returned message, or the send's
Message-ID for a refusal during a send), so processing the same mail twice counts it once.

Refusals of our side (our IP, sender or message) and complaints are kept apart, in
``sender_events``: they never weigh on a reader, but the admin must hear of them, per receiving
domain and per issue (the Message-ID of a returned issue is ``<issue-id>.<digest>@domain``).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..vocabulary import BounceKind, Status
from .addresses import address_key
from .database import Database, StoreError, now
from .erasure import erased_among
from .history import StatusHistory

if TYPE_CHECKING:
    from ..config import BounceSettings


@dataclass(frozen=True)
class BounceSummary:
    """One address with bounces: its live score, status, and last bounce."""

    email: str
    score: float
    status: str  # "-" when the list does not know the address
    last_day: str
    last_kind: str
    last_reason: str
    last_category: str  # the reason in the bounce vocabulary ("" for bounces counted before it)


@dataclass(frozen=True)
class DomainProblems:
    """Refusals of our mail by one receiving domain: how many, and what it said most often."""

    domain: str
    count: int
    categories: dict[str, int]
    common_reply: str


@dataclass(frozen=True)
class IssueCounts:
    """What came back about one issue: bounces by reason, refusals by domain, complaints."""

    bounces: dict[str, int]
    refusals: list[DomainProblems]
    complaints: int


class BounceLedger:
    def __init__(
        self, db: Database, policy: BounceSettings, history: StatusHistory | None = None
    ) -> None:
        self.db = db
        self.policy = policy
        self.history = history or StatusHistory(db)

    def record(
        self, email: str, kind: BounceKind | str, reason: str, *, source: str,
        day: dt.date | None = None, category: str = "", status: str = "", message_id: str = "",
    ) -> str:  # fmt: skip
        """Count a bounce. At the threshold a subscriber becomes ``bounced``; an address the
        store did not know (a reader of a CSV send) is recorded as bounced then.

        Returns "duplicate" when this ``source`` was counted before (or the address was erased
        at the reader's request: a send log still naming it brings nothing back), "bounced" when
        this bounce made the address bounced, else "counted"."""
        key = address_key(email)
        if erased_among(self.db, [key]):
            return "duplicate"
        today = dt.datetime.now(dt.UTC).date()
        bounce_day = min(day or today, today)
        with self.db.transaction(), self.history.watch([key], "bounces"):
            inserted = self.db.execute(
                "INSERT INTO bounce_events (email_key, email, day, kind, reason, source, created_at,"
                " category, status, message_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (source) DO NOTHING",
                (key, email, bounce_day.isoformat(), str(kind), reason[:500], source, now(),
                 str(category), status, message_id),
            ).rowcount  # fmt: skip
            if not inserted:
                return "duplicate"
            score = self.score(key, today)
            self.db.execute(
                "UPDATE subscribers SET bounce_score = ?, updated_at = ? WHERE email_key = ?",
                (score, now(), key),
            )
            if score >= self.policy.threshold:
                stamp = now()
                became_bounced = self.db.execute(
                    "INSERT INTO subscribers (email, email_key, status, source, created_at, updated_at,"
                    " bounce_score) VALUES (?, ?, 'bounced', 'bounces', ?, ?, ?)"
                    " ON CONFLICT (email_key) DO UPDATE SET status = 'bounced', updated_at = excluded.updated_at"
                    " WHERE subscribers.status IN ('active', 'pending')",
                    (email, key, stamp, stamp, score),
                ).rowcount
                if became_bounced:
                    return Status.BOUNCED
        return "counted"

    def record_sender_event(
        self, email: str, kind: str, category: str, *, source: str, status: str = "",
        reply: str = "", message_id: str = "", day: dt.date | None = None,
    ) -> bool:  # fmt: skip
        """Note a refusal of our side ("refusal") or a complaint ("complaint"); False when this
        ``source`` was noted before, or the address was erased. Never changes a reader's score."""
        if erased_among(self.db, [address_key(email)]):
            return False
        today = dt.datetime.now(dt.UTC).date()
        domain = email.rpartition("@")[2].lower()
        day_text = min(day or today, today).isoformat()
        row = (kind, address_key(email), email, domain, day_text, str(category), status,
               reply[:500], message_id, source, now())  # fmt: skip
        with self.db.transaction():
            inserted = self.db.execute(
                "INSERT INTO sender_events (kind, email_key, email, domain, day, category,"
                " status, reply, message_id, source, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source) DO NOTHING",
                row,
            ).rowcount
        return bool(inserted)

    def refusals_by_domain(self, issue_id: str | None = None) -> list[DomainProblems]:
        """Refusals of our side per receiving domain, most first (of one issue, if given)."""
        rows = self.db.execute(
            "SELECT domain, category, reply FROM sender_events WHERE kind = 'refusal'"
            + (" AND message_id LIKE ? ESCAPE '\\'" if issue_id else ""),
            (_issue_pattern(issue_id),) if issue_id else (),
        ).fetchall()
        by_domain: dict[str, list[tuple[str, str]]] = {}
        for domain, category, reply in rows:
            by_domain.setdefault(domain, []).append((category, reply))
        summaries = [
            DomainProblems(
                domain, len(items), dict(Counter(c for c, _ in items).most_common()),
                Counter(r for _, r in items).most_common(1)[0][0],
            )
            for domain, items in by_domain.items()
        ]  # fmt: skip
        return sorted(summaries, key=lambda d: (-d.count, d.domain))

    def issue_counts(self, issue_id: str, *, returned_only: bool = False) -> IssueCounts:
        """What came back about one issue (for the per-issue report). ``returned_only``: only
        the bounces that came back by mail, not the refusals a send recorded itself (the send
        log reports those as failed)."""
        pattern = _issue_pattern(issue_id)
        returned = " AND source NOT LIKE 'send %'" if returned_only else ""
        bounces = self.db.execute(
            "SELECT CASE category WHEN '' THEN kind ELSE category END, count(*) FROM bounce_events"
            f" WHERE message_id LIKE ? ESCAPE '\\'{returned} GROUP BY 1 ORDER BY 2 DESC, 1",
            (pattern,),
        ).fetchall()
        complaints = self.db.execute(
            "SELECT count(*) FROM sender_events WHERE kind = 'complaint'"
            " AND message_id LIKE ? ESCAPE '\\'",
            (pattern,),
        ).fetchone()[0]
        return IssueCounts(
            {name: n for name, n in bounces}, self.refusals_by_domain(issue_id), int(complaints)
        )

    def score(self, key: str, today: dt.date) -> float:
        since = (today - dt.timedelta(days=self.policy.expire_days - 1)).isoformat()
        rows = self.db.execute(
            "SELECT day, max(CASE kind WHEN 'hard' THEN 1.0 ELSE 0.5 END) FROM bounce_events"
            " WHERE email_key = ? AND day >= ? GROUP BY day",
            (key, since),
        )
        return float(sum(weight for _, weight in rows))

    def report(self, today: dt.date | None = None) -> list[BounceSummary]:
        """Every address with bounces, highest score first."""
        day = today or dt.datetime.now(dt.UTC).date()
        keys = [
            k for (k,) in self.db.execute("SELECT DISTINCT email_key FROM bounce_events ORDER BY 1")
        ]
        report = []
        for key in keys:
            last = self.db.execute(
                "SELECT email, day, kind, reason, category FROM bounce_events WHERE email_key = ?"
                " ORDER BY day DESC, id DESC LIMIT 1",
                (key,),
            ).fetchone()
            subscriber = self.db.execute(
                "SELECT email, status FROM subscribers WHERE email_key = ?", (key,)
            ).fetchone()
            summary = BounceSummary(
                email=subscriber[0] if subscriber else last[0],
                score=self.score(key, day),
                status=subscriber[1] if subscriber else "-",
                last_day=last[1], last_kind=last[2], last_reason=last[3], last_category=last[4],
            )  # fmt: skip
            report.append(summary)
        return sorted(report, key=lambda r: (-r.score, r.email))

    def reset(self, address: str) -> bool:
        """Forget an address's bounces; a ``bounced`` reader is active again. False when there
        was nothing to forget (no bounces, not in the list)."""
        key = address_key(address)
        with self.db.transaction(), self.history.watch([key], "bounces reset"):
            removed = self.db.execute(
                "DELETE FROM bounce_events WHERE email_key = ?", (key,)
            ).rowcount
            updated = self.db.execute(
                "UPDATE subscribers SET bounce_score = 0, updated_at = ?,"
                " status = CASE status WHEN 'bounced' THEN 'active' ELSE status END"
                " WHERE email_key = ?",
                (now(), key),
            ).rowcount
        if not removed and not updated:
            raise StoreError(f"{address} has no bounces and is not in the list")
        return bool(removed or updated)

    def forget(self, key: str) -> None:
        """Within a caller's transaction: a fresh start (an explicit add) clears old bounces."""
        self.db.execute("DELETE FROM bounce_events WHERE email_key = ?", (key,))


def _issue_pattern(issue_id: str | None) -> str:
    """The LIKE pattern of the Message-IDs of one issue's copies: ``<issue-id>.<digest>@…``."""
    escaped = (issue_id or "").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"<{escaped}.%"
