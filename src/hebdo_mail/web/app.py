"""The web application (Starlette): one-click unsubscribe, double opt-in subscription, and the
archive of published issues. ``hebdo-mail serve`` runs it with uvicorn.

Every state change is a POST; a GET never changes anything (mail scanners open every link).
Tokens are the HMAC tokens delivery puts in its messages. Every response carries security
headers; request bodies are size-limited and the forms rate-limited per client address.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import logging
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import jinja2
from babel.core import negotiate_locale
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ..audience.addresses import InvalidAddress, check_name, normalise_address
from ..audience.store import SubscriberStore, open_store
from ..audience.tokens import PROOF, TokenSigner
from ..deliver.dkim import load_signer
from ..deliver.send import deliver_one
from ..deliver.setup import configured_transport
from ..deliver.transport import Transport
from ..deliver.wireformat import to_wire
from ..errors import HebdoError
from ..publish.archive import Archive, available_languages
from ..publish.i18n import N_
from ..publish.templating import render, workspace_environment
from ..vocabulary import FORMATS
from ..workspace import Workspace, load_secret
from .admin import admin_routes
from .files import FileServer
from .guard import FORM_RATE, MAX_BODY, ClientLimiter, Guard

CONFIRM_MAX_AGE = 7 * 24 * 3600  # seconds a confirmation link stays valid
log = logging.getLogger(__name__)


class WebApp:
    """What the endpoints share: the workspace, its archive, its token signer, page rendering."""

    def __init__(self, workspace: Workspace, transport: Transport | None = None) -> None:

        self.workspace = workspace
        self.settings = workspace.settings.newsletter
        self.archive = Archive(workspace)
        self.files = FileServer()
        secret, _ = load_secret(workspace.root)
        self.signer = TokenSigner(secret, self.settings.list_identifier)
        self.languages = available_languages(workspace)
        self.limiter = ClientLimiter(FORM_RATE)
        self.transport = transport or configured_transport(
            workspace, url=None, outbox="outbox/confirmations"
        )
        self.dkim = load_signer(workspace)  # confirmations are signed like the issues
        self._environments: dict[str, jinja2.Environment] = {}

    # -- helpers -------------------------------------------------------------------------------

    def store(self) -> SubscriberStore:
        return open_store(self.workspace)

    def language(self, request: Request, preferred: str | None = None) -> str:
        """The reader's language: theirs when known, else the browser's, else the default."""
        if preferred:
            chosen = negotiate_locale([preferred], self.languages, sep="-")
            if chosen:
                return str(chosen)
        wanted = []
        for part in request.headers.get("accept-language", "").split(","):
            code, _, quality = part.strip().partition(";q=")
            try:
                weight = float(quality) if quality else 1.0
            except ValueError:
                continue
            if code and code != "*":
                wanted.append((weight, code.strip()))
        ordered = [code for _, code in sorted(wanted, key=lambda item: -item[0])]
        chosen = negotiate_locale(ordered, self.languages, sep="-") if ordered else None
        return str(chosen or self.settings.language)

    def page(self, template: str, lang: str, status: int = 200, **context: Any) -> HTMLResponse:
        env = self._environments.get(lang)
        if env is None:
            env = self._environments[lang] = workspace_environment(self.workspace, lang)
        html = render(env, template, {
            "page_lang": lang,
            "newsletter": {"name": self.settings.name_in(lang), "base_url": self.settings.base_url},
            "languages": self.languages,
            **context,
        })  # fmt: skip
        return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})

    def gettext(self, lang: str) -> Callable[[str], str]:
        from ..publish.i18n import translations

        return translations(lang, self.workspace.locale_dir).gettext

    def error(
        self, request: Request, status: int, message: str, lang: str | None = None
    ) -> HTMLResponse:
        lang = lang or self.language(request)
        return self.page(
            "error.html", lang, status, heading=self.gettext(lang)(message), message=""
        )

    def refused(self, request: Request) -> HTMLResponse | None:
        client = request.client.host if request.client else "unknown"
        if not self.limiter.allow(client):
            return self.error(
                request, 429, N_("Too many requests; please wait a minute and try again.")
            )
        return None

    # -- archive -------------------------------------------------------------------------------

    async def cover(self, request: Request) -> Response:
        lang = self.language(request)
        html = self.archive.cover_page(lang, subscribe_url="/subscribe")
        return HTMLResponse(html)

    async def issue_root(self, request: Request) -> Response:
        issue = self.archive.issue(request.path_params["issue_id"])
        if issue is None:
            return self.error(
                request, 404, N_("This issue does not exist or is not published yet.")
            )
        lang = self.language(request)
        target = lang if lang in issue.editions else issue.default_language
        # Only ever to a path of this site: no open redirect.
        return RedirectResponse(f"/issues/{issue.id}/{target}/", status_code=307)

    async def issue_page(self, request: Request) -> Response:
        issue_id = request.path_params["issue_id"]
        # A proof copy's "read online" link carries a token: its page shows before the send.
        proof = self.signer.verify(request.query_params.get("proof", ""), PROOF) == issue_id
        html = self.archive.web_page(issue_id, request.path_params["lang"], published=not proof)
        if html is None:
            return self.error(
                request, 404, N_("This issue does not exist or is not published yet.")
            )
        headers = {"cache-control": "no-store", "x-robots-tag": "noindex"} if proof else None
        return HTMLResponse(html, headers=headers)

    async def issue_file(self, request: Request) -> Response:
        entry = self.archive.file(request.path_params["issue_id"], request.path_params["name"])
        if entry is None:
            return self.error(request, 404, N_("No such file."))
        return self.files.response(entry)

    # -- unsubscribe ---------------------------------------------------------------------------

    async def unsubscribe(self, request: Request) -> Response:
        address = self.signer.verify(request.path_params["token"])
        if address is None:
            return self.error(
                request,
                400,
                N_(
                    "This unsubscribe link is not valid. Use the link of your latest issue, or write to us."
                ),
            )
        with self.store() as store:
            known = store.get(address)
            lang = self.language(request, known.lang if known else None)
            if request.method == "POST":
                # RFC 8058 one-click (body List-Unsubscribe=One-Click) and the page's own form alike.
                store.mark_unsubscribed(address, source="web")
        heading = self.gettext(lang)(N_("Unsubscribe"))
        return self.page(
            "unsubscribe.html", lang, heading=heading, email=address, done=request.method == "POST"
        )

    # -- preferences ---------------------------------------------------------------------------

    async def preferences(self, request: Request) -> Response:
        """Language, format and name, changed by the reader; the token of their unsubscribe
        link opens it. GET shows, POST changes; the page speaks the reader's language."""
        token = request.path_params["token"]
        address = self.signer.verify(token)
        if address is None:
            return self.error(
                request,
                400,
                N_("This link is not valid. Use the link of your latest issue, or write to us."),
            )
        done = False
        with self.store() as store:
            reader = store.get(address)
            if reader is None:
                return self.error(
                    request, 404, N_("This address is not on the list; write to us to change it.")
                )
            if request.method == "POST":
                if (refusal := self.refused(request)) is not None:
                    return refusal
                form = await request.form(max_files=0, max_fields=10, max_part_size=MAX_BODY)
                name = str(form.get("name") or "").strip()
                lang = str(form.get("lang") or "")
                fmt = str(form.get("format") or "")
                try:
                    check_name(name)
                except InvalidAddress:
                    name = reader.name  # the form caps it at 200 characters: only a forged post
                reader = store.update_preferences(
                    address,
                    name=name,
                    lang=lang if lang in self.languages else reader.lang,
                    format=fmt if fmt in FORMATS else reader.format,
                )
                done = True
        lang = self.language(request, reader.lang)
        return self.page(
            "preferences.html",
            lang,
            heading=self.gettext(lang)(N_("Your preferences")),
            email=address,
            reader={"name": reader.name, "lang": lang, "format": reader.format},
            token=token,
            done=done,
        )

    # -- subscribe -----------------------------------------------------------------------------

    async def subscribe(self, request: Request) -> Response:
        lang = self.language(request)
        heading = self.gettext(lang)(N_("Subscribe"))
        if request.method == "GET":
            return self.page("subscribe.html", lang, heading=heading, sent=False)
        if (refusal := self.refused(request)) is not None:
            return refusal
        form = await request.form(max_files=0, max_fields=10, max_part_size=MAX_BODY)
        fields = {
            key: str(form.get(key) or "").strip()
            for key in ("email", "name", "lang", "format", "website")
        }
        if fields["website"]:
            # The honeypot is filled: a robot. Answer as usual, do nothing.
            return self.page("subscribe.html", lang, heading=heading, sent=True)
        try:
            address = normalise_address(fields["email"])
        except InvalidAddress:
            problem = N_("That is not a valid email address; check it and try again.")
            return self.page(
                "subscribe.html",
                lang,
                400,
                heading=heading,
                sent=False,
                error=self.gettext(lang)(problem),
            )
        try:
            check_name(fields["name"])
        except InvalidAddress:
            problem = N_("The name must be one line of at most 200 characters.")
            return self.page(
                "subscribe.html",
                lang,
                400,
                heading=heading,
                sent=False,
                error=self.gettext(lang)(problem),
            )
        chosen_lang = fields["lang"] if fields["lang"] in self.languages else lang
        heading = self.gettext(chosen_lang)(N_("Subscribe"))
        fmt = fields["format"] if fields["format"] in ("html", "text") else "html"
        with self.store() as store:
            subscriber = store.request_subscription(
                address, name=fields["name"], lang=chosen_lang, format=fmt, source="web"
            )
        if subscriber.status != "active":
            await self.send_confirmation(address, chosen_lang)
        # The same answer whether the address was known or not: no way to learn who reads.
        return self.page("subscribe.html", chosen_lang, heading=heading, sent=True)

    async def send_confirmation(self, address: str, lang: str) -> None:
        settings = self.settings
        token = self.signer.timed_token(address, "confirm")
        env = workspace_environment(self.workspace, lang)
        name = settings.name_in(lang)
        body = render(env, "confirmation_email.txt", {
            "newsletter": {"name": name}, "email": address,
            "confirm_url": f"{settings.base_url}/confirm/{token}",
        })  # fmt: skip
        message = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998))
        message["From"] = settings.sender_in(lang)
        message["To"] = address
        message["Subject"] = self.gettext(lang)(
            N_("Confirm your subscription to %(newsletter)s")
        ) % {"newsletter": name}
        message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
        message["Message-ID"] = make_msgid(domain=settings.sender_domain)
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(body, charset="utf-8", cte="quoted-printable")
        wire = to_wire(message.as_bytes())
        try:
            await deliver_one(
                self.transport,
                settings.sender_address,
                address,
                self.dkim.sign_wire(wire) if self.dkim else wire,
            )
        except HebdoError as exc:
            # The visitor gets the usual answer; the admin sees why the mail did not leave.
            log.warning("confirmation to %s not sent: %s", address, exc)

    async def confirm(self, request: Request) -> Response:
        address = self.signer.verify_timed(request.path_params["token"], "confirm", CONFIRM_MAX_AGE)
        if address is None:
            return self.error(
                request,
                400,
                N_(
                    "This confirmation link is not valid or has expired. Subscribe again to get a new one."
                ),
            )
        with self.store() as store:
            known = store.get(address)
            lang = self.language(request, known.lang if known else None)
            if request.method == "POST":
                store.confirm(address, source="web")
        heading = self.gettext(lang)(N_("Confirm my subscription"))
        return self.page(
            "confirm.html", lang, heading=heading, email=address, done=request.method == "POST"
        )


def create_app(workspace: Workspace, *, transport: Transport | None = None) -> Starlette:
    web = WebApp(workspace, transport)

    async def not_found(request: Request, exc: Exception) -> Response:
        return web.error(request, 404, N_("This page does not exist."))

    async def not_allowed(request: Request, exc: Exception) -> Response:
        response = web.error(request, 405, N_("This address does not accept that request."))
        if isinstance(exc, HTTPException) and exc.headers:
            response.headers.update(exc.headers)
        return response

    async def too_large(request: Request, exc: Exception) -> Response:
        return web.error(request, 413, N_("The request is too large."))

    routes = [
        Route("/", web.cover, methods=["GET"]),
        Route("/issues/{issue_id}/", web.issue_root, methods=["GET"]),
        Route("/issues/{issue_id}/files/{name}", web.issue_file, methods=["GET"]),
        Route("/issues/{issue_id}/{lang}/", web.issue_page, methods=["GET"]),
        Route("/unsubscribe/{token}", web.unsubscribe, methods=["GET", "POST"]),
        Route("/preferences/{token}", web.preferences, methods=["GET", "POST"]),
        Route("/subscribe", web.subscribe, methods=["GET", "POST"]),
        Route("/confirm/{token}", web.confirm, methods=["GET", "POST"]),
        *admin_routes(web),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={404: not_found, 405: not_allowed, 413: too_large},
    )
    app.add_middleware(Guard)
    return app
