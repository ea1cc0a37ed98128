"""The dashboard's admin accounts, on the store's database: names and Argon2id password hashes
(argon2-cffi), and the throttle on failed logins.

A password is never stored, logged or shown: only its hash, which carries its own salt and
parameters, so stronger parameters later apply at the next login. Checking a name that does not
exist costs the same as checking a wrong password, so timing does not tell which names exist.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import HebdoError
from .database import Database

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD = 10  # characters
MAX_PASSWORD = 1024  # a longer one is refused before hashing: no work for nothing
LOGIN_LIMIT = 10  # failed logins per account or per client within LOGIN_WINDOW…
LOGIN_WINDOW = 15 * 60  # …seconds, after which further attempts are refused until they age out


class AdminError(HebdoError):
    """An admin account cannot be made or changed as asked."""


@dataclass(frozen=True)
class Account:
    name: str
    created_at: str
    password_changed_at: str


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@cache
def hasher() -> PasswordHasher:
    return PasswordHasher()  # Argon2id with the RFC 9106 low-memory parameters (64 MiB, t=3)


@cache
def decoy_hash() -> str:
    """What an unknown name is checked against, so that it takes as long as a known one."""
    return hasher().hash("not a password anyone has")


def hash_password(password: str) -> str:
    check_password_rules(password)
    return hasher().hash(password)


def password_matches(stored_hash: str, password: str) -> bool:
    if len(password) > MAX_PASSWORD:
        return False
    try:
        return hasher().verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AdminError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AdminError(f"the password is too long: at most {MAX_PASSWORD} characters")
    if password != password.strip() or "\n" in password:
        raise AdminError("the password starts or ends with a space, or has a line break")


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise AdminError(
            f"{name!r} is not an admin name: up to 64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


class AdminAccounts:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, name: str, password: str) -> Account:
        check_name(name)
        digest = hash_password(password)
        stamp = now()
        with self.db.transaction():
            added = self.db.execute(
                "INSERT INTO admin_accounts (name, password_hash, created_at, password_changed_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (name, digest, stamp, stamp),
            ).rowcount
        if not added:
            raise AdminError(f"there is already an admin named {name!r}; `admin passwd {name}`")
        return Account(name, stamp, stamp)

    def set_password(self, name: str, password: str) -> None:
        """A new password; every session of the account ends (it may have been stolen)."""
        digest = hash_password(password)
        with self.db.transaction():
            changed = self.db.execute(
                "UPDATE admin_accounts SET password_hash = ?, password_changed_at = ?"
                " WHERE name = ?",
                (digest, now(), name),
            ).rowcount
            self.db.execute("DELETE FROM admin_sessions WHERE account = ?", (name,))
        if not changed:
            raise _no_such_admin(name)

    def require(self, name: str) -> None:
        """An error naming the admin unless they exist (before asking a new password)."""
        if not self.db.execute("SELECT 1 FROM admin_accounts WHERE name = ?", (name,)).fetchone():
            raise _no_such_admin(name)

    def remove(self, name: str) -> None:
        with self.db.transaction():
            removed = self.db.execute("DELETE FROM admin_accounts WHERE name = ?", (name,)).rowcount
            self.db.execute("DELETE FROM admin_sessions WHERE account = ?", (name,))
        if not removed:
            raise _no_such_admin(name)

    def all(self) -> list[Account]:
        rows = self.db.execute(
            "SELECT name, created_at, password_changed_at FROM admin_accounts ORDER BY name"
        )
        return [Account(*row) for row in rows]

    def stored_hash(self, name: str) -> str | None:
        row = self.db.execute(
            "SELECT password_hash FROM admin_accounts WHERE name = ?", (name[:64],)
        ).fetchone()
        return str(row[0]) if row else None

    def rehash(self, name: str, password: str) -> None:
        """After a successful login, when the hash's parameters are older than the current."""
        self.db.execute(
            "UPDATE admin_accounts SET password_hash = ? WHERE name = ?",
            (hasher().hash(password), name),
        )

    def check(self, name: str, password: str) -> bool:
        """Whether ``password`` is this admin's; the same work whether the name exists or not."""
        stored = self.stored_hash(name)
        if not password_matches(stored or decoy_hash(), password) or stored is None:
            return False
        if hasher().check_needs_rehash(stored):
            self.rehash(name, password)
        return True


def _no_such_admin(name: str) -> AdminError:
    return AdminError(f"there is no admin named {name!r}; `hebdo-mail admin list` shows them")


class LoginThrottle:
    """Failed logins counted per subject ("account:NAME", "client:ADDRESS") in the store, so that
    every worker and host of the web app sees them."""

    def __init__(self, db: Database, *, limit: int = LOGIN_LIMIT, window: float = LOGIN_WINDOW):
        self.db = db
        self.limit = limit
        self.window = window

    def blocked(self, subjects: Sequence[str], at: float | None = None) -> bool:
        """Whether any of these subjects failed ``limit`` times within the window."""
        since = (time.time() if at is None else at) - self.window
        for subject in subjects:
            failures = self.db.execute(
                "SELECT count(*) FROM admin_login_failures WHERE subject = ? AND failed_at > ?",
                (subject, since),
            ).fetchone()[0]
            if failures >= self.limit:
                return True
        return False

    def failed(self, subjects: Sequence[str], at: float | None = None) -> None:
        moment = time.time() if at is None else at
        with self.db.transaction():
            # Failures older than the window count for nothing: forget them.
            self.db.execute(
                "DELETE FROM admin_login_failures WHERE failed_at <= ?", (moment - self.window,)
            )
            self.db.executemany(
                "INSERT INTO admin_login_failures (subject, failed_at) VALUES (?, ?)",
                [(subject, moment) for subject in subjects],
            )

    def succeeded(self, subject: str) -> None:
        self.db.execute("DELETE FROM admin_login_failures WHERE subject = ?", (subject,))
