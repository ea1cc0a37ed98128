"""The wiring of a send, shared by the command line and the web app: which transport carries the
mail, who it goes to, and the message factory with its signers. No terminal here: whatever has to
be asked of a person (a password) is asked through the callable the caller passes.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..audience.recipients import CsvRecipients, RecipientSource, StoreRecipients
from ..audience.store import SubscriberStore, open_store
from ..audience.tokens import TokenSigner
from ..errors import ConfigError, display_path
from ..publish.rendered import RenderedEdition
from ..workspace import Workspace, load_secret
from .message import MessageFactory
from .relays import Relay, RelayPool
from .smtp import SmtpTransport, parse_smtp_url
from .transport import OutboxTransport, Transport

if TYPE_CHECKING:
    from .dkim import DkimSigner

PASSWORD_ENV = "HEBDO_SMTP_PASSWORD"
log = logging.getLogger(__name__)


def configured_transport(
    workspace: Workspace,
    *,
    url: str | None,
    outbox: str,
    ask_password: Callable[[str], str] | None = None,
    allow_plain_auth: bool = False,
) -> Transport:
    """The relay of --smtp or [smtp] url, the pool of [[smtp.relays]], else the outbox folder
    ``outbox`` of the workspace. The password comes from HEBDO_SMTP_PASSWORD, else from
    ``ask_password(prompt)`` if given. A login over plain smtp:// is refused unless the relay is
    on this machine, or ``allow_plain_auth``: the password would cross the network in clear."""
    smtp = workspace.settings.smtp
    url = url or smtp.url
    if not url and smtp.relays:
        relays = [
            Relay(
                smtp_transport(workspace, relay.url, ask_password, allow_plain_auth),
                relay.concurrency,
                weight=relay.weight,
                rate=relay.rate,
            )
            for relay in smtp.relays
        ]
        return RelayPool(relays)
    if not url:
        return OutboxTransport(workspace.root / outbox, outbox)
    return smtp_transport(workspace, url, ask_password, allow_plain_auth)


def smtp_transport(
    workspace: Workspace, url: str, ask_password: Callable[[str], str] | None,
    allow_plain_auth: bool,
) -> SmtpTransport:  # fmt: skip
    target = parse_smtp_url(url)
    password = None
    plain = target.scheme == "smtp" and not is_loopback(target.host)
    if target.username and plain and not allow_plain_auth:
        raise ConfigError(
            f"refusing to log in to {target.where} over plain smtp://: the password would "
            "cross the network in clear; use smtp+starttls:// or smtps://, or pass "
            "--allow-plain-auth if the network between you and the relay is private"
        )
    if target.username:
        password = os.environ.get(PASSWORD_ENV)
        if password is None:
            if ask_password is None:
                raise ConfigError(
                    f"the relay {target.where} needs the password of {target.username!r}; "
                    f"set {PASSWORD_ENV}"
                )
            password = ask_password(f"SMTP password for {target.username} at {target.where}: ")
    smtp = workspace.settings.smtp
    if not smtp.verify_tls:
        log.warning(
            "TLS certificates of %s are not checked ([smtp] verify_tls = false); "
            "anyone on the path could read this mail",
            target.where,
        )
    return SmtpTransport(
        target, password=password, timeout=smtp.timeout, verify_tls=smtp.verify_tls
    )


def is_loopback(host: str) -> bool:
    """This machine: localhost or a loopback address (127.0.0.0/8, ::1)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def recipient_source(
    workspace: Workspace, subscribers_csv: Path | None
) -> tuple[RecipientSource, SubscriberStore | None]:
    """The rows of a CSV file, or the store's active subscribers; and the store, which has the
    last word on who left (unsubscribed and bounced readers are skipped either way)."""
    if subscribers_csv is not None:
        source = CsvRecipients(subscribers_csv)
        store = open_store(workspace, create=False) if workspace.store_exists() else None
        return source, store
    store = open_store(workspace, create=False)
    return StoreRecipients(store, reopen=lambda: open_store(workspace, create=False)), store


def token_signer(workspace: Workspace) -> TokenSigner:
    """The workspace's signer of tokens (its secret is created on first use)."""
    secret, created = load_secret(workspace.root)
    if created:
        log.info("created %s (the key of unsubscribe links)", display_path(workspace.secret_path))
    return TokenSigner(secret, workspace.settings.newsletter.list_identifier)


def message_factory(
    workspace: Workspace, issue_id: str, editions: dict[str, RenderedEdition], default_lang: str
) -> MessageFactory:
    """The factory of personalised messages, with the workspace's token and DKIM signers."""
    settings = workspace.settings
    return MessageFactory(
        issue_id=issue_id,
        editions=editions,
        default_lang=default_lang,
        settings=settings.newsletter,
        signer=token_signer(workspace),
        bounces=settings.bounces,
        dkim=dkim_signer(workspace),
    )


def dkim_signer(workspace: Workspace) -> DkimSigner | None:
    """The workspace's DKIM signer, when [dkim] is set (cryptography is imported only then)."""
    if workspace.settings.dkim is None:
        return None
    from .dkim import load_signer

    return load_signer(workspace)
