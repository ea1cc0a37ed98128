"""The audit log: who did what and when, for every admin action (logins, logouts, every change,
from the dashboard or the command line), listed on the dashboard's activity page.

Entries are only ever added. A reader is named by their address key in ``target``, so that
erasing them (erasure.py) can take their name out of past entries and leave the entries.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .database import Database


@dataclass(frozen=True)
class AuditEntry:
    done_at: str
    account: str  # the admin's name, or "cli:USER" for the command line
    action: str  # login, logout, login-refused, unsubscribe, reactivate, erase, import…
    target: str
    detail: str
    client: str


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self, account: str, action: str, *, target: str = "", detail: str = "", client: str = ""
    ) -> None:
        self.db.execute(
            "INSERT INTO admin_audit (done_at, account, action, target, detail, client)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                account[:64], action, target[:320], detail[:500], client[:64],
            ),
        )  # fmt: skip

    def latest(self, *, offset: int = 0, limit: int = 50) -> list[AuditEntry]:
        """Newest first."""
        rows = self.db.execute(
            "SELECT done_at, account, action, target, detail, client FROM admin_audit"
            " ORDER BY id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [AuditEntry(*row) for row in rows]

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM admin_audit").fetchone()[0])
