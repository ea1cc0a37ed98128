"""The store's schema: the migrations that build it, one version at a time, and the tables
`store copy` moves. A database records the version it stands at (database.py, postgres.py)."""

from __future__ import annotations

from .admin_schema import ADMIN_MIGRATION, ADMIN_TABLES
from .database import Migration
from .rekeying import rekey_addresses

# The send ledger shared by several senders (deliver/pgledger.py): PostgreSQL only; the embedded
# store keeps its logs in files.
LEDGER_SCHEMA = """
CREATE TABLE send_runs (
    id BIGSERIAL PRIMARY KEY,
    issue_id TEXT NOT NULL,
    time TEXT NOT NULL,
    sender TEXT NOT NULL,
    total INTEGER NOT NULL,
    source TEXT NOT NULL,
    transport TEXT NOT NULL,
    digest TEXT
);
CREATE INDEX send_runs_by_issue ON send_runs (issue_id, id);
CREATE TABLE send_queue (
    issue_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    position BIGINT NOT NULL,
    email TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    lang TEXT,
    format TEXT NOT NULL DEFAULT 'html',
    attributes TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL DEFAULT 'pending',
    last_event TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT,
    lease_until TIMESTAMPTZ,
    PRIMARY KEY (issue_id, recipient)
);
CREATE INDEX send_queue_claimable ON send_queue (issue_id, state, position);
CREATE TABLE send_events (
    id BIGSERIAL PRIMARY KEY,
    issue_id TEXT NOT NULL,
    time TEXT NOT NULL,
    recipient TEXT NOT NULL,
    event TEXT NOT NULL,
    edition TEXT,
    code INTEGER,
    reply TEXT,
    message_id TEXT,
    attempt INTEGER,
    stage TEXT,
    relay TEXT
);
CREATE INDEX send_events_by_issue ON send_events (issue_id, id);
CREATE FUNCTION hebdo_queue_follows() RETURNS trigger AS $$
BEGIN
    UPDATE send_queue SET last_event = NEW.event,
        attempts = attempts + (NEW.event = 'attempt')::int,
        state = CASE NEW.event WHEN 'attempt' THEN 'attempted'
                               WHEN 'deferred' THEN 'deferred' ELSE 'done' END
    WHERE issue_id = NEW.issue_id AND recipient = NEW.recipient;
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER send_events_follow AFTER INSERT ON send_events
    FOR EACH ROW EXECUTE FUNCTION hebdo_queue_follows();
"""

# The queue follows its events a statement at a time rather than a row at a time: a sender
# writes each batch of events in one statement, and one UPDATE per batch costs far less than
# one per event. The same effect, event by event in id order: the last event, the attempts added.
LEDGER_BATCH_TRIGGER = """
CREATE FUNCTION hebdo_queue_follows_batch() RETURNS trigger AS $$
BEGIN
    UPDATE send_queue q SET last_event = e.event, attempts = q.attempts + e.attempts,
        state = CASE e.event WHEN 'attempt' THEN 'attempted'
                             WHEN 'deferred' THEN 'deferred' ELSE 'done' END
    FROM (SELECT DISTINCT ON (issue_id, recipient) issue_id, recipient, event,
                 count(*) FILTER (WHERE event = 'attempt')
                     OVER (PARTITION BY issue_id, recipient) AS attempts
          FROM written_events ORDER BY issue_id, recipient, id DESC) e
    WHERE q.issue_id = e.issue_id AND q.recipient = e.recipient;
    RETURN NULL;
END $$ LANGUAGE plpgsql;
DROP TRIGGER send_events_follow ON send_events;
DROP FUNCTION hebdo_queue_follows();
CREATE TRIGGER send_events_follow AFTER INSERT ON send_events
    REFERENCING NEW TABLE AS written_events
    FOR EACH STATEMENT EXECUTE FUNCTION hebdo_queue_follows_batch();
"""


# Each entry moves the schema one version up; the database records where a store stands.
# Written in SQLite's SQL (postgres.py translates the types); a table where the engines differ;
# a function where SQL alone cannot do it.
MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE subscribers (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL,
        email_key TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL DEFAULT '',
        lang TEXT,
        format TEXT NOT NULL DEFAULT 'html' CHECK (format IN ('html', 'text')),
        status TEXT NOT NULL DEFAULT 'active'
            CHECK (status IN ('pending', 'active', 'unsubscribed', 'bounced')),
        attributes TEXT NOT NULL DEFAULT '{}',
        source TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        unsubscribed_at TEXT,
        bounce_score REAL NOT NULL DEFAULT 0
    );
    CREATE INDEX subscribers_by_status ON subscribers (status, id);
    """,
    """
    CREATE TABLE bounce_events (
        id INTEGER PRIMARY KEY,
        email_key TEXT NOT NULL,
        email TEXT NOT NULL,
        day TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('hard', 'soft')),
        reason TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
    );
    CREATE INDEX bounce_events_by_address ON bounce_events (email_key, day);
    """,
    # The reason in the bounce vocabulary, its status code, and the returned issue's Message-ID;
    # and what receivers said about us rather than the reader (refusals of our IP, sender or
    # message, and complaints): counted for the admin, never in a reader's score.
    """
    ALTER TABLE bounce_events ADD COLUMN category TEXT NOT NULL DEFAULT '';
    ALTER TABLE bounce_events ADD COLUMN status TEXT NOT NULL DEFAULT '';
    ALTER TABLE bounce_events ADD COLUMN message_id TEXT NOT NULL DEFAULT '';
    CREATE TABLE sender_events (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('refusal', 'complaint')),
        email_key TEXT NOT NULL,
        email TEXT NOT NULL,
        domain TEXT NOT NULL,
        day TEXT NOT NULL,
        category TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT '',
        reply TEXT NOT NULL DEFAULT '',
        message_id TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
    );
    CREATE INDEX sender_events_by_message ON sender_events (message_id);
    """,
    {
        # SQLite has PRAGMA data_version; PostgreSQL gets a sequence its triggers advance.
        "postgresql": """
        CREATE SEQUENCE store_changes;
        CREATE FUNCTION hebdo_note_change() RETURNS trigger AS $$
        BEGIN PERFORM nextval('store_changes'); RETURN NULL; END $$ LANGUAGE plpgsql;
        CREATE TRIGGER subscribers_changed AFTER INSERT OR UPDATE OR DELETE ON subscribers
            FOR EACH STATEMENT EXECUTE FUNCTION hebdo_note_change();
        """
    },
    # Subscription requests (subscriptions.py): when a confirmation link was last used, and the
    # confirmations mailed to each address in the last day, which bound how often one is mailed.
    """
    ALTER TABLE subscribers ADD COLUMN confirmed_at TEXT;
    CREATE TABLE confirmation_mail (email_key TEXT NOT NULL, sent_at REAL NOT NULL);
    CREATE INDEX confirmation_mail_by_address ON confirmation_mail (email_key, sent_at);
    CREATE INDEX confirmation_mail_by_time ON confirmation_mail (sent_at);
    """,
    # Addresses compared as addresses.py now does (NFC, lower()); rows that became one merged.
    rekey_addresses,
    # What readers did with each issue, naming nobody (tallies.py).
    """
    CREATE TABLE link_clicks (
        id INTEGER PRIMARY KEY,
        issue_id TEXT NOT NULL,
        link INTEGER NOT NULL,
        url TEXT NOT NULL,
        clicks INTEGER NOT NULL DEFAULT 0,
        UNIQUE (issue_id, link)
    );
    CREATE TABLE unsubscribe_events (
        id INTEGER PRIMARY KEY,
        issue_id TEXT NOT NULL,
        source TEXT NOT NULL,
        day TEXT NOT NULL
    );
    CREATE INDEX unsubscribe_events_by_issue ON unsubscribe_events (issue_id);
    """,
    # The send ledger shared by several senders.
    {"postgresql": LEDGER_SCHEMA},
    # Admin accounts, sessions, the audit log, reader status history, erasures (web/admin).
    ADMIN_MIGRATION,
    # A reader's rows in the shared ledger: the dashboard's reader page, erasure.
    {
        "postgresql": "CREATE INDEX send_queue_by_recipient ON send_queue (recipient);\n"
        "CREATE INDEX send_events_by_recipient ON send_events (recipient);"
    },
    # The send ledger's queue follows its events a statement at a time.
    {"postgresql": LEDGER_BATCH_TRIGGER},
]
# The tables `store copy` moves, parents first.
TABLES = (
    "subscribers",
    "bounce_events",
    "sender_events",
    "link_clicks",
    "unsubscribe_events",
    *ADMIN_TABLES,
)
