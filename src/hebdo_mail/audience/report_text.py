"""The failed recipients of a report written as text rather than RFC 3464 fields: Postfix,
qmail, Exim, Sendmail, Gmail, Exchange, Notes, Yahoo, Mail.ru and most others write an address
on a line of its own (or after a label) followed by the server's words, or a sentence naming the
address. Read generally, not per mail system: each address of the report's own text that is not
the sender's or a mail system's, with the lines that follow it as its diagnostic. Pure.
"""

from __future__ import annotations

import re

from .dsn import SMTP_REPLY, STATUS_CODE

ADDRESS = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.[A-Za-z]{2,}"
)
# What may stand around an address on a line that only names a recipient.
LABEL = re.compile(
    r"^\s*(?:(?:[-*•]|>{1,3})\s*)?(?:(?:original|final)?[- ]?recipient(?: address)?|to|rcpt to|address|"
    r"failed recipient|destinataire|empfänger|адрес|宛先|invalid address)?\s*[:=]?\s*[<\"'(\[]*$",
    re.I,
)
AFTER_ADDRESS = re.compile(
    r"^[>\"')\]]*\s*(?:[:;,.]|\.\.\.)?\s*(?:\(expanded from[^)]*\)\s*:?|on \w{3}, .*|on \d.*|<[^<>\s]+>|"
    r"\(\w+ \w+\)|\[-?\d+\]|"
    r"\(user not found\)|\(generated from[^)]*\):?)?\s*$",
    re.I,
)
# A message's identifier looks like an address and names no one.
MESSAGE_ID = re.compile(r"(message-id|in-reply-to|references)\s*:\s*<?$", re.I)
# The mailbox of mail systems, never a reader (a postmaster may well be one).
SYSTEM_LOCAL_PARTS = re.compile(r"^(mailer-daemon|mail-daemon|mailerdaemon)$", re.I)
# Where the report's own words end and the returned message begins.
ORIGINAL_STARTS = re.compile(
    r"^.*(below this line is a copy of the message|this is a copy of the message|"
    r"original message (follows|headers)|-{3,} ?original message ?-{3,}|"
    r"returned message follows|message headers follow|content-type: message/rfc822|"
    r"^-+ ?(the )?(original|returned) (message|mail)|headers of the original message|"
    r"unsent message (below|follows)|the header of the original message|"
    r"-----\s*transcript of session follows|^received: from ).*$",
    re.I | re.M,
)


def report_part(text: str) -> tuple[str, str]:
    """(the report's own words, the quoted original) of a text report without MIME structure."""
    match = ORIGINAL_STARTS.search(text)
    if match is None or "transcript of session" in match.group(0).lower():
        # A Sendmail transcript still belongs to the report: cut at the next marker.
        later = ORIGINAL_STARTS.search(text, match.end()) if match else None
        if later is None:
            return text, ""
        match = later
    return text[: match.start()], text[match.end() :]


def failed_recipients(text: str, not_readers: set[str]) -> dict[str, str]:
    """address (lower case) -> the diagnostic written for it, in the order of the report."""
    lines = text.splitlines()
    found: dict[str, str] = {}
    for number, line in enumerate(lines):
        for match in ADDRESS.finditer(line):
            address = match.group(0).strip(".'").lower()
            if address in not_readers or SYSTEM_LOCAL_PARTS.match(address.partition("@")[0]):
                continue
            before, after = line[: match.start()], line[match.end() :]
            if MESSAGE_ID.search(before):
                continue
            if LABEL.match(before) and AFTER_ADDRESS.match(after):  # the address alone
                diagnostic = _following(lines, number + 1)
            else:
                diagnostic = _with_continuation(lines, number)
            if address not in found or (_tells(diagnostic) and not _tells(found[address])):
                found[address] = diagnostic
    return found


def _following(lines: list[str], start: int) -> str:
    """The words under an address line, up to the next address line; through single blank
    lines until the words carry a code (Gmail puts the server's reply a paragraph further)."""
    taken: list[str] = []
    blanks = 0
    for line in lines[start : start + 14]:
        if not line.strip():
            blanks += 1
            if taken and (blanks > 1 or _tells(" ".join(taken))):
                break
            continue
        blanks = 0
        if _is_address_line(line):
            break
        taken.append(line.strip())
    return " ".join(taken)


def _is_address_line(line: str) -> bool:
    match = ADDRESS.search(line)
    return bool(
        match and LABEL.match(line[: match.start()]) and AFTER_ADDRESS.match(line[match.end() :])
    )


def _with_continuation(lines: list[str], number: int) -> str:
    taken = [lines[number].strip()]
    for line in lines[number + 1 : number + 12]:
        if not line[:1].isspace() or not line.strip():
            break
        taken.append(line.strip())
    return " ".join(taken)


def _tells(text: str) -> bool:
    """Does a diagnostic carry a code (the server's own reply)?"""
    return bool(STATUS_CODE.search(text) or SMTP_REPLY.search(text))
