"""The words the whole program shares, defined once. Every list, ``Literal`` and check derives
from these enums; being ``StrEnum``s, their members are also the plain strings written to the
store, the send log and the JSON output. Kept free of imports so the command line loads it cheaply.
"""

from enum import StrEnum


class Status(StrEnum):
    """Where a reader stands on the list."""

    PENDING = "pending"  # asked to subscribe, not confirmed yet
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"


# Readers no send may mail, whatever the source of the recipients.
NOT_MAILABLE = frozenset({Status.UNSUBSCRIBED, Status.BOUNCED})


class Format(StrEnum):
    HTML = "html"
    TEXT = "text"


class Event(StrEnum):
    """A line of the send log about one recipient."""

    ATTEMPT = "attempt"  # written after 354, before the message content leaves
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    SKIPPED = "skipped"


# Events after which a recipient is never mailed again by the same issue.
FINAL_EVENTS = frozenset({Event.SENT, Event.FAILED, Event.SKIPPED})


class Outcome(StrEnum):
    """What became of one message in a run (``unknown``: its reply was lost after the dot)."""

    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"


class SmtpStage(StrEnum):
    """Where in the SMTP transaction a reply came."""

    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    CONTENT = "content"  # the reply to the message content, after the final dot


class BounceKind(StrEnum):
    HARD = "hard"
    SOFT = "soft"


STATUSES = tuple(Status)
FORMATS = tuple(Format)
OUTCOMES = tuple(Outcome)
# The keys of `status --json`, in order.
STATUS_KEYS = ("total", *OUTCOMES, "pending")
