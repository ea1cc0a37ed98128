"""Stage 4 (pure): a rendered edition and a recipient become one personalised message.

Per recipient, only their own fields change: To, Message-ID, Date, the unsubscribe link and token,
and the subscriber fields the templates print. Everything else (subject, parts, inlined CSS) was
prepared once per edition.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import quote

from .config import NewsletterSettings
from .errors import HebdoError
from .recipients import Recipient
from .render import RenderedEdition
from .slots import Personalised, SlotSpec
from .tokens import Signer

# CRLF line ends; parts are encoded with 76-column quoted-printable lines.
POLICY = email.policy.SMTP
POLICY_UTF8 = email.policy.SMTPUTF8
# Serialising, a header may run to 998 octets: an unsubscribe URL is one word longer than 78
# columns, and the email package would otherwise RFC 2047-encode it, which breaks the header.
WIRE_POLICY = POLICY.clone(max_line_length=998)
WIRE_POLICY_UTF8 = POLICY_UTF8.clone(max_line_length=998)


class MessageError(HebdoError):
    """A message cannot be built for a recipient (a header would carry a line break, say)."""


@dataclass(frozen=True)
class PreparedEdition:
    """An edition with its parts split into fixed pieces and per-recipient slots, once."""

    edition: RenderedEdition
    html: Personalised
    text: Personalised

    @classmethod
    def of(cls, edition: RenderedEdition) -> PreparedEdition:
        return cls(
            edition=edition,
            html=Personalised.split(edition.html, edition.marker_pattern),
            text=Personalised.split(edition.text, edition.marker_pattern),
        )


class MessageFactory:
    """Builds the message each recipient gets, in their edition and format."""

    def __init__(
        self,
        *,
        issue_id: str,
        editions: Mapping[str, RenderedEdition],
        default_lang: str,
        settings: NewsletterSettings,
        signer: Signer,
    ) -> None:
        self.issue_id = issue_id
        self.editions = {lang: PreparedEdition.of(e) for lang, e in editions.items()}
        self.default_lang = default_lang
        self.settings = settings
        self.signer = signer

    # -- per-recipient facts -------------------------------------------------------------------

    def edition_for(self, recipient: Recipient) -> PreparedEdition:
        """The recipient's language, else its base language (en-GB -> en), else the default."""
        wanted = (recipient.lang or "").replace("_", "-")
        if wanted in self.editions:
            return self.editions[wanted]
        base = wanted.split("-")[0].lower()
        for lang, prepared in self.editions.items():
            if lang.split("-")[0].lower() == base and base:
                return prepared
        return self.editions[self.default_lang]

    def edition_label(self, recipient: Recipient) -> str:
        return f"{self.edition_for(recipient).edition.lang}/{recipient.format}"

    def unsubscribe_token(self, recipient: Recipient) -> str:
        return self.signer.token(recipient.email)

    def unsubscribe_url(self, recipient: Recipient) -> str:
        return f"{self.settings.base_url}/unsubscribe/{self.unsubscribe_token(recipient)}"

    def message_id(self, recipient: Recipient) -> str:
        """Stable for one issue and address, so a resent copy can be recognised as the same."""
        digest = self.signer.digest(f"message-id {self.issue_id}", recipient.email)
        return f"<{self.issue_id}.{digest}@{self.settings.sender_domain}>"

    def slot_values(self, recipient: Recipient, slots: Sequence[SlotSpec]) -> list[str]:
        values = []
        for spec in slots:
            if spec.field == "email":
                value = recipient.email
            elif spec.field == "name":
                value = recipient.name
            elif spec.field == "lang":
                value = recipient.lang or self.default_lang
            elif spec.field == "format":
                value = recipient.format
            elif spec.field == "unsubscribe_url":
                value = self.unsubscribe_url(recipient)
            else:
                value = str(recipient.attributes.get(spec.key, ""))
            values.append(value or spec.default)
        return values

    def headers(
        self, recipient: Recipient, *, date: dt.datetime, message_id: str
    ) -> list[tuple[str, str]]:
        for what, value in (("name", recipient.name), ("address", recipient.email)):
            if "\r" in value or "\n" in value:
                raise MessageError(
                    f"refusing to send to {recipient.email!r}: the {what} has a line break, which would inject a header"
                )
        settings = self.settings
        prepared = self.edition_for(recipient)
        token = self.unsubscribe_token(recipient)
        mailto = f"mailto:{settings.unsubscribe_address}?subject={quote('unsubscribe ' + token)}"
        headers = [
            ("From", settings.sender),
            ("To", str(Address(display_name=recipient.name, addr_spec=recipient.email))),
            ("Subject", prepared.edition.subject),
            ("Date", format_datetime(date)),
            ("Message-ID", message_id),
        ]
        if settings.reply_to:
            headers.append(("Reply-To", settings.reply_to))
        headers += [
            ("List-Id", f"{settings.name} <{settings.list_identifier}>"),
            ("List-Unsubscribe", f"<{settings.base_url}/unsubscribe/{token}>, <{mailto}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
        for name, value in headers:
            if "\r" in value or "\n" in value:
                raise MessageError(
                    f"refusing to send to {recipient.email}: the {name} header would carry a line break"
                )
        return headers

    # -- the reference path --------------------------------------------------------------------

    def reference(
        self,
        recipient: Recipient,
        *,
        date: dt.datetime | None = None,
        message_id: str | None = None,
    ) -> EmailMessage:
        """The message as the standard library builds it: the slow, obvious path."""
        prepared = self.edition_for(recipient)
        ascii_address = recipient.email.isascii()
        message = EmailMessage(policy=POLICY if ascii_address else POLICY_UTF8)
        when = date or dt.datetime.now(dt.UTC)
        try:
            for name, value in self.headers(
                recipient, date=when, message_id=message_id or self.message_id(recipient)
            ):
                message[name] = value
        except ValueError as exc:  # the email package refuses malformed header values
            raise MessageError(f"refusing to send to {recipient.email}: {exc}") from None
        values = self.slot_values(recipient, prepared.edition.slots)
        text = prepared.text.fill(values)
        message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
        if recipient.format != "text":
            html_body = prepared.html.fill(values, html.escape)
            message.add_alternative(
                html_body, subtype="html", charset="utf-8", cte="quoted-printable"
            )
        return message

    def message_bytes(self, recipient: Recipient) -> bytes:
        """The whole message with CRLF line ends, ready for a mailbox or (dot-stuffed) for SMTP."""
        message = self.reference(recipient)
        return message.as_bytes(
            policy=WIRE_POLICY if recipient.email.isascii() else WIRE_POLICY_UTF8
        )
