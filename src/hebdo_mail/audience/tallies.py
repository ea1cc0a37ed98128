"""What readers did with an issue, counted without naming them: clicks per link, and the
unsubscribes made from the issue's own links. No address, no browser, no time finer than the
day is kept: the per-issue report and the dashboard read totals, and totals are all there is.

Clicks are added by the web app (every worker process of ``serve`` adds to the same rows, so
the store, not a process, holds the count); unsubscribes are noted by the store in the same
transaction that marks the reader unsubscribed (store.py), so each is counted once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from .database import Database


@dataclass(frozen=True)
class LinkClicks:
    link: int  # the link's number in its issue (publish/links.py)
    url: str
    clicks: int


class IssueTallies:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add_clicks(self, issue_id: str, clicks: Mapping[tuple[int, str], int]) -> None:
        """Add to the counts of links (number, url) of an issue, in one transaction."""
        if not clicks:
            return
        with self.db.transaction():
            for (link, url), count in clicks.items():
                self.db.execute(
                    "INSERT INTO link_clicks (issue_id, link, url, clicks) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (issue_id, link) DO UPDATE SET"
                    " clicks = link_clicks.clicks + excluded.clicks, url = excluded.url",
                    (issue_id, link, url, count),
                )

    def clicks(self, issue_id: str) -> list[LinkClicks]:
        """The counted links of an issue, in link order."""
        rows = self.db.execute(
            "SELECT link, url, clicks FROM link_clicks WHERE issue_id = ? ORDER BY link",
            (issue_id,),
        )
        return [LinkClicks(int(link), url, int(clicks)) for link, url, clicks in rows]

    def note_unsubscribe(self, issue_id: str, source: str) -> None:
        """Within the caller's transaction: a reader left through this issue's link."""
        day = dt.datetime.now(dt.UTC).date().isoformat()
        self.db.execute(
            "INSERT INTO unsubscribe_events (issue_id, source, day) VALUES (?, ?, ?)",
            (issue_id, source, day),
        )

    def unsubscribes(self, issue_id: str) -> int:
        row = self.db.execute(
            "SELECT count(*) FROM unsubscribe_events WHERE issue_id = ?", (issue_id,)
        ).fetchone()
        return int(row[0])
