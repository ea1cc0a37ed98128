"""Stage 4 (pure): a rendered edition and a recipient become one personalised message.

Per recipient, only their own fields change: To, Message-ID, Date, the unsubscribe link and token,
and the subscriber fields the templates print. Everything else (subject, parts, inlined CSS) was
prepared once per edition.

Two paths build the same message. ``reference`` is the slow, obvious one: an ``EmailMessage`` per
recipient. ``wire`` is the one delivery uses: each edition and format is prepared once in its SMTP
DATA form (headers encoded, parts quoted-printable, CRLF, dot-stuffed), and per recipient only the
personal header lines and the few body lines that hold a personal field are encoded and spliced
in. Tests check that both parse to the same headers and the same decoded parts.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import hashlib
import html
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING

from ..audience.recipients import Recipient
from ..audience.tokens import TokenSigner
from ..errors import HebdoError
from ..publish.rendered import RenderedEdition
from ..publish.slots import SlotSpec
from .wireformat import (
    from_wire,
    mailbox_header,
    to_wire,
)
from .wiretemplate import (
    WIRE_POLICY,
    WIRE_POLICY_UTF8,
    PersonalHeaders,
    PreparedEdition,
    WireTemplate,
)

if TYPE_CHECKING:
    from ..config import BounceSettings, NewsletterSettings
    from .dkim import DkimSigner

# CRLF line ends; parts are encoded with 76-column quoted-printable lines.
POLICY = email.policy.SMTP
POLICY_UTF8 = email.policy.SMTPUTF8


class MessageError(HebdoError):
    """A message cannot be built for a recipient (a header would carry a line break, say)."""


@dataclass(frozen=True)
class Personal:
    """What one HMAC per recipient gives: the unsubscribe token and the Message-ID."""

    token: str
    message_id: str


def mailto_prefix(settings: NewsletterSettings) -> str:
    """The mailto: of List-Unsubscribe, up to the token its subject ends with."""
    return f"mailto:{settings.unsubscribe_address}?subject=unsubscribe%20"


def list_headers(
    settings: NewsletterSettings, unsubscribe_url: str, token: str, mailto: str | None = None
) -> list[tuple[str, str]]:
    """List-Id, List-Unsubscribe and its one-click POST (RFC 2919, 2369, 8058): on every
    message a reader gets from the list, issues and welcome alike."""
    return [
        ("List-Id", f"{settings.name} <{settings.list_identifier}>"),
        (
            "List-Unsubscribe",
            list_unsubscribe(unsubscribe_url, mailto or mailto_prefix(settings), token),
        ),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ]


def list_unsubscribe(unsubscribe_url: str, mailto: str, token: str) -> str:
    # Tokens are URL-safe base64 with a dot: nothing in them needs escaping in a mailto URL.
    return f"<{unsubscribe_url}>, <{mailto}{token}>"


def _address(recipient: Recipient) -> Address:
    # Given in parts: parsing an addr_spec would refuse an internationalised local part.
    username, _, domain = recipient.email.rpartition("@")
    return Address(display_name=recipient.name, username=username, domain=domain)


class MessageFactory:
    """Builds the message each recipient gets, in their edition and format."""

    def __init__(
        self,
        *,
        issue_id: str,
        editions: Mapping[str, RenderedEdition],
        default_lang: str,
        settings: NewsletterSettings,
        signer: TokenSigner,
        bounces: BounceSettings | None = None,
        dkim: DkimSigner | None = None,
    ) -> None:
        self.issue_id = issue_id
        self.editions = {lang: PreparedEdition.of(e) for lang, e in editions.items()}
        self.default_lang = default_lang
        self.settings = settings
        self.signer = signer
        # Derived once: parsing the sender's address per message showed up first in profiles.
        self._mailto = mailto_prefix(settings)
        self._message_id_domain = settings.sender_domain
        self._sender_address = (
            settings.sender_address
        )  # a property that parses: once, not per message
        self._message_id_salt = f"message-id {issue_id}\n".encode()
        self._templates: dict[tuple[str, str], WireTemplate] = {}
        self.dkim = dkim
        self._verp: tuple[str, str] | None = None
        if bounces is not None and bounces.verp:
            self._verp = (bounces.prefix, bounces.domain or settings.sender_domain)
        self._date_second = -1
        self._date_header = b""

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

    def envelope_sender(self, recipient: Recipient) -> str:
        """MAIL FROM: with VERP, bounces+<token>@domain, so a bounce names its reader."""
        if self._verp is None:
            return self._sender_address
        prefix, domain = self._verp
        return f"{prefix}+{self.signer.verp_token(recipient.email)}@{domain}"

    def personal(self, recipient: Recipient) -> Personal:
        """The recipient's token, and a Message-ID derived from its MAC: stable for one issue and
        address (a resent copy is recognisable as the same), unguessable without the secret."""
        token, mac = self.signer.signed(recipient.email)
        digest = hashlib.sha256(self._message_id_salt + mac).hexdigest()[:24]
        return Personal(token, f"<{self.issue_id}.{digest}@{self._message_id_domain}>")

    def _unsubscribe_url(self, token: str) -> str:
        # The issue rides outside the token (which is per list and address): the web app counts
        # the unsubscribe for this issue's report, and a link without it works all the same.
        return f"{self.settings.base_url}/unsubscribe/{token}?issue={self.issue_id}"

    def message_id(self, recipient: Recipient) -> str:
        return self.personal(recipient).message_id

    def slot_values(
        self, recipient: Recipient, slots: Sequence[SlotSpec], token: str | None = None
    ) -> list[str]:
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
                value = self._unsubscribe_url(token or self.personal(recipient).token)
            elif spec.field == "preferences_url":
                # The same token opens both pages: unsubscribe and preferences.
                token = token or self.personal(recipient).token
                value = f"{self.settings.base_url}/preferences/{token}"
            else:
                value = str(recipient.attributes.get(spec.key, ""))
            values.append(value or spec.default)
        return values

    def _check_header_values(self, recipient: Recipient) -> None:
        for what, value in (("name", recipient.name), ("address", recipient.email)):
            if "\r" in value or "\n" in value:
                raise MessageError(
                    f"refusing to send to {recipient.email!r}: the {what} has a line break, which would inject a header"
                )

    def _list_unsubscribe(self, token: str) -> str:
        return list_unsubscribe(self._unsubscribe_url(token), self._mailto, token)

    def headers(
        self, recipient: Recipient, *, date: dt.datetime, message_id: str
    ) -> list[tuple[str, str]]:
        self._check_header_values(recipient)
        settings = self.settings
        prepared = self.edition_for(recipient)
        token = self.personal(recipient).token
        headers = [
            ("From", settings.sender_in(prepared.edition.lang)),
            ("To", str(_address(recipient))),
            ("Subject", prepared.edition.subject),
            ("Date", format_datetime(date)),
            ("Message-ID", message_id),
        ]
        if settings.reply_to:
            headers.append(("Reply-To", settings.reply_to))
        headers += list_headers(settings, self._unsubscribe_url(token), token, self._mailto)
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

    def reference_bytes(self, recipient: Recipient) -> bytes:
        """The reference message serialised, CRLF line ends (as a mailbox stores it)."""
        message = self.reference(recipient)
        return message.as_bytes(
            policy=WIRE_POLICY if recipient.email.isascii() else WIRE_POLICY_UTF8
        )

    def reference_wire(self, recipient: Recipient) -> bytes:
        return to_wire(self.reference_bytes(recipient))

    # -- the fast path -------------------------------------------------------------------------

    def _template(self, prepared: PreparedEdition, fmt: str) -> WireTemplate:
        key = (prepared.edition.lang, fmt)
        template = self._templates.get(key)
        if template is None:
            template = self._templates[key] = WireTemplate(
                self.settings, self.issue_id, prepared, fmt
            )
        return template

    def _date(self) -> bytes:
        """The Date line, formatted once a second rather than once a message."""
        second = int(time.time())
        if second != self._date_second:
            stamp = dt.datetime.fromtimestamp(second, dt.UTC)
            self._date_second, self._date_header = (
                second,
                f"Date: {format_datetime(stamp)}\r\n".encode(),
            )
        return self._date_header

    def wire(
        self, recipient: Recipient, personal: Personal | None = None, *, signed: bool = True
    ) -> bytes:
        """The recipient's message in SMTP DATA form: CRLF, dot-stuffed, ending with the dot.
        ``signed=False`` leaves the DKIM signature to a later ``sign`` (the sender does it in a
        worker thread)."""
        self._check_header_values(recipient)
        prepared = self.edition_for(recipient)
        template = self._template(prepared, "text" if recipient.format == "text" else "html")
        personal = personal or self.personal(recipient)
        token = personal.token
        headers = PersonalHeaders(
            to=mailbox_header(recipient.name, recipient.email),
            date=self._date(),
            message_id=f"Message-ID: {personal.message_id}\r\n".encode(),
            list_unsubscribe=f"List-Unsubscribe: {self._list_unsubscribe(token)}\r\n".encode(),
        )
        wire = template.assemble(headers, self.slot_values(recipient, template.slots, token))
        return self.sign(wire) if signed else wire

    def sign(self, wire: bytes) -> bytes:
        """The DATA form with its DKIM-Signature, when signing is on."""
        return wire if self.dkim is None else self.dkim.sign_wire(wire)

    def message_bytes(self, recipient: Recipient) -> bytes:
        """The message as a mailbox stores it (the wire form without its SMTP framing)."""
        return from_wire(self.wire(recipient))
