"""The welcome mail: once a reader confirms, one message in their language and format
(``welcome_email.txt``, and ``welcome_email.html`` for HTML readers; a workspace overrides either)
that links the latest issue's web page and carries the unsubscribe headers every issue carries.
``[welcome] enabled = false`` turns it off.

It leaves after the confirmation page has been answered; a failure is the admin's to read in
the log, never the reader's to wait for.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from babel.core import negotiate_locale

from ..deliver.dkim import DkimSigner
from ..deliver.message import list_headers
from ..deliver.notice import notice_message, send_notice
from ..errors import HebdoError
from ..publish.i18n import N_
from ..publish.templating import render, workspace_environment
from ..vocabulary import Format, Outcome, Status

if TYPE_CHECKING:
    from .app import WebApp

log = logging.getLogger(__name__)


class WelcomeMail:
    def __init__(self, web: WebApp, dkim: DkimSigner | None) -> None:
        self.web = web
        self.dkim = dkim  # signed like the issues and the confirmations
        self.enabled = web.workspace.settings.welcome.enabled

    async def send(self, address: str) -> None:
        """Welcome a reader who has just confirmed (nothing if they are not active by now)."""
        if not self.enabled:
            return
        try:
            with self.web.store() as store:
                reader = store.get(address)
            if reader is None or reader.status != Status.ACTIVE:
                return
            wire = self.message(address, reader.name, reader.lang, reader.format)
            settings = self.web.settings
            reply = await send_notice(self.web.transport, self.dkim, settings, address, wire)
            if reply.outcome != Outcome.SENT:
                log.warning("welcome mail to %s refused: %s %s", address, reply.code, reply.text)
        except HebdoError as exc:
            log.warning("welcome mail to %s not sent: %s", address, exc)

    def message(self, address: str, name: str, lang: str | None, fmt: str) -> bytes:
        web = self.web
        settings = web.settings
        lang = str(negotiate_locale([lang], web.languages, sep="-") or "") if lang else ""
        lang = lang or settings.language
        token = web.signer.token(address)
        unsubscribe_url = f"{settings.base_url}/unsubscribe/{token}"
        context: dict[str, Any] = {
            "newsletter": {"name": settings.name_in(lang), "base_url": settings.base_url},
            "email": address, "name": name, "lang": lang, "latest": self.latest(lang),
            "archive_url": f"{settings.base_url}/", "unsubscribe_url": unsubscribe_url,
        }  # fmt: skip
        env = workspace_environment(web.workspace, lang)
        text = render(env, "welcome_email.txt", context)
        html = render(env, "welcome_email.html", context) if fmt != Format.TEXT else None
        subject = web.gettext(lang)(N_("Welcome to %(newsletter)s")) % {
            "newsletter": settings.name_in(lang)
        }
        return notice_message(
            settings, lang=lang, to=address, subject=subject, text=text, html=html,
            headers=list_headers(settings, unsubscribe_url, token),
        )  # fmt: skip

    def latest(self, lang: str) -> dict[str, str] | None:
        """The latest published issue, in the reader's language when it has that edition."""
        issues = self.web.archive.issues()
        if not issues:
            return None
        issue = issues[0]
        edition = issue.editions.get(lang) or issue.editions[issue.default_language]
        url = f"{self.web.settings.base_url}/issues/{issue.id}/{edition.lang}/"
        return {"subject": edition.subject, "url": url}
