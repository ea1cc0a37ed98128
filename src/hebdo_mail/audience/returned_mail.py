"""Returned mail read: is a message a bounce, a complaint, an auto-reply or neither; for a bounce,
every recipient that failed, each with its reason (failures.py), status code and the server's
words. Pure: bytes in, a verdict out; nothing is stored or moved here.

A report is read as RFC 3464 fields wherever they are (dsn.py), else as the text mail systems
write (report_text.py); JSON notices of sending providers are read in notices.py. Auto-replies,
challenges, read receipts and delivery notices are recognised and set aside, never counted.
"""

from __future__ import annotations

import datetime as dt
import email
import re
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses
from functools import lru_cache

from . import dsn, mail_parts, mail_systems, notices
from .failures import Failure, Said, failure_of
from .report_text import ADDRESS, failed_recipients
from .tokens import TOKEN_PATTERN as TOKEN

FAILURE_WORDS = re.compile(
    r"could not be delivered|couldn't be delivered|undeliverable|permanent(ly)? (error|fatal)|"
    r"failed permanently|delivery (has )?failed|not (be )?delivered|unable to deliver|"
    r"did not reach|rejected|user unknown|unknown user|no such (user|mailbox|address)|"
    r"does not exist|may not exist|not found|not a member|mailbox (is )?full|quota|refused|"
    r"does not like recipient|n'existe pas|unzustellbar|nicht zugestellt|"
    r"не может быть доставлено|送信できませんでした|届きませんでした|宛先不明",
    re.I,
)
AUTO_SUBJECT = re.compile(
    r"out of (the )?office|automatic reply|auto[- ]?reply|auto[- ]?response|autoreply|vacation|"
    r"absence|absent|réponse automatique|automatische antwort|abwesenheit|respuesta automática|"
    r"fuera de la oficina|risposta automatica|fuori sede|automatisch antwoord|congés|en congé",
    re.I,
)
CHALLENGE = re.compile(
    r"verify (that )?you are (a )?(human|real)|confirm (that )?you are not a (robot|spammer)|"
    r"challenge[- ]response|approved senders?|whitelist|allow ?list|approve your message|"
    r"sender verification|prove (that )?you are|pas un robot|liste blanche|mailinblack|"
    r"boxtrapper|spam ?arrest|confirm(er)? (your|votre) (message|envoi)|"
    r"verify your (e-?mail )?address|reply to this message without changing the subject",
    re.I,
)
BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (status notification|failure|has failed|problem|delayed|incomplete|"
    r"notification)|returned mail|mail delivery failed|failure notice|non remis|non-remise|"
    r"not delivered|warning: message .* delayed|could not be delivered|unzustellbar|"
    r"nicht zugestellt|no entregado|non recapitato|onbestelbaar|mail system error|"
    r"delivery report|nondeliverable|failed delivery|returned to sender|rejected|"
    r"エラー|不達|配信できません|送信できません",
    re.I,
)
DELIVERED = ("delivered", "relayed", "expanded")
SENDER_FIELDS = re.compile(
    r"^(?:from|return-path|sender|reply-to|errors-to):[ \t]*(.+)$", re.M | re.I
)


@dataclass(frozen=True)
class Returned:
    """What a returned message says of the issue it returns: whose copy it was."""

    verp: str | None  # the VERP token of the address the report came back to
    original_to: str | None  # the To of the returned message, when it is included
    tokens: tuple[str, ...]  # unsubscribe tokens found in the returned message
    message_id: str | None  # the returned message's Message-ID
    day: dt.date | None  # when the report was written


@dataclass(frozen=True)
class Bounce:
    failures: tuple[Failure, ...]
    returned: Returned


@dataclass(frozen=True)
class Complaint:
    """A reader reported the issue as spam (an ARF report, RFC 5965, or a provider's notice)."""

    recipient: str | None
    feedback_type: str
    returned: Returned


@dataclass(frozen=True)
class Ignored:
    why: str


@dataclass(frozen=True)
class Unreadable:
    why: str


Verdict = Bounce | Complaint | Ignored | Unreadable


def analyse(raw: bytes, verp_prefix: str) -> Verdict:
    try:
        return _analyse(raw, verp_prefix)
    except Exception as exc:
        # The email package raises assorted errors (IndexError, HeaderParseError, …) on broken
        # headers, and returned mail is often broken: one such message must not stop the rest.
        return Unreadable(f"cannot be parsed ({type(exc).__name__})")


def _analyse(raw: bytes, verp_prefix: str) -> Verdict:
    if b"\n" not in raw[:4000] and b"\r" in raw:  # old Mac line ends
        raw = raw.replace(b"\r", b"\n")
    if raw.lstrip()[:1] in (b"{", b"["):
        return notices.read(raw.decode("utf-8", "replace"), _empty())
    message = email.message_from_bytes(raw)
    parts = [(part, part.get_content_type()) for part in message.walk()]
    if message.get_content_maintype() == "multipart" and len(parts) == 1:
        # The boundary the header announces is not the one used: read the body as plain text.
        body = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[-1]
        parts = [(email.message_from_bytes(b"Content-Type: text/plain\n\n" + body), "text/plain")]
    report_text, original_text, status_text = mail_parts.texts(parts)
    returned = _returned(message, parts, original_text, verp_prefix)

    report_type = str(message.get_param("report-type") or "").lower()
    if report_type == "feedback-report" or any(t == "message/feedback-report" for _, t in parts):
        return _complaint(parts, returned)
    if report_type == "disposition-notification" and not _deleted_unread(parts):
        return Ignored("a read receipt")
    if notices.looks_like_json(report_text):
        return notices.read(report_text, returned)

    subject = mail_parts.decoded(message.get("Subject"))
    sender = mail_parts.decoded(message.get("From")).lower()
    from_mail_system = any(w in sender for w in ("mailer-daemon", "postmaster", "mail delivery"))
    bounce_subject = bool(BOUNCE_SUBJECT.search(subject))
    records = dsn.read_fields(status_text.splitlines()) if status_text else []
    if not records:
        records = dsn.read_fields(report_text.splitlines())
    failed = [r for r in records if r.action not in DELIVERED and not r.status.startswith("2.")]
    if records and not failed:
        return Ignored(f"a delivery report ({records[0].action or 'delivered'}), not a failure")
    if not failed and not from_mail_system and not bounce_subject:
        flat = " ".join(report_text[:4000].split())
        if message.get("X-Challenge") or CHALLENGE.search(subject + " " + flat):
            return Ignored("a challenge asking to prove a person sent the issue")
        if _auto_reply(message, subject):
            return Ignored("an automatic reply (absence, vacation)")

    not_readers = _not_readers(message, returned, original_text)
    by_text = failed_recipients(report_text, not_readers)
    system = mail_systems.system_of(message, report_text)
    failures = [_from_record(r, by_text, report_text, system, len(failed) == 1) for r in failed]
    if not failures:
        speaks_smtp = dsn.STATUS_CODE.search(report_text) or dsn.SMTP_REPLY.search(report_text)
        if not (from_mail_system or bounce_subject or speaks_smtp):
            # Wording alone ("n'existe pas") from a person is not a bounce: a reader may write it.
            return Unreadable("no delivery failure found in it")
        failed_header = message.get("X-Failed-Recipients")
        if not (speaks_smtp or FAILURE_WORDS.search(report_text) or by_text or failed_header):
            return Unreadable("no delivery failure found in it")
        failures = _from_text(message, by_text, report_text, returned, system)
    return Bounce(tuple(failures), returned)


def _from_record(
    record: dsn.Recipient,
    by_text: dict[str, str],
    report_text: str,
    system: mail_systems.Table | None,
    alone: bool,
) -> Failure:
    diagnostic = record.diagnostic
    written = by_text.get(record.address.lower(), "")
    if not diagnostic or (written and not dsn.find_status(diagnostic) and dsn.find_status(written)):
        diagnostic = written or diagnostic or _error_lines(report_text)
    fields = "\n".join(f"{name}: {value}" for name, value in record.extra.items())
    said = Said(
        record.address, diagnostic, record.status, record.action == "delayed",
        record.diagnostic_type, "\n".join((written, _error_lines(report_text), fields)),
        record.remote_mta,
    )  # fmt: skip
    return failure_of(said, report_text, system, alone)


def _from_text(
    message: Message,
    by_text: dict[str, str],
    report_text: str,
    returned: Returned,
    system: mail_systems.Table | None,
) -> list[Failure]:
    named = getaddresses(
        [mail_parts.decoded(v) for v in message.get_all("X-Failed-Recipients", [])]
    )
    listed = [address for _, address in named if "@" in address]
    if listed:
        written = {a: by_text.get(a.lower()) or _error_lines(report_text) for a in listed}
    elif by_text:
        written = {a: d or _error_lines(report_text) for a, d in by_text.items()}
    else:
        written = {returned.original_to or "": _error_lines(report_text)}
    coded = _error_lines(report_text, coded_only=True)
    if len(written) == 1 and coded:
        # One recipient, named apart from the server's reply (Gmail, MailMarshal): that reply.
        ((address, diagnostic),) = written.items()
        if not (dsn.find_status(diagnostic) or dsn.find_reply(diagnostic)):
            written[address] = f"{diagnostic} {coded}"
    context = _error_lines(report_text, everything=True)
    return [
        failure_of(
            Said(address, diagnostic, context=context), report_text, system, len(written) == 1
        )
        for address, diagnostic in written.items()
    ]


@lru_cache(maxsize=16)  # asked of the same report for each of its recipients
def _error_lines(text: str, *, everything: bool = False, coded_only: bool = False) -> str:
    """The lines of a report that carry a code, else (unless ``coded_only``) its first words:
    the diagnostic of last resort; with ``everything``, its first 40 lines (to look for a
    reason in)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if everything:
        return " ".join(lines[:40])
    coded = [line for line in lines if dsn.STATUS_CODE.search(line) or dsn.SMTP_REPLY.search(line)]
    return " ".join(coded[:3] if coded or coded_only else lines[:6])


def _complaint(parts: list[tuple[Message, str]], returned: Returned) -> Verdict:
    fields: dict[str, str] = {}
    for part, content_type in parts:
        if content_type == "message/feedback-report":
            for block in mail_parts.blocks(part):
                for name, value in block.items():
                    fields.setdefault(name.lower(), str(value).strip())
    recipient = mail_parts.first_address(
        fields.get("original-rcpt-to") or fields.get("removal-recipient")
    )
    return Complaint(
        recipient or returned.original_to, fields.get("feedback-type", "abuse"), returned
    )


def _returned(
    message: Message, parts: mail_parts.Parts, original_text: str, verp_prefix: str
) -> Returned:
    original = mail_parts.returned_original(parts)
    headers = mail_parts.headers_text(original)
    tokens = tuple(dict.fromkeys(TOKEN.findall(original_text + "\n" + headers)))
    original_to = mail_parts.first_address(original.get("To")) if original is not None else None
    message_id = str(original.get("Message-ID") or "").strip() if original is not None else ""
    if original_to is None and (match := re.search(r"^To:\s*(.+)$", original_text, re.M)):
        original_to = mail_parts.first_address(match.group(1))
    if not message_id and (
        match := re.search(r"^Message-ID:\s*(<[^>]+>)", original_text, re.M | re.I)
    ):
        message_id = match.group(1)
    return Returned(
        _verp_token(message, verp_prefix),
        original_to,
        tokens,
        message_id or None,
        mail_parts.day(message),
    )


def _empty() -> Returned:
    return Returned(None, None, (), None, None)


def _not_readers(message: Message, returned: Returned, original_text: str) -> set[str]:
    """Addresses a report names that are not the failed recipient: its own sender and addressee
    (the returned message's sender), and the returned message's sender."""
    found: set[str] = set()
    for header in ("From", "To", "Return-Path", "Sender", "Reply-To"):
        for _, address in getaddresses(
            [mail_parts.decoded(v) for v in message.get_all(header, [])]
        ):
            found.add(address.lower())
    head = original_text[:20000]  # the returned message's headers, and then some
    for match in SENDER_FIELDS.finditer(head):
        found.update(m.group(0).lower() for m in ADDRESS.finditer(match.group(1)))
    return found


def _deleted_unread(parts: mail_parts.Parts) -> bool:
    """Is a disposition notice a rejection: the message deleted by the mail system unread (as
    Dovecot reports a full mailbox), not a read receipt?"""
    for part, content_type in parts:
        if content_type == "message/disposition-notification":
            for block in mail_parts.blocks(part):
                disposition = " ".join(str(block.get("Disposition", "")).lower().split())
                if disposition.startswith("automatic-action") and (
                    disposition.endswith(("deleted", "denied", "failed")) or "error" in disposition
                ):
                    return True
    return False


def _auto_reply(message: Message, subject: str) -> bool:
    return bool(
        message.get("X-Autoreply") or message.get("X-Autorespond")
        or str(message.get("Precedence", "")).strip().lower() == "auto_reply"
        or str(message.get("Auto-Submitted", "no")).strip().lower() not in ("no", "")
        or AUTO_SUBJECT.search(subject)
    )  # fmt: skip


def _verp_token(message: Message, prefix: str) -> str | None:
    pattern = re.compile(rf"(?<![\w.+-]){re.escape(prefix)}\+([0-9a-f]{{16}})@", re.I)
    for header in ("X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To", "To"):
        for value in message.get_all(header) or []:
            if match := pattern.search(str(value)):
                return match.group(1).lower()
    return None
