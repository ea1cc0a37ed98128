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


class BounceReason(StrEnum):
    """Why a message came back, in the words of the common open-source bounce analysers (Sisimai).

    Only the first three make an address unusable (a hard bounce); see audience/bounce_reasons.py
    for which count against the reader at all."""

    USER_UNKNOWN = "userunknown"  # no such mailbox
    HOST_UNKNOWN = "hostunknown"  # no such domain, or no mail server for it
    HAS_MOVED = "hasmoved"  # the owner left, no forwarding address
    MAILBOX_FULL = "mailboxfull"
    SUSPEND = "suspend"  # the mailbox is disabled or suspended
    FILTERED = "filtered"  # the recipient's own filter, or a mailbox not accepting mail now
    EXCEED_LIMIT = "exceedlimit"  # over the recipient's size limit
    EXPIRED = "expired"  # the relay gave up after days of trying
    NOT_ACCEPT = "notaccept"  # the receiving domain takes no mail at the moment
    NETWORK_ERROR = "networkerror"  # DNS, routing, a mail loop
    SYSTEM_ERROR = "systemerror"
    SYSTEM_FULL = "systemfull"
    MAILER_ERROR = "mailererror"  # a local delivery program failed
    ONHOLD = "onhold"  # a failure with no clue as to why
    UNDEFINED = "undefined"
    # Refusals of the sender or of the message: problems on our side.
    BLOCKED = "blocked"  # our IP address: block lists, reputation, no reverse DNS
    REJECTED = "rejected"  # our sender address
    POLICY_VIOLATION = "policyviolation"
    SPAM_DETECTED = "spamdetected"
    VIRUS_DETECTED = "virusdetected"
    CONTENT_ERROR = "contenterror"
    MESSAGE_TOO_BIG = "mesgtoobig"
    AUTH_FAILURE = "authfailure"  # SPF, DKIM, DMARC
    BAD_REPUTATION = "badreputation"
    REQUIRE_PTR = "requireptr"
    NOT_COMPLIANT_RFC = "notcompliantrfc"
    NO_RELAYING = "norelaying"
    SECURITY_ERROR = "securityerror"
    SPEEDING = "speeding"  # too many messages too fast
    TOO_MANY_CONN = "toomanyconn"
    SYNTAX_ERROR = "syntaxerror"
    COMPLAINT = "complaint"  # the reader reported the issue as spam (an ARF report)


STATUSES = tuple(Status)
FORMATS = tuple(Format)
OUTCOMES = tuple(Outcome)
# The keys of `status --json`, in order.
STATUS_KEYS = ("total", *OUTCOMES, "pending")
