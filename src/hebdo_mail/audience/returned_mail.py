"""Returned mail read: is a message a bounce, an auto-reply or neither, whose address failed, and
why (hard or soft). Pure: bytes in, a verdict out; nothing is stored or moved here.

Each message is read as an RFC 3464 delivery status notification when it is one, else as the
text the common mail systems write (Postfix, Exim, Sendmail, Gmail, Outlook/Exchange, qmail).
Auto-replies and challenge messages are recognised and set aside, never counted.
"""

from __future__ import annotations

import datetime as dt
import email
import html
import itertools
import re
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from .tokens import TOKEN_PATTERN as TOKEN

ADDRESS = (
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.[A-Za-z]{2,}"
)
# RFC 3463 class.subject.detail; the subject is one digit, which keeps version numbers
# (Exim 4.96.2) and IP addresses out.
ENHANCED_STATUS = re.compile(r"(?<![\d.])([245])\.([0-7])\.(\d{1,3})(?![\d.]*\d)")
FAILURE_STATUS = re.compile(r"(?<![\d.])[45]\.[0-7]\.\d{1,3}(?![\d.]*\d)")
SMTP_REPLY = re.compile(r"(?<![\d.:])([45])[0-5]\d(?=[ :-])")

# Where the non-standard reports put the failed address.
RECIPIENT_PATTERNS = [
    re.compile(rf"^\s*<(?P<address>{ADDRESS})>:", re.M),  # Postfix, qmail
    re.compile(rf"address\(es\) failed:\s+<?(?P<address>{ADDRESS})>?", re.I),  # Exim
    re.compile(rf"fatal errors -----\s+<?(?P<address>{ADDRESS})>?", re.I),  # Sendmail
    re.compile(
        rf"the following[^:\n]{{0,60}}:\s+<?(?P<address>{ADDRESS})>?", re.I
    ),  # Gmail, GroupWise
    re.compile(
        rf"(wasn't|was not|couldn't be|could not be) delivered to:?\s+<?(?P<address>{ADDRESS})>?",
        re.I,
    ),
    re.compile(
        rf"message to\s+<?(?P<address>{ADDRESS})>?\s+(couldn't|could not|wasn't|was not|hasn't|has not)",
        re.I,
    ),
    re.compile(rf"recipients or groups:\s+<?(?P<address>{ADDRESS})>?", re.I),  # Outlook / Exchange
    re.compile(rf"(recipient|empfänger|destinataire)\s*:\s*<?(?P<address>{ADDRESS})>?", re.I),
    re.compile(rf"RCPT TO:\s*<(?P<address>{ADDRESS})>", re.I),  # a session transcript
    re.compile(rf"^\s*<?(?P<address>{ADDRESS})>?\s*$", re.M),  # a lone address on its line
]
# Replies that are about the reader's mailbox, not about the message.
FULL_OR_GREYLISTED = re.compile(
    r"mailbox (is )?full|over ?quota|quota exceeded|exceeded (the )?(storage|quota)|"
    r"insufficient (system )?storage|greylist|grey-list|graylist|"
    r"boîte (aux lettres )?(est )?pleine|quota dépassé|postfach (ist )?voll|speicherplatz",
    re.I,
)
HARD_WORDS = re.compile(
    r"user unknown|unknown user|no such (user|recipient|mailbox|address)|does not exist|"
    r"doesn't exist|address not found|couldn'?t be found|no mailbox here|mailbox unavailable|"
    r"recipient not found|invalid recipient|recipnotfound|unrouteable address|"
    r"host or domain name not found|domain not found|no such domain|name service error|"
    r"user not found|mailbox not found|unknown (mailbox|recipient)|account (has been )?disabled|"
    r"not listed in|doesn't have an? .{0,30}account|no longer (active|in use|valid)|"
    r"mailbox (is )?(disabled|inactive)|invalid (mailbox|address)|retry timeout exceeded|"
    r"adresse introuvable|destinataire inconnu|utilisateur inconnu|n'existe pas|"
    r"empfänger unbekannt|unbekannte? (empfänger|adresse)|existiert nicht|message expired|"
    r"could not be delivered for \d+ days",
    re.I,
)
# The boilerplate of permanent failures: it classifies, but says nothing of the reason.
PERMANENT_WORDS = re.compile(
    r"permanent(ly)? (error|failure|fatal)|failed permanently|permanent delivery error", re.I
)
SOFT_WORDS = re.compile(
    r"try again later|temporar(y|ily)|has been delayed|delivery delayed|delayed \d+ hours?|"
    r"will (be )?retr(y|ied)|still trying|non-fatal|could not send message for past",
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
    r"undeliver|delivery (status notification|failure|has failed|problem|delayed|incomplete)|"
    r"returned mail|mail delivery failed|failure notice|non remis|non-remise|not delivered|"
    r"warning: message .* delayed|could not be delivered|unzustellbar|nicht zugestellt|"
    r"no entregado|non recapitato|onbestelbaar",
    re.I,
)
# Where a report without MIME structure starts quoting the returned message.
ORIGINAL_STARTS = re.compile(
    r"^.*(below this line is a copy of the message|this is a copy of the message|"
    r"original message (follows|headers)|----- original message -----|"
    r"returned message follows|message headers follow).*$",
    re.I | re.M,
)


@dataclass(frozen=True)
class Bounce:
    kind: str  # "hard" or "soft"
    reason: str
    recipient: str | None  # as the report names it
    verp: str | None  # the VERP token of the address the bounce came back to
    original_to: str | None  # the To of the returned message, when it is included
    tokens: tuple[str, ...]  # unsubscribe tokens found in the returned message
    day: dt.date | None  # when the report was written


@dataclass(frozen=True)
class Ignored:
    why: str


@dataclass(frozen=True)
class Unreadable:
    why: str


def classify(status: str | None, text: str) -> str | None:
    """hard, soft, or None when nothing in it names a failure.

    A full mailbox or greylisting is soft whatever its code (5.2.2 is formally permanent but
    usually passes); a policy refusal (5.7.x: blocked, spam) is soft too, since it is about the
    message or the sender rather than the reader's address. Other 5.x.x are hard, 4.x.x soft;
    without a code, the wording decides, then the SMTP reply code."""
    if FULL_OR_GREYLISTED.search(text):
        return "soft"
    codes = [m.group(0) for m in ENHANCED_STATUS.finditer(text)]
    if status and not (codes and status.endswith(".0.0")):  # X.0.0 says less than the text
        codes = [status]
    codes = [c for c in codes if not c.startswith("2")]
    if codes:
        if any(c.startswith("5") and not c.startswith("5.7.") for c in codes):
            return "hard"
        # A 5.7.x that says the address does not exist ("5.7.1 No such user") is about it.
        policy_only = all(c.startswith("5.7.") for c in codes)
        return "hard" if policy_only and HARD_WORDS.search(text) else "soft"
    if HARD_WORDS.search(text) or PERMANENT_WORDS.search(text):
        return "hard"
    if SOFT_WORDS.search(text):
        return "soft"
    replies = [m.group(1) for m in SMTP_REPLY.finditer(text)]
    if replies:
        return "hard" if "5" in replies else "soft"
    return None


def analyse(raw: bytes, verp_prefix: str) -> Bounce | Ignored | Unreadable:
    try:
        return _analyse(raw, verp_prefix)
    except Exception as exc:
        # The email package raises assorted errors (IndexError, HeaderParseError, …) on broken
        # headers, and returned mail is often broken: one such message must not stop the rest.
        return Unreadable(f"cannot be parsed ({type(exc).__name__})")


def _analyse(raw: bytes, verp_prefix: str) -> Bounce | Ignored | Unreadable:
    # The compat32 policy keeps headers as plain strings: several times faster than the
    # header registry, and it does not choke on the broken headers returned mail often has.
    message = email.message_from_bytes(raw)
    parts = [(part, part.get_content_type()) for part in message.walk()]
    verp = _verp_token(message, verp_prefix)
    report_text, original_text = _split_text(parts)
    returned = _returned_original(parts)
    tokens = tuple(TOKEN.findall(original_text + "\n" + _headers_text(returned)))
    original_to = _first_address(returned.get("To")) if returned is not None else None
    if original_to is None and (match := re.search(r"^To:\s*(.+)$", original_text, re.M)):
        original_to = _first_address(match.group(1))
    day = _day(message)

    if message.get_param("report-type") == "disposition-notification":
        return Ignored("a read receipt")
    dsn = _delivery_status(parts)
    if isinstance(dsn, Ignored):
        return dsn
    if dsn is not None:
        kind, reason, recipient = dsn
        return Bounce(kind, reason, recipient, verp, original_to, tokens, day)

    # Words wrapped over two lines ("User\n    unknown") must still match.
    flat_text = " ".join(report_text.split())
    subject = _decoded(message.get("Subject"))
    sender = _decoded(message.get("From")).lower()
    from_mail_system = "mailer-daemon" in sender or "postmaster" in sender
    if not from_mail_system and not BOUNCE_SUBJECT.search(subject):
        if message.get("X-Challenge") or CHALLENGE.search(subject + " " + flat_text[:3000]):
            return Ignored("a challenge asking to prove a person sent the issue")
        if (
            message.get("X-Autoreply") or message.get("X-Autorespond")
            or str(message.get("Precedence", "")).strip().lower() == "auto_reply"
            or str(message.get("Auto-Submitted", "no")).strip().lower() not in ("no", "")
            or AUTO_SUBJECT.search(subject)
        ):  # fmt: skip
            return Ignored("an automatic reply (absence, vacation)")
    found = classify(None, flat_text)
    speaks_smtp = ENHANCED_STATUS.search(report_text) or SMTP_REPLY.search(report_text)
    if found is None or not (from_mail_system or BOUNCE_SUBJECT.search(subject) or speaks_smtp):
        # Wording alone ("n'existe pas") from a person is not a bounce: a reader may write it.
        return Unreadable("no delivery failure found in it")
    recipient = _first_address(message.get("X-Failed-Recipients")) or next(  # Exim names it
        (m.group("address") for p in RECIPIENT_PATTERNS if (m := p.search(report_text))),
        None,
    )
    return Bounce(found, _reason(report_text), recipient, verp, original_to, tokens, day)


Parts = list[tuple[Message, str]]  # each part of a message with its content type


def _decoded(value: object) -> str:
    """A header's text, RFC 2047 encoded words decoded."""
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(str(value))))
    except (LookupError, UnicodeError, ValueError, HeaderParseError):
        return str(value)


def _verp_token(message: Message, prefix: str) -> str | None:
    pattern = re.compile(rf"(?<![\w.+-]){re.escape(prefix)}\+([0-9a-f]{{16}})@", re.I)
    for header in ("X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To", "To"):
        for value in message.get_all(header) or []:
            if match := pattern.search(str(value)):
                return match.group(1).lower()
    return None


def _delivery_status(parts: Parts) -> tuple[str, str, str | None] | Ignored | None:
    """(kind, reason, recipient) of an RFC 3464 report's first failed or delayed recipient;
    Ignored for a report that only says a message was delivered or relayed."""
    for part, content_type in parts:
        if content_type != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list) or len(blocks) < 2:
            continue
        actions = []
        for block in blocks[1:]:  # the first block is about the reporting mail system
            if not isinstance(block, Message):
                continue
            action = str(block.get("Action", "")).strip().lower()
            actions.append(action)
            if action not in ("failed", "delayed"):
                continue
            status = str(block.get("Status", "")).strip().split(" ")[0]
            diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
            diagnostic = diagnostic.partition(";")[2].strip() or diagnostic
            kind = classify(status if ENHANCED_STATUS.fullmatch(status) else None, diagnostic)
            if action == "delayed":
                kind = "soft"  # a warning: the relay is still trying
            elif kind != "soft" or status.startswith("4.4."):
                # Failed: given up, even after days of 4.4.x (no route, queue expired).
                kind = "hard"
            recipient = _field_address(block.get("Final-Recipient")) or _field_address(
                block.get("Original-Recipient")
            )
            reason = diagnostic if status in diagnostic else f"{status} {diagnostic}".strip()
            return kind, reason or action, recipient
        if actions and all(a in ("delivered", "relayed", "expanded") for a in actions):
            return Ignored(f"a delivery report ({actions[0]}), not a failure")
    return None


def _field_address(value: object) -> str | None:
    """The address of a DSN recipient field (``rfc822; someone@example.org``)."""
    if value is None:
        return None
    text = str(value)
    text = text.partition(";")[2] if ";" in text else text
    return text.strip().strip("<>") or None


def _first_address(value: object) -> str | None:
    if not value:
        return None
    addresses = getaddresses([_decoded(value)])
    return addresses[0][1] if addresses and addresses[0][1] else None


def _text_of(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    try:
        return payload.decode(part.get_content_charset() or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        return payload.decode("utf-8", "replace")


def _split_text(parts: Parts) -> tuple[str, str]:
    """(the report's own words, the returned original's text): the original's words must not
    be taken for the report's, or a reader's article on "temporary" jobs would look soft."""
    report: list[str] = []
    original: list[str] = []
    inside_original = False
    for part, content_type in parts:
        if content_type in ("message/rfc822", "text/rfc822-headers"):
            inside_original = True
        attachment = str(part.get("Content-Disposition", "")).lower().startswith("attachment")
        if part.is_multipart() or attachment or not content_type.startswith("text/"):
            continue
        content = _text_of(part)
        if content_type == "text/html":
            content = re.sub(r"(?s)<(style|script)\b.*?</\1>", " ", content)
            content = re.sub(r"<br\s*/?>|</p>|</div>|</tr>", "\n", content, flags=re.I)
            content = html.unescape(re.sub(r"<[^>]+>", " ", content))
        (original if inside_original else report).append(content)
    report_text = "\n".join(report)
    if not original and (start := ORIGINAL_STARTS.search(report_text)):
        return report_text[: start.start()], report_text[start.end() :]
    return report_text, "\n".join(original)


def _returned_original(parts: Parts) -> Message | None:
    for part, content_type in parts:
        if content_type == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        elif content_type == "text/rfc822-headers":
            return email.message_from_string(_text_of(part))
    return None


def _headers_text(message: Message | None) -> str:
    if message is None:
        return ""
    return "\n".join(f"{name}: {value}" for name, value in message.items())


def _day(message: Message) -> dt.date | None:
    try:
        when = parsedate_to_datetime(str(message.get("Date", "")))
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).date()


def _reason(text: str) -> str:
    """The first line that says what went wrong, with its indented continuation lines."""
    lines = text.splitlines()
    patterns = (
        FAILURE_STATUS,
        SMTP_REPLY,
        HARD_WORDS,
        FULL_OR_GREYLISTED,
        SOFT_WORDS,
        PERMANENT_WORDS,
    )
    for pattern in patterns:
        for number, line in enumerate(lines):
            if pattern.search(line):
                following = itertools.takewhile(
                    lambda next_line: next_line[:1] in (" ", "\t") and next_line.strip(),
                    lines[number + 1 : number + 4],
                )
                return " ".join(" ".join([line, *following]).split())[:300]
    return ""


def refusal_kind(code: int | None, stage: str | None, reply: str) -> str | None:
    """hard or soft for a relay's permanent refusal of a recipient during a send, else None.

    Only refusals of the recipient (RCPT) or of its copy (after the data) count: a refused
    MAIL FROM is about the sender and would otherwise bounce every reader at once."""
    if code is None or code < 500 or stage not in ("rcpt", "content"):
        return None
    return classify(None, f"{code} {reply}") or "hard"
