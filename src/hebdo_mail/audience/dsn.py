"""RFC 3464 delivery status notifications, read field by field wherever the fields are.

A report's ``message/delivery-status`` part holds one block about the reporting mail system and
one block per recipient; in the wild the recipient fields also come in a single block, inside a
text part, after a broken MIME boundary, or with the per-message fields repeated. So the fields
are read as a stream and a new recipient starts at each recipient field, not at a blank line.
Also here: finding RFC 3463 status codes and SMTP reply codes in free text. Pure functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# RFC 3463 class.subject.detail; the subject is one digit, which keeps version numbers
# (Exim 4.96.2) and IP addresses out.
STATUS_CODE = re.compile(r"(?<![\d.vV])([245])\.([0-7])\.(\d{1,3})(?![\d]|\.\d)")
SMTP_REPLY = re.compile(r"(?<![\d.:/#=-])([245][0-5]\d)(?=[ -]|$)", re.M)
ACTIONS = {"failed", "delayed", "delivered", "relayed", "expanded"}
ACTION_SYNONYMS = {"failure": "failed", "expired": "delayed", "deliverable": "delivered"}
RECIPIENT_FIELDS = ("final-recipient", "original-recipient", "x-actual-recipient")
FIELD_LINE = re.compile(
    r"^(final-recipient|original-recipient|x-actual-recipient|action|status|diagnostic-code|"
    r"remote-mta|reporting-mta|last-attempt-date|x-original-message-id|arrival-date|"
    r"received-from-mta|will-retry-until|x-powermta-bouncecategory)[ \t]*:[ \t]*(.*)$",
    re.I,
)


@dataclass
class Recipient:
    """One recipient's fields, as written."""

    final: str = ""
    original: str = ""
    action: str = ""
    status: str = ""
    diagnostic: str = ""
    diagnostic_type: str = ""  # smtp, x-unix, x-postfix…
    remote_mta: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return self.final or self.original


def read_fields(lines: list[str]) -> list[Recipient]:
    """The recipients of the delivery status fields among these lines (other lines are skipped,
    so a whole text part can be given)."""
    recipients: list[Recipient] = []
    current: Recipient | None = None
    last_name = ""
    pending: list[tuple[str, str]] = []  # per-recipient fields met before any recipient field
    for line in lines:
        if line[:1] in (" ", "\t") and last_name:
            if current is not None and last_name == "diagnostic-code":
                current.diagnostic += " " + line.strip()
            continue
        match = FIELD_LINE.match(line)
        if match is None:
            last_name = ""
            continue
        name, value = match.group(1).lower(), match.group(2).strip()
        last_name = name
        if name in RECIPIENT_FIELDS:
            address = _address(value)
            if not address:
                continue
            # A field already filled, or the recipient's status already given: the next one.
            filled = current is not None and (
                (name == "final-recipient" and current.final)
                or (name == "original-recipient" and current.original)
                or (name != "x-actual-recipient" and (current.action or current.status))
            )
            starts_new = current is None or bool(filled)
            if starts_new:
                current = Recipient()
                recipients.append(current)
                for early_name, early_value in pending:
                    _set(current, early_name, early_value)
                pending = []
            assert current is not None
            if name == "final-recipient":
                current.final = address
            elif name == "original-recipient":
                current.original = address
            elif not current.final:
                current.final = address
        elif current is None:
            pending.append((name, value))
        else:
            _set(current, name, value)
    return recipients


def _set(recipient: Recipient, name: str, value: str) -> None:
    if name == "action":
        word = value.lower().split(" ")[0].strip(" ;.")
        word = ACTION_SYNONYMS.get(word, word)
        if word in ACTIONS and not recipient.action:
            recipient.action = word
    elif name == "status":
        if (match := STATUS_CODE.search(value)) and not recipient.status:
            recipient.status = match.group(0)
    elif name == "diagnostic-code":
        kind, sep, text = value.partition(";")
        if sep and " " not in kind.strip():
            recipient.diagnostic_type, recipient.diagnostic = kind.strip().lower(), text.strip()
        else:
            recipient.diagnostic = value
    elif name == "remote-mta":
        recipient.remote_mta = value.partition(";")[2].strip() or value
    else:
        recipient.extra.setdefault(name, value)


def _address(value: str) -> str:
    """The address of ``rfc822; someone@example.org`` (or ``<someone@example.org>``)."""
    text = value.partition(";")[2] if ";" in value else value
    text = text.strip().strip("<>\"' ").strip()
    if "<" in text and ">" in text:
        text = text[text.index("<") + 1 : text.index(">")]
    return text if "@" in text and " " not in text else ""


def find_status(text: str) -> str:
    """The most telling RFC 3463 code in a diagnostic: the first that is not X.0.0."""
    found = [m.group(0) for m in STATUS_CODE.finditer(text[:2000])]
    specific = [code for code in found if not code.endswith(".0.0") and code != "4.4.7"]
    return (specific or found or [""])[0]


def find_reply(text: str) -> str:
    match = SMTP_REPLY.search(text[:2000])
    return match.group(1) if match else ""


# The SMTP command a server refused, as mail systems name it: Postfix "(in reply to RCPT TO
# command)", Exim "SMTP error from remote mail server after end of data", qmail's sentences,
# a Sendmail or Courier transcript ">>> DATA". Sisimai finds it the same way.
COMMAND_PHRASES = (
    re.compile(r"in reply to (?:end of )?(HELO|EHLO|MAIL|RCPT|DATA)\b", re.I),
    re.compile(
        r"[ls]mtp error (?:from remote (?:mail server|mailer) )?after (?:end of )?(\w{4})", re.I
    ),
)
COMMAND_SENTENCES = (  # qmail's, and Postfix's own
    ("CONN", " but greeting failed"), ("EHLO", " but my name was rejected"),
    ("MAIL", " but sender was rejected"), ("RCPT", " does not like recipient"),
    ("RCPT", "recipient address rejected"), ("HELO", "refused to talk to me"),
    ("DATA", " failed on data command"), ("DATA", " failed after i sent the message"),
)  # fmt: skip
TRANSCRIPT_COMMAND = re.compile(r"(?:^|\s)>>> ?(HELO|EHLO|MAIL|RCPT|DATA|QUIT)\b", re.I)
COMMANDS = ("HELO", "EHLO", "MAIL", "RCPT", "DATA", "QUIT", "CONN")
# Commands named in capitals anywhere, in the order a session sends them: the last one counts.
SESSION_ORDER = ("HELO", "EHLO", "STARTTLS", "AUTH ", "MAIL F", "RCPT", "DATA", "QUIT")


def find_command(texts: tuple[str, ...], transcript: str = "", recipient: str = "") -> str:
    """The SMTP command the refusal answered (RCPT, DATA, MAIL, EHLO, HELO, CONN), or "":
    named by a phrase in the recipient's own texts, else by the transcript of the session (the
    last command sent before the recipient's last mention), else by a command in capitals in
    those texts."""
    for text in texts:
        for pattern in COMMAND_PHRASES:
            if (match := pattern.search(text)) and match.group(1).upper() in COMMANDS:
                return match.group(1).upper()
        lowered = text.lower()
        for command, phrase in COMMAND_SENTENCES:
            if phrase in lowered:
                return command
    mentioned = transcript.lower().rfind(recipient.lower()) if recipient else -1
    sent = list(TRANSCRIPT_COMMAND.finditer(transcript))
    before = [m for m in sent if m.start() < mentioned]
    if before or sent:
        return (before or sent)[-1].group(1).upper()
    for text in texts:
        named, position = "", 0
        for token in SESSION_ORDER:
            at = text.find(token, position)
            if at >= 0:
                named, position = token[:4], at
        if named in COMMANDS:
            return named
    return ""


def prefer(field_status: str, text_status: str, reply: str) -> str:
    """The Status field or the code in the diagnostic, whichever says more (as Sisimai)."""
    if len(field_status) < 5:
        return text_status or field_status
    if len(text_status) < 5:
        return field_status
    if reply and field_status[0] != text_status[0]:
        if reply[0] == field_status[0]:
            return field_status
        if reply[0] == text_status[0]:
            return text_status
    if field_status == text_status:
        return field_status
    if ".0.0" in field_status[1:]:
        return text_status if ".0.0" not in text_status[1:] else field_status
    if ".0" in field_status[1:] and ".0" not in text_status[1:]:
        return text_status
    if ".0.0" in text_status[1:]:
        return field_status
    if field_status == "4.4.7" or field_status.startswith("5.3."):
        return text_status
    if field_status == "5.1.1":
        return field_status if ".0" in text_status[1:] else text_status
    if field_status == "5.1.3" and text_status.startswith("5.7."):
        return text_status
    return field_status
