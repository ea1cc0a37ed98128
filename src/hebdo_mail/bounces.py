"""Returned mail: ``hebdo-mail bounces process PATH`` reads a Maildir or an mbox of bounces, finds
whose address failed and why, and scores it in the store (see SubscriberStore.record_bounce).

Each message is read as an RFC 3464 delivery status notification when it is one, else as the
text the common mail systems write (Postfix, Exim, Sendmail, Gmail, Outlook/Exchange, qmail).
The reader is found by the VERP token of the address the bounce came back to, else by the
report's recipient fields, else by the To of the returned original. Auto-replies and
challenge messages are recognised and set aside, never counted. A message that cannot be read is
reported and kept where it is; processing a mailbox twice changes nothing the second time.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import mailbox
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path

from .addresses import InvalidAddress, address_key, normalise_address
from .config import Workspace
from .errors import HebdoError, display_path
from .mailbox import mark_seen
from .sendlog import read_log
from .subscribers import SubscriberStore
from .tokens import Signer, load_secret

ADDRESS = r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.[A-Za-z]{2,}"
ENHANCED_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
SMTP_REPLY = re.compile(r"\b([45])\d\d[ -]")

# Where the non-standard reports put the failed address.
RECIPIENT_PATTERNS = [
    re.compile(rf"^\s*<({ADDRESS})>:", re.M),  # Postfix, qmail
    re.compile(rf"address\(es\) failed:\s+<?({ADDRESS})>?", re.I),  # Exim
    re.compile(rf"permanent fatal errors -----\s+<?({ADDRESS})>?", re.I),  # Sendmail
    re.compile(rf"transient non-fatal errors -----\s+<?({ADDRESS})>?", re.I),  # Sendmail, delayed
    re.compile(rf"following recipient[^:\n]*:\s+<?({ADDRESS})>?", re.I),  # Gmail (classic)
    re.compile(rf"wasn't delivered to\s+<?({ADDRESS})>?", re.I),  # Gmail
    re.compile(rf"recipients or groups:\s+<?({ADDRESS})>?", re.I),  # Outlook / Exchange
    re.compile(rf"^\s*({ADDRESS})\s*$", re.M),  # a lone address on its line
]
HARD_WORDS = re.compile(
    r"user unknown|unknown user|no such user|does not exist|doesn't exist|address not found|"
    r"couldn'?t be found|no mailbox|mailbox unavailable|recipient not found|invalid recipient|"
    r"recipnotfound|host or domain name not found|domain not found|name service error|"
    r"permanent(ly)? (error|failure|fatal)|failed permanently|account (has been )?disabled",
    re.I,
)
SOFT_WORDS = re.compile(
    r"mailbox (is )?full|over ?quota|quota exceeded|insufficient (system )?storage|greylist|"
    r"try again later|temporar(y|ily)|has been delayed|delivery delayed|will (be )?retr(y|ied)|"
    r"non-fatal|could not send message for past",
    re.I,
)
AUTO_SUBJECT = re.compile(
    r"out of (the )?office|automatic reply|auto[- ]?reply|auto[- ]?response|vacation|absence|"
    r"absent|réponse automatique|abwesen|fuera de la oficina|congés",
    re.I,
)
CHALLENGE = re.compile(
    r"verify (that )?you are (a )?human|confirm (that )?you are not a robot|challenge[- ]response|"
    r"please (click|confirm) .{0,40}(deliver|whitelist|approved sender)|approve your message|"
    r"sender verification",
    re.I,
)
BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (status notification|failure|has failed)|returned mail|mail delivery failed|"
    r"failure notice|non remis|non-remise|not delivered|delivery problem",
    re.I,
)


@dataclass(frozen=True)
class Bounce:
    kind: str  # "hard" or "soft"
    reason: str
    recipient: str | None  # as the report names it
    verp: str | None  # the VERP token of the address the bounce came back to
    original_to: str | None  # the To of the returned message, when it is included


@dataclass(frozen=True)
class Ignored:
    why: str


@dataclass(frozen=True)
class Unreadable:
    why: str


@dataclass
class BounceReport:
    counted: int = 0
    duplicates: int = 0
    ignored: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def analyse(raw: bytes, verp_prefix: str) -> Bounce | Ignored | Unreadable:
    message: EmailMessage = email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[assignment]
    verp = _verp_token(message, verp_prefix)
    report = _delivery_status(message)
    if report is not None:
        kind, reason, recipient = report
        return Bounce(kind, reason, recipient, verp, _original_to(message))
    text = _text(message)
    subject = str(message.get("Subject", ""))
    looks_like_bounce = bool(BOUNCE_SUBJECT.search(subject)) or message.get_content_type() == "multipart/report"
    sender = str(message.get("From", "")).lower()
    if not looks_like_bounce and "mailer-daemon" not in sender and "postmaster" not in sender:
        if CHALLENGE.search(subject) or CHALLENGE.search(text[:3000]) or message.get("X-Challenge"):
            return Ignored("a challenge to prove a human sent the issue")
        if (
            message.get("X-Autoreply") or message.get("X-Autorespond")
            or str(message.get("Precedence", "")).lower() == "auto_reply"
            or str(message.get("Auto-Submitted", "no")).lower() not in ("no", "")
            or AUTO_SUBJECT.search(subject)
        ):  # fmt: skip
            return Ignored("an automatic reply (absence, vacation…)")
    kind = _classify(text)
    if kind is None:
        return Unreadable("no delivery failure found in it")
    recipient = next((m.group(1) for p in RECIPIENT_PATTERNS if (m := p.search(text))), None)
    return Bounce(kind, _reason(text), recipient, verp, _original_to(message))


def _verp_token(message: EmailMessage, prefix: str) -> str | None:
    pattern = re.compile(rf"\b{re.escape(prefix)}\+([0-9a-f]{{16}})@", re.I)
    for header in ("X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To", "To", "Return-Path"):
        for value in message.get_all(header) or []:
            if match := pattern.search(str(value)):
                return match.group(1).lower()
    return None


def _delivery_status(message: EmailMessage) -> tuple[str, str, str | None] | None:
    """(kind, reason, recipient) of an RFC 3464 report's first failed or delayed recipient."""
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        for block in blocks[1:]:  # the first block is about the reporting MTA
            action = str(block.get("Action", "")).strip().lower()
            if action not in ("failed", "delayed"):
                continue
            status = str(block.get("Status", "")).strip()
            diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
            recipient = _field_address(block.get("Final-Recipient")) or _field_address(block.get("Original-Recipient"))
            if status.startswith("5") or (action == "failed" and not status.startswith("4")):
                kind = "hard"
            else:
                kind = "soft"
            return kind, (f"{status} {diagnostic}".strip() or action), recipient
    return None


def _field_address(value: object) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text.split(";", 1)[1].strip().strip("<>") if ";" in text else text.strip().strip("<>")


def _original_to(message: EmailMessage) -> str | None:
    for part in message.walk():
        inner: object = None
        if part.get_content_type() == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
        elif part.get_content_type() == "text/rfc822-headers":
            inner = email.message_from_string(part.get_content(), policy=email.policy.default)
        if inner is not None:
            to = inner.get("To")  # type: ignore[attr-defined]
            addresses = getaddresses([str(to)]) if to else []
            if addresses and addresses[0][1]:
                return addresses[0][1]
    return None


def _text(message: EmailMessage) -> str:
    parts = []
    for part in message.walk():
        if part.get_content_type() in ("text/plain", "text/html") and not part.is_attachment():
            try:
                content = part.get_content()
            except (LookupError, UnicodeError):
                continue
            if part.get_content_type() == "text/html":
                content = re.sub(r"<[^>]+>", " ", content)
            parts.append(content)
        if part.get_content_type() == "message/rfc822":
            break  # the returned original's own words are not the report's
    return "\n".join(parts)


def _classify(text: str) -> str | None:
    """hard or soft from the enhanced status code, else the SMTP reply, else the wording."""
    codes = [m.group(1) for m in ENHANCED_STATUS.finditer(text) if m.group(1) != "2"]
    if codes:
        return "hard" if "5" in codes else "soft"
    if SOFT_WORDS.search(text) and not HARD_WORDS.search(text):
        return "soft"
    if HARD_WORDS.search(text):
        return "hard"
    replies = [m.group(1) for m in SMTP_REPLY.finditer(text)]
    if replies:
        return "hard" if "5" in replies else "soft"
    return None


def _reason(text: str) -> str:
    for line in text.splitlines():
        if ENHANCED_STATUS.search(line) or SMTP_REPLY.search(line):
            return " ".join(line.split())[:300]
    for line in text.splitlines():
        if HARD_WORDS.search(line) or SOFT_WORDS.search(line):
            return " ".join(line.split())[:300]
    return ""


def read_messages(path: Path) -> Iterator[tuple[str, bytes, Path | None]]:
    """(message id for idempotence, raw bytes, its file in a Maildir or None for an mbox)."""
    if path.is_dir():
        if not (path / "new").is_dir() and not (path / "cur").is_dir():
            raise HebdoError("is not a Maildir (no new/ or cur/ in it) nor an mbox file", path=path)
        for sub in ("new", "cur"):
            for item in sorted((path / sub).glob("*")):
                if item.is_file() and "S" not in item.name.partition(":2,")[2]:
                    raw = item.read_bytes()
                    yield hashlib.sha256(raw).hexdigest(), raw, item
        return
    if not path.is_file():
        raise HebdoError("does not exist; give a Maildir folder or an mbox file", path=path)
    box = mailbox.mbox(path, create=False)
    try:
        for key in box.iterkeys():
            raw = box.get_bytes(key)
            yield hashlib.sha256(raw).hexdigest(), raw, None
    finally:
        box.close()


def known_addresses(workspace: Workspace, store: SubscriberStore) -> dict[str, str]:
    """email_key -> address of every reader the store or a send log knows."""
    known = {address_key(s.email): s.email for s in store.iter_subscribers()}
    if workspace.logs_dir.is_dir():
        for log in workspace.logs_dir.glob("*.jsonl"):
            for key in read_log(log).recipients:
                known.setdefault(key, key)
    return known


def process_bounces(workspace: Workspace, path: Path) -> BounceReport:
    settings = workspace.settings
    secret, _ = load_secret(workspace.root, create=False)
    signer = Signer(secret, settings.newsletter.list_identifier)
    report = BounceReport()
    with SubscriberStore(workspace.store_path, bounces=settings.bounces) as store:
        known = known_addresses(workspace, store)
        by_verp = {signer.verp_token(address): address for address in known.values()}
        for source, raw, item in read_messages(path):
            where = display_path(item) if item is not None else f"{display_path(path)} ({source[:12]})"
            result = analyse(raw, settings.bounces.prefix)
            if isinstance(result, Ignored):
                report.ignored.append(f"{where}: {result.why}; not counted")
                if item is not None:
                    mark_seen(item)
                continue
            if isinstance(result, Unreadable):
                report.problems.append(f"{where}: {result.why}; left as it is")
                continue
            address = _whose(result, by_verp, known)
            if address is None:
                named = result.recipient or result.original_to or "nobody"
                report.problems.append(f"{where}: names {named}, not a reader of this list; left as it is")
                continue
            outcome = store.record_bounce(address, result.kind, result.reason, source=f"bounce {source}")
            if outcome == "counted":
                report.counted += 1
            else:
                report.duplicates += 1
            if item is not None:
                mark_seen(item)
    return report


def _whose(bounce: Bounce, by_verp: dict[str, str], known: dict[str, str]) -> str | None:
    if bounce.verp and bounce.verp in by_verp:
        return by_verp[bounce.verp]
    for candidate in (bounce.recipient, bounce.original_to):
        if not candidate:
            continue
        try:
            key = address_key(normalise_address(candidate))
        except InvalidAddress:
            continue
        if key in known:
            return known[key]
    return None
