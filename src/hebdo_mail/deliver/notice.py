"""One-off messages from the newsletter to one person (a confirmation request, a welcome), as
opposed to an issue's copies: built with the email package, in SMTP DATA form, DKIM-signed
like the issues when signing is on, and handed to the relay outside any send log.
"""

from __future__ import annotations

import datetime as dt
import email.policy
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING

from .dkim import DkimSigner
from .send import deliver_one
from .transport import Reply, Transport
from .wireformat import to_wire

if TYPE_CHECKING:
    from ..config import NewsletterSettings


def notice_message(
    settings: NewsletterSettings, *, lang: str, to: str, subject: str, text: str,
    html: str | None = None, headers: Sequence[tuple[str, str]] = (),
) -> bytes:  # fmt: skip
    """The message in DATA form: text, or text and HTML as alternatives."""
    message = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998))
    message["From"] = settings.sender_in(lang)
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    message["Message-ID"] = make_msgid(domain=settings.sender_domain)
    message["Auto-Submitted"] = "auto-generated"
    for name, value in headers:
        message[name] = value
    message.set_content(text, charset="utf-8", cte="quoted-printable")
    if html is not None:
        message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return to_wire(message.as_bytes())


async def send_notice(
    transport: Transport, dkim: DkimSigner | None, settings: NewsletterSettings, to: str,
    wire: bytes,
) -> Reply:  # fmt: skip
    signed = dkim.sign_wire(wire) if dkim else wire
    return await deliver_one(transport, settings.sender_address, to, signed)
