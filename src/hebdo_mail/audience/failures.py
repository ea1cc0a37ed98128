"""One failed recipient of a returned message, from what the report says of it: its status code,
the SMTP command refused, and its reason, decided as Sisimai does: the word of the mail system
that wrote the report, then of the server that refused (mail_systems.py), then the status code
and the server's words (bounce_reasons.py). Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..vocabulary import BounceKind, BounceReason
from . import dsn, mail_systems
from .bounce_reasons import LOOSE, counts_against_reader, decide, kind_of

SOFT_WORDS = re.compile(
    r"try again later|temporar(y|ily)|has been delayed|delivery delayed|delayed \d+ hours?|"
    r"will (be )?retr(y|ied)|still trying|non-fatal|could not send message for past|"
    r"warning: message|delivery attempts will continue",
    re.I,
)
TEMPORARY = re.compile(r" temporar| persistent", re.I)
# Where a report names the server that refused: Postfix "host mx.example.org[192.0.2.1] said",
# Exim "host mx.example.org [192.0.2.1]", qmail "Connected to 192.0.2.1", "Remote host …".
REMOTE_HOST = re.compile(
    r"\bhost ([a-z0-9][a-z0-9.-]*\.[a-z]{2,})\.?\s*\[|\bremote host ([a-z0-9][a-z0-9.-]*\.[a-z]{2,})",
    re.I,
)


@dataclass(frozen=True)
class Failure:
    """One recipient of a bounce: why it failed, in the words of the vocabulary and the server."""

    recipient: str  # as the report names it; "" when it names none
    reason: BounceReason
    status: str  # the RFC 3463 code ("5.1.1"), or ""
    diagnostic: str  # what the server said
    delayed: bool = False  # a warning: the relay still tries

    @property
    def kind(self) -> BounceKind:
        code = self.status or dsn.find_reply(self.diagnostic)
        temporary = not code.startswith("5") and (
            self.delayed or code.startswith("4") or bool(TEMPORARY.search(self.diagnostic))
        )
        return kind_of(self.reason, temporary=temporary)

    @property
    def counts(self) -> bool:
        """Does it count against the reader (not a refusal of our sender, IP or message)?"""
        return counts_against_reader(self.reason)


@dataclass(frozen=True)
class Said:
    """What a report says of one recipient."""

    recipient: str  # "" when it names none
    diagnostic: str  # the server's words
    field_status: str = ""  # the Status field, if any
    delayed: bool = False  # the relay still tries
    diagnostic_type: str = ""  # smtp, x-unix…
    context: str = ""  # what else the report says of it (where the SMTP command is often named)
    remote_host: str = ""  # the server that refused, if the report names it


def failure_of(
    said: Said, report: str = "", system: mail_systems.Table | None = None, alone: bool = False
) -> Failure:
    """The failure of one recipient; ``report`` is the report's own words (a session transcript),
    ``system`` the mail system that wrote it, if known, and ``alone`` whether the report is about
    this recipient only (then all its words are about it, as the system's table reads them)."""
    diagnostic = " ".join(said.diagnostic.split())
    reply = dsn.find_reply(diagnostic)
    status = dsn.prefer(said.field_status, dsn.find_status(diagnostic), reply)
    delayed = said.delayed or (not status.startswith("5") and bool(SOFT_WORDS.search(diagnostic)))
    command = dsn.find_command((diagnostic, said.context), report, said.recipient)
    text = diagnostic.lower()
    given = None
    if system is not None:
        words = "\n".join((text, said.context, report if alone else "")).lower()
        given = system.reason(words, status, reply, command)
    if given is None or given in LOOSE:
        remote = said.remote_host or _remote_host(diagnostic + "\n" + said.context)
        host = mail_systems.host_of(remote, said.recipient)
        if host is not None and (found := host.reason(text, status, reply, command)):
            return Failure(said.recipient, found, status, diagnostic[:300], delayed)
    local_program = said.diagnostic_type.startswith("x-unix")
    reason = decide(
        status, diagnostic, command=command, delayed=delayed, local_program=local_program,
        given=given,
    )  # fmt: skip
    if reason in (BounceReason.ONHOLD, BounceReason.UNDEFINED) and said.context and not given:
        # The lines kept for this recipient say nothing telling: the rest of the report may.
        found = decide(status, said.context, command=command, delayed=delayed)
        reason = found if found not in (BounceReason.ONHOLD, BounceReason.UNDEFINED) else reason
    return Failure(said.recipient, reason, status, diagnostic[:300], delayed)


def _remote_host(text: str) -> str:
    match = REMOTE_HOST.search(text)
    return (match.group(1) or match.group(2)) if match else ""


def refusal(code: int | None, stage: str | None, reply: str, recipient: str = "") -> Failure | None:
    """A relay's permanent refusal of a recipient during a send, read as a failure; else None.
    The recipient's domain tells which receiving server's table applies.

    Only refusals of the recipient (RCPT) or of its copy (after the data) are about a reader:
    a refused MAIL FROM is about the sender and would otherwise bounce every reader at once."""
    if code is None or code < 500 or stage not in ("rcpt", "content"):
        return None
    command = "RCPT TO" if stage == "rcpt" else "end of DATA"
    return failure_of(Said(recipient, f"{code} {reply}", context=command))
