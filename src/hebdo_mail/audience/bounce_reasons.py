"""Bounce reasons: which one a failure is, from its status code and the receiving server's words,
and what each means for the reader.

The vocabulary (``vocabulary.BounceReason``) and the way a reason is decided follow Sisimai, the
open-source bounce analyser most mail operators trust: first the wording tables
(bounce_wordings.txt) in a fixed order, each checked against the RFC 3463 status code and the SMTP
command refused, then the status code alone, then the remaining wordings (a mail system's or a
receiving server's own word comes before all that: failures.py). Hard or soft follows the reason:
hard when the address itself is unusable (the mailbox or domain does not exist, the owner moved,
the domain takes no mail at all), soft otherwise. Refusals of our sender, our IP address
or our message are problems on our side: they are reported, never scored against the reader.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from importlib.resources import files

from ..vocabulary import BounceKind, BounceReason

R = BounceReason

HARD_REASONS = frozenset({R.USER_UNKNOWN, R.HOST_UNKNOWN, R.HAS_MOVED})
# The receiver refused us (our IP, sender, authentication, rate or message), not the reader.
OUR_SIDE = frozenset(
    {
        R.BLOCKED, R.REJECTED, R.POLICY_VIOLATION, R.SPAM_DETECTED, R.VIRUS_DETECTED,
        R.CONTENT_ERROR, R.MESSAGE_TOO_BIG, R.AUTH_FAILURE, R.BAD_REPUTATION, R.REQUIRE_PTR,
        R.NOT_COMPLIANT_RFC, R.NO_RELAYING, R.SECURITY_ERROR, R.SPEEDING, R.TOO_MANY_CONN,
        R.SYNTAX_ERROR,
    }
)  # fmt: skip


def kind_of(reason: BounceReason, *, temporary: bool = False) -> BounceKind:
    """Hard when the address is unusable: no such user or domain, moved, or a domain refusing
    all mail for good (``notaccept`` unless the refusal is temporary: a 4xx, "try again")."""
    if reason in HARD_REASONS or (reason == R.NOT_ACCEPT and not temporary):
        return BounceKind.HARD
    return BounceKind.SOFT


def counts_against_reader(reason: BounceReason) -> bool:
    return reason not in OUR_SIDE and reason != R.COMPLAINT


# RFC 3463 (and its updates) enhanced status codes, as Sisimai reads them.
STATUS_REASONS: dict[str, BounceReason] = {
    "4.1.6": R.HAS_MOVED, "4.1.7": R.REJECTED, "4.1.8": R.REJECTED, "4.1.9": R.SYSTEM_ERROR,
    "4.2.1": R.SUSPEND, "4.2.2": R.MAILBOX_FULL, "4.2.3": R.EXCEED_LIMIT, "4.2.4": R.FILTERED,
    "4.3.1": R.SYSTEM_FULL, "4.3.2": R.NOT_ACCEPT, "4.3.3": R.SYSTEM_ERROR,
    "4.3.5": R.SYSTEM_ERROR, "4.4.1": R.EXPIRED, "4.4.2": R.NETWORK_ERROR,
    "4.4.3": R.SYSTEM_ERROR, "4.4.4": R.NETWORK_ERROR, "4.4.5": R.SYSTEM_FULL,
    "4.4.6": R.NETWORK_ERROR, "4.4.7": R.EXPIRED, "4.4.8": R.NETWORK_ERROR,
    "4.5.3": R.SYSTEM_ERROR, "4.5.5": R.SYSTEM_ERROR, "4.6.0": R.CONTENT_ERROR,
    "4.6.2": R.CONTENT_ERROR, "4.6.5": R.CONTENT_ERROR, "4.7.1": R.BLOCKED, "4.7.2": R.BLOCKED,
    "4.7.5": R.SECURITY_ERROR, "4.7.6": R.SECURITY_ERROR, "4.7.7": R.SECURITY_ERROR,
    "4.7.12": R.SECURITY_ERROR, "4.7.15": R.SECURITY_ERROR, "4.7.16": R.MESSAGE_TOO_BIG,
    "4.7.24": R.AUTH_FAILURE, "4.7.25": R.REQUIRE_PTR, "4.7.26": R.AUTH_FAILURE,
    "5.1.0": R.USER_UNKNOWN, "5.1.1": R.USER_UNKNOWN, "5.1.2": R.HOST_UNKNOWN,
    "5.1.3": R.USER_UNKNOWN, "5.1.4": R.FILTERED, "5.1.6": R.HAS_MOVED, "5.1.7": R.REJECTED,
    "5.1.8": R.REJECTED, "5.1.9": R.SYSTEM_ERROR, "5.1.10": R.NOT_ACCEPT, "5.2.0": R.FILTERED,
    "5.2.1": R.FILTERED, "5.2.2": R.MAILBOX_FULL, "5.2.3": R.EXCEED_LIMIT, "5.2.4": R.FILTERED,
    "5.3.0": R.SYSTEM_ERROR, "5.3.1": R.SYSTEM_FULL, "5.3.2": R.NOT_ACCEPT,
    "5.3.3": R.SYSTEM_ERROR, "5.3.4": R.MESSAGE_TOO_BIG, "5.3.5": R.SYSTEM_ERROR,
    "5.4.0": R.NETWORK_ERROR, "5.4.3": R.SYSTEM_ERROR, "5.4.4": R.HOST_UNKNOWN,
    "5.5.2": R.SYNTAX_ERROR, "5.5.3": R.TOO_MANY_CONN, "5.5.4": R.SYSTEM_ERROR,
    "5.5.5": R.SYSTEM_ERROR, "5.5.6": R.SYNTAX_ERROR, "5.6.0": R.CONTENT_ERROR,
    "5.6.1": R.CONTENT_ERROR, "5.6.2": R.CONTENT_ERROR, "5.6.3": R.CONTENT_ERROR,
    "5.6.5": R.CONTENT_ERROR, "5.6.6": R.CONTENT_ERROR, "5.6.7": R.CONTENT_ERROR,
    "5.6.8": R.CONTENT_ERROR, "5.6.9": R.CONTENT_ERROR, "5.7.0": R.SECURITY_ERROR,
    "5.7.1": R.SECURITY_ERROR, "5.7.2": R.SECURITY_ERROR, "5.7.3": R.SECURITY_ERROR,
    "5.7.4": R.SECURITY_ERROR, "5.7.5": R.SECURITY_ERROR, "5.7.6": R.SECURITY_ERROR,
    "5.7.7": R.SECURITY_ERROR, "5.7.8": R.SECURITY_ERROR, "5.7.9": R.SECURITY_ERROR,
    "5.7.10": R.SECURITY_ERROR, "5.7.11": R.SECURITY_ERROR, "5.7.13": R.SUSPEND,
    "5.7.14": R.SECURITY_ERROR, "5.7.15": R.SECURITY_ERROR, "5.7.16": R.MESSAGE_TOO_BIG,
    "5.7.17": R.HAS_MOVED, "5.7.18": R.HAS_MOVED, "5.7.19": R.SECURITY_ERROR,
    "5.7.20": R.AUTH_FAILURE, "5.7.21": R.AUTH_FAILURE, "5.7.22": R.AUTH_FAILURE,
    "5.7.23": R.AUTH_FAILURE, "5.7.24": R.AUTH_FAILURE, "5.7.25": R.REQUIRE_PTR,
    "5.7.26": R.AUTH_FAILURE, "5.7.27": R.NOT_ACCEPT, "5.7.28": R.SPAM_DETECTED,
    "5.7.29": R.AUTH_FAILURE, "5.7.30": R.SECURITY_ERROR,
}  # fmt: skip

# The order the wordings are tried in: first with the status code as a check, then alone.
FIRST_ORDER = (
    R.MAILBOX_FULL, R.MESSAGE_TOO_BIG, R.EXCEED_LIMIT, R.SUSPEND, R.HAS_MOVED, R.NO_RELAYING,
    R.AUTH_FAILURE, R.USER_UNKNOWN, R.FILTERED, R.REQUIRE_PTR, R.NOT_COMPLIANT_RFC,
    R.BAD_REPUTATION, R.REJECTED, R.HOST_UNKNOWN, R.SPAM_DETECTED, R.SPEEDING, R.TOO_MANY_CONN,
    R.BLOCKED,
)  # fmt: skip
SECOND_ORDER = (
    R.MAILBOX_FULL, R.AUTH_FAILURE, R.BAD_REPUTATION, R.SPEEDING, R.SPAM_DETECTED,
    R.VIRUS_DETECTED, R.POLICY_VIOLATION, R.NO_RELAYING, R.SYSTEM_ERROR, R.NETWORK_ERROR,
    R.SUSPEND, R.CONTENT_ERROR, R.SYSTEM_FULL, R.NOT_ACCEPT, R.EXPIRED, R.SECURITY_ERROR,
    R.MAILER_ERROR,
)  # fmt: skip
LAST_ORDER = (
    R.MAILBOX_FULL, R.MESSAGE_TOO_BIG, R.EXCEED_LIMIT, R.SUSPEND, R.USER_UNKNOWN, R.FILTERED,
    R.REJECTED, R.HOST_UNKNOWN, R.SPAM_DETECTED, R.SPEEDING, R.TOO_MANY_CONN, R.BLOCKED,
    R.AUTH_FAILURE, R.SECURITY_ERROR, R.SYSTEM_ERROR, R.NETWORK_ERROR, R.EXPIRED,
    R.CONTENT_ERROR, R.HAS_MOVED, R.SYSTEM_FULL, R.NOT_ACCEPT, R.MAILER_ERROR, R.NO_RELAYING,
    R.SYNTAX_ERROR,
)  # fmt: skip
# Reasons a status code or a mail system's own table gives loosely: the wording may say better.
LOOSE = frozenset(
    {R.UNDEFINED, R.ONHOLD, R.SYSTEM_ERROR, R.SECURITY_ERROR, R.EXPIRED, R.SUSPEND,
     R.NETWORK_ERROR, R.HOST_UNKNOWN, R.USER_UNKNOWN}
)  # fmt: skip
EARLY_COMMANDS = frozenset({"CONN", "EHLO", "HELO"})


class Wording:
    """The phrases of one reason, as one regular expression (much faster than one per phrase)."""

    def __init__(self, phrases: list[str], vetoes: list[str]) -> None:
        self.pattern = _alternation(phrases)
        self.veto = _alternation(vetoes)

    def __call__(self, text: str) -> bool:
        if self.veto is not None and self.veto.search(text):
            return False
        return self.pattern is not None and self.pattern.search(text) is not None


def _alternation(phrases: list[str]) -> re.Pattern[str] | None:
    if not phrases:
        return None
    parts = (".*?".join(re.escape(piece) for piece in p.split(" … ")) for p in phrases)
    return re.compile("|".join(sorted(parts, key=len, reverse=True)), re.S)


@cache
def wordings() -> dict[BounceReason, Wording]:
    text = files(__package__).joinpath("bounce_wordings.txt").read_text(encoding="utf-8")
    phrases: dict[BounceReason, list[str]] = {}
    vetoes: dict[BounceReason, list[str]] = {}
    reason = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("# ") or line == "#":  # "#5.1.1 …" is a wording
            continue
        if line.startswith("[") and line.rstrip().endswith("]"):
            reason = R(line.strip()[1:-1])
            continue
        if reason is not None:
            target = vetoes if line.startswith("!") else phrases
            target.setdefault(reason, []).append(line.removeprefix("!"))
    return {r: Wording(phrases.get(r, []), vetoes.get(r, [])) for r in R}


@lru_cache(maxsize=2048)  # a decision asks the same of the same words several times
def says(reason: BounceReason, text: str) -> bool:
    """Does the (lower-cased) text use one of the reason's wordings?"""
    return wordings()[reason](text)


def decide(
    status: str,
    diagnostic: str,
    *,
    command: str = "",
    delayed: bool = False,
    local_program: bool = False,
    given: BounceReason | None = None,
) -> BounceReason:
    """The reason of one failed recipient: its status code, the server's words, the SMTP command
    it answered (RCPT, DATA…) when known, whether a local delivery program (not a remote server)
    failed, and a reason the reporting mail system gave itself (kept unless it is a loose one
    that the first pass finds better)."""
    if given == R.UNDEFINED:
        given = None
    if given is not None and given not in LOOSE:
        return given
    text = " ".join(diagnostic.lower().split())
    named = STATUS_REASONS.get(status)
    if not local_program:  # a local program's failure is no SMTP answer: its words decide
        for reason in FIRST_ORDER:
            if reason == given or _first_pass(reason, named, status, text, command):
                return reason
    if given is not None:
        return given
    return _fallback(named, status, text, command, delayed, local_program)


def _first_pass(
    reason: BounceReason, named: BounceReason | None, status: str, text: str, command: str
) -> bool:
    """Sisimai's per-reason checks: where the status code is trusted, and where the words."""
    if reason == R.USER_UNKNOWN:
        if named == R.USER_UNKNOWN:
            others = (
                R.NO_RELAYING,
                R.BLOCKED,
                R.MAILBOX_FULL,
                R.HAS_MOVED,
                R.REJECTED,
                R.NOT_ACCEPT,
            )
            return not any(says(other, text) for other in others)
        # Without a code saying so, "user unknown" means an unknown user only in answer to RCPT:
        # after the data, or where the report does not say when, a filter said it.
        return command == "RCPT" and says(reason, text)
    if reason == R.FILTERED:
        if named == R.SUSPEND:
            return False
        if named != R.FILTERED and command in (*EARLY_COMMANDS, "MAIL", "RCPT"):
            return False
        return says(R.FILTERED, text) or says(R.USER_UNKNOWN, text)
    if reason == R.REJECTED:
        if named == R.REJECTED:
            return True
        if command == "MAIL" or (command == "DATA" and named != R.USER_UNKNOWN):
            return says(reason, text)
        if named == R.USER_UNKNOWN and "sender" in text:  # "5.1.0 <we@…> sender rejected"
            return says(reason, text)
        return named in (None, R.ONHOLD, R.SECURITY_ERROR, R.SYSTEM_ERROR) and says(reason, text)
    if reason == R.HOST_UNKNOWN:
        if named == R.HOST_UNKNOWN:
            return not says(R.NETWORK_ERROR, text)
        return says(reason, text)
    if reason == R.MESSAGE_TOO_BIG:
        if named == R.MESSAGE_TOO_BIG:
            return True
        return named != R.EXCEED_LIMIT and status != "5.2.3" and says(reason, text)
    if reason == R.NO_RELAYING:
        return command not in EARLY_COMMANDS and says(reason, text)
    if reason == R.SPAM_DETECTED:
        if named == reason:
            return True
        return command not in (*EARLY_COMMANDS, "MAIL", "RCPT") and says(reason, text)
    if reason in (R.SUSPEND, R.HAS_MOVED, R.NOT_COMPLIANT_RFC, R.BAD_REPUTATION, R.SPEEDING):
        return says(reason, text)
    return named == reason or says(reason, text)


def _fallback(
    named: BounceReason | None,
    status: str,
    text: str,
    command: str,
    delayed: bool,
    local_program: bool,
) -> BounceReason:
    if named is not None and named not in LOOSE and not local_program:
        return named
    for reason in SECOND_ORDER:
        if says(reason, text):
            return reason
    if named is not None:
        return named
    if status[:3] in ("5.6", "4.6"):
        return R.CONTENT_ERROR
    if status[:3] in ("5.7", "4.7"):
        return R.SECURITY_ERROR
    if local_program:
        return R.MAILER_ERROR
    if delayed:
        return R.EXPIRED
    if command in EARLY_COMMANDS:
        return R.BLOCKED
    for reason in LAST_ORDER:
        if says(reason, text):
            return reason
    return R.ONHOLD if text else R.UNDEFINED
