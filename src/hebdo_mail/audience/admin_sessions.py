"""Admin sessions, kept on the server (the store), so that every worker and host of the web app
knows them and a logout ends a session everywhere: a cookie stolen before the logout opens
nothing after it.

The cookie carries 32 random bytes; the table keeps only their SHA-256, so reading the store does
not hand out live sessions. A session ends after ``idle`` seconds without a request, after
``lifetime`` seconds whatever happens, at logout, and when its admin's password changes.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from .database import Database

IDLE = 30 * 60  # seconds without a request before a session ends
LIFETIME = 12 * 3600  # seconds a session lasts at most
TOUCH_EVERY = 60  # seconds: a session's last request is written at most this often


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    digest: str  # what the store keeps of the cookie; the CSRF token is tied to it
    account: str
    created_at: float
    seen_at: float


class AdminSessions:
    def __init__(self, db: Database, *, idle: float = IDLE, lifetime: float = LIFETIME) -> None:
        self.db = db
        self.idle = idle
        self.lifetime = lifetime

    def open(self, account: str, client: str, at: float | None = None) -> str:
        """A new session for ``account``; returns the cookie's value."""
        moment = time.time() if at is None else at
        token = secrets.token_urlsafe(32)
        with self.db.transaction():
            self._forget_expired(moment)
            self.db.execute(
                "INSERT INTO admin_sessions (token_digest, account, created_at, seen_at, client)"
                " VALUES (?, ?, ?, ?, ?)",
                (token_digest(token), account, moment, moment, client[:64]),
            )
        return token

    def find(self, token: str, at: float | None = None) -> Session | None:
        """The live session of a cookie, its last request moved to now; None when the cookie
        is unknown, expired or logged out."""
        if not token or len(token) > 100:
            return None
        moment = time.time() if at is None else at
        digest = token_digest(token)
        row = self.db.execute(
            "SELECT account, created_at, seen_at FROM admin_sessions WHERE token_digest = ?"
            " AND account IN (SELECT name FROM admin_accounts)",
            (digest,),
        ).fetchone()
        if row is None:
            return None
        account, created_at, seen_at = row
        if moment - seen_at > self.idle or moment - created_at > self.lifetime:
            self.close(token)
            return None
        if moment - seen_at >= TOUCH_EVERY:
            self.db.execute(
                "UPDATE admin_sessions SET seen_at = ? WHERE token_digest = ?", (moment, digest)
            )
            seen_at = moment
        return Session(digest, account, created_at, seen_at)

    def close(self, token: str) -> None:
        self.db.execute("DELETE FROM admin_sessions WHERE token_digest = ?", (token_digest(token),))

    def _forget_expired(self, moment: float) -> None:
        self.db.execute(
            "DELETE FROM admin_sessions WHERE seen_at < ? OR created_at < ?",
            (moment - self.idle, moment - self.lifetime),
        )
