"""The tables of the admin dashboard, as one migration of the store (store.py runs it after the
others): admin accounts, their sessions and failed logins, the audit log of what admins did; the
history of each reader's status; the digests of erased addresses; and the index of the send logs
that answers "did this reader get that issue?" without reading every log.

Written in SQLite's SQL, like every migration (postgres.py translates the types). Times that are
compared arithmetically (sessions, failed logins) are epoch seconds; the rest ISO 8601 text.
"""

from __future__ import annotations

ADMIN_MIGRATION = """
CREATE TABLE admin_accounts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    password_changed_at TEXT NOT NULL
);
CREATE TABLE admin_sessions (
    id INTEGER PRIMARY KEY,
    token_digest TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    created_at REAL NOT NULL,
    seen_at REAL NOT NULL,
    client TEXT NOT NULL DEFAULT ''
);
CREATE INDEX admin_sessions_by_account ON admin_sessions (account);
CREATE TABLE admin_login_failures (
    id INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    failed_at REAL NOT NULL
);
CREATE INDEX admin_login_failures_by_subject ON admin_login_failures (subject, failed_at);
CREATE TABLE admin_audit (
    id INTEGER PRIMARY KEY,
    done_at TEXT NOT NULL,
    account TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    client TEXT NOT NULL DEFAULT ''
);
CREATE TABLE status_changes (
    id INTEGER PRIMARY KEY,
    email_key TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    old_status TEXT,
    new_status TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT ''
);
CREATE INDEX status_changes_by_address ON status_changes (email_key, id);
CREATE INDEX status_changes_by_time ON status_changes (changed_at);
INSERT INTO status_changes (email_key, changed_at, old_status, new_status, source)
    SELECT email_key, created_at, NULL,
        CASE WHEN status = 'pending' THEN 'pending'
             WHEN status = 'unsubscribed' AND unsubscribed_at = created_at THEN 'unsubscribed'
             ELSE 'active' END,
        source
    FROM subscribers ORDER BY id;
INSERT INTO status_changes (email_key, changed_at, old_status, new_status, source)
    SELECT email_key, coalesce(unsubscribed_at, updated_at), 'active', status, ''
    FROM subscribers
    WHERE status = 'bounced' OR (status = 'unsubscribed' AND unsubscribed_at != created_at)
    ORDER BY id;
CREATE TABLE erased_addresses (
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    erased_at TEXT NOT NULL
);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY,
    issue TEXT NOT NULL,
    email_key TEXT NOT NULL,
    event TEXT NOT NULL,
    edition TEXT NOT NULL DEFAULT '',
    event_at TEXT NOT NULL,
    code INTEGER,
    reply TEXT NOT NULL DEFAULT '',
    UNIQUE (issue, email_key)
);
CREATE INDEX deliveries_by_address ON deliveries (email_key);
CREATE TABLE delivery_logs (
    id INTEGER PRIMARY KEY,
    issue TEXT NOT NULL UNIQUE,
    read_to INTEGER NOT NULL,
    head TEXT NOT NULL,
    total INTEGER NOT NULL DEFAULT 0,
    last_event_at TEXT NOT NULL DEFAULT ''
)
"""

# For `store copy`, after the tables of the list itself.
ADMIN_TABLES = (
    "admin_accounts", "admin_sessions", "admin_login_failures", "admin_audit", "status_changes",
    "erased_addresses", "deliveries", "delivery_logs",
)  # fmt: skip
