"""The web application (Starlette): one-click unsubscribe, double opt-in subscription
(subscription.py), and the archive of published issues. ``hebdo-mail serve`` runs it (server.py).

Every state change is a POST; a GET never changes anything (mail scanners open every link), and
a POST of one of the site's forms must come from the site itself (forms.py). Tokens are the HMAC
tokens delivery puts in its messages. Every response, error pages included, carries security
headers; request bodies are size-limited and the forms rate-limited per client address (guard.py).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import jinja2
from babel.core import negotiate_locale
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import (
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Match, Route

from ..audience.addresses import InvalidAddress, check_name, normalise_address
from ..audience.store import SubscriberStore, open_store
from ..audience.tokens import PROOF, TokenSigner
from ..deliver.ledger import published_check
from ..deliver.setup import configured_transport
from ..deliver.transport import Transport
from ..publish.archive import Archive, available_languages
from ..publish.feed import ATOM_TYPE
from ..publish.i18n import N_
from ..publish.issue import ISSUE_ID
from ..publish.templating import render, workspace_environment
from ..vocabulary import FORMATS
from ..workspace import Workspace, load_secret
from .admin import admin_routes
from .clicks import ClickCounter, ClickFilter
from .files import FileServer
from .forms import FORM_REFUSED, FormGuard
from .guard import MAX_BODY, ASGIApp, ClientLimiter, Guard
from .subscription import SubscriptionPages

log = logging.getLogger(__name__)
ONE_CLICK = ("List-Unsubscribe", "One-Click")  # the body of an RFC 8058 one-click POST


class WebApp:
    """What the endpoints share: the workspace, its archive, its token signer, page rendering."""

    def __init__(
        self, workspace: Workspace, transport: Transport | None = None, *,
        allow_plain_auth: bool = False, clicks: ClickFilter | None = None,
    ) -> None:  # fmt: skip
        self.workspace = workspace
        self.settings = workspace.settings.newsletter
        self.web_settings = workspace.settings.web
        self.archive = Archive(workspace, published_check(workspace))
        self.files = FileServer()
        self.secret, _ = load_secret(workspace.root)
        self.signer = TokenSigner(self.secret, self.settings.list_identifier)
        self.forms = FormGuard(self.signer, self.settings.base_url)
        self.languages = available_languages(workspace)
        self.limiter = ClientLimiter(self.web_settings.form_posts_per_minute)
        self.transport = transport or configured_transport(
            workspace, url=None, outbox="outbox/confirmations", allow_plain_auth=allow_plain_auth
        )
        self._environments: dict[str, jinja2.Environment] = {}
        self.clicks = ClickCounter(self, clicks)
        self._store: SubscriberStore | None = None
        self._gettext: dict[str, Callable[[str], str]] = {}

    # -- helpers -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def store(self) -> Iterator[SubscriberStore]:
        """The store, opened once per process and kept: opening it costs more than most requests
        (SQLite reads its schema, PostgreSQL borrows a connection). Requests run one at a time
        on this thread and never wait inside a store call, so they can share it. After an error
        it is closed, and the next request opens it afresh."""
        if self._store is None:
            self._store = open_store(self.workspace)
        try:
            yield self._store
        except BaseException:
            store, self._store = self._store, None
            with contextlib.suppress(Exception):
                store.close()
            raise

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
        """The language's catalogues, read once per process like the pages' templates."""
        found = self._gettext.get(lang)
        if found is None:
            from ..publish.i18n import translations

            found = self._gettext[lang] = translations(lang, self.workspace.locale_dir).gettext
        return found

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

    async def form(self, request: Request) -> FormData:
        try:
            return await request.form(max_files=0, max_fields=10, max_part_size=MAX_BODY)
        except ClientDisconnect:  # gone, or cut off for sending too slowly: nobody to answer
            raise HTTPException(408) from None

    @staticmethod
    def address(verified: str | None) -> str | None:
        """The address a genuine token names, if it is still an address we accept (one made by
        an older version may no longer be)."""
        if verified is None:
            return None
        try:
            return normalise_address(verified)
        except InvalidAddress:
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

    async def feed(self, request: Request) -> Response:
        default = self.settings.language
        lang = request.path_params.get("lang", default)
        if "lang" in request.path_params and lang == default:
            return RedirectResponse("/feed.xml", status_code=308)  # the default's one name
        data = self.archive.feed(lang)
        if data is None:
            return self.error(request, 404, N_("This page does not exist."))
        return Response(data, media_type=ATOM_TYPE, headers={"cache-control": "max-age=300"})

    # -- unsubscribe ---------------------------------------------------------------------------

    def issue_of_link(self, request: Request) -> str | None:
        """The issue an unsubscribe link came from (``?issue=``, outside the token's MAC): kept
        only when it names an issue of this workspace, so a forged one counts for nothing."""
        issue_id = request.query_params.get("issue", "")
        if ISSUE_ID.match(issue_id) and (self.workspace.issues_dir / issue_id).is_dir():
            return issue_id
        return None

    async def unsubscribe(self, request: Request) -> Response:
        address = self.address(self.signer.verify(request.path_params["token"]))
        if address is None:
            return self.error(
                request,
                400,
                N_(
                    "This unsubscribe link is not valid. Use the link of your latest issue, or write to us."
                ),
            )
        accepted = False
        if request.method == "POST":
            form = await self.form(request)
            # RFC 8058 one-click: mail clients post it from their servers, with no Origin and no
            # token; anything else must be this page's own form, posted from this site.
            accepted = form.get(ONE_CLICK[0]) == ONE_CLICK[1] or self.forms.accepts(request, form)
        with self.store() as store:
            known = store.get(address)
            if accepted:
                store.mark_unsubscribed(address, source="web", issue_id=self.issue_of_link(request))
        lang = self.language(request, known.lang if known else None)
        refused = request.method == "POST" and not accepted
        return self.page(
            "unsubscribe.html", lang, 403 if refused else 200,
            heading=self.gettext(lang)(N_("Unsubscribe")), email=address, done=accepted,
            form_token=self.forms.token(request.url.path),
            **({"error": self.gettext(lang)(FORM_REFUSED)} if refused else {}),
        )  # fmt: skip

    # -- preferences ---------------------------------------------------------------------------

    async def preferences(self, request: Request) -> Response:
        """Language, format and name, changed by the reader; the token of their unsubscribe
        link opens it. GET shows, POST (from this site's own form) changes; the page speaks the
        reader's language."""
        token = request.path_params["token"]
        address = self.address(self.signer.verify(token))
        if address is None:
            return self.error(
                request,
                400,
                N_("This link is not valid. Use the link of your latest issue, or write to us."),
            )
        form = None
        if request.method == "POST":
            if (refusal := self.refused(request)) is not None:
                return refusal
            form = await self.form(request)
        refused = form is not None and not self.forms.accepts(request, form)
        with self.store() as store:
            reader = store.get(address)
            if reader is None:
                return self.error(
                    request, 404, N_("This address is not on the list; write to us to change it.")
                )
            if form is not None and not refused:
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
        lang = self.language(request, reader.lang)
        return self.page(
            "preferences.html", lang, 403 if refused else 200,
            heading=self.gettext(lang)(N_("Your preferences")), email=address,
            reader={"name": reader.name, "lang": lang, "format": reader.format}, token=token,
            done=form is not None and not refused, form_token=self.forms.token(request.url.path),
            **({"error": self.gettext(lang)(FORM_REFUSED)} if refused else {}),
        )  # fmt: skip


def create_app(
    workspace: Workspace, *, transport: Transport | None = None, allow_plain_auth: bool = False,
    clicks: ClickFilter | None = None,
) -> ASGIApp:  # fmt: skip
    """The app; ``clicks`` replaces the scanner filter of counted links (a test's clock)."""
    web = WebApp(workspace, transport, allow_plain_auth=allow_plain_auth, clicks=clicks)
    subscriptions = SubscriptionPages(web)

    async def not_found(request: Request, exc: Exception) -> Response:
        return trailing_slash(request) or web.error(request, 404, N_("This page does not exist."))

    async def not_allowed(request: Request, exc: Exception) -> Response:
        response = web.error(request, 405, N_("This address does not accept that request."))
        if isinstance(exc, HTTPException) and exc.headers:
            response.headers.update(exc.headers)
        return response

    async def too_large(request: Request, exc: Exception) -> Response:
        return web.error(request, 413, N_("The request is too large."))

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed: %r", request.method, request.url.path, exc)
        try:
            return web.error(request, 500, N_("Something went wrong on our side. Please try again later."))  # fmt: skip
        except Exception:  # the page itself cannot be drawn (a broken template, say)
            return PlainTextResponse("Something went wrong on our side.", status_code=500)

    routes = [
        Route("/", web.cover, methods=["GET"]),
        Route("/issues/{issue_id}/", web.issue_root, methods=["GET"]),
        Route("/issues/{issue_id}/files/{name}", web.issue_file, methods=["GET"]),
        Route("/issues/{issue_id}/{lang}/", web.issue_page, methods=["GET"]),
        Route("/feed.xml", web.feed, methods=["GET"]),
        Route("/feed.{lang}.xml", web.feed, methods=["GET"]),
        Route("/l/{issue_id}/{number:int}/{mac}", web.clicks.follow, methods=["GET"]),
        Route("/unsubscribe/{token}", web.unsubscribe, methods=["GET", "POST"]),
        Route("/preferences/{token}", web.preferences, methods=["GET", "POST"]),
        Route("/subscribe", subscriptions.subscribe, methods=["GET", "POST"]),
        Route("/confirm/{token}", subscriptions.confirm, methods=["GET", "POST"]),
        *admin_routes(web),
    ]

    def trailing_slash(request: Request) -> Response | None:
        """A path that only lacks its final slash: redirected, relatively (Starlette's own
        redirect is absolute, built from the Host header a client chose)."""
        path = request.url.path
        if path.endswith("/") or re.search(r"//|\\", path):
            return None
        scope = {**request.scope, "path": path + "/"}
        if not any(route.matches(scope)[0] == Match.FULL for route in routes):
            return None
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"./{quote(path.rsplit('/', 1)[1])}/{query}", status_code=307)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await web.clicks.close()  # clicks still waiting out the scanner window are counted

    app = Starlette(
        routes=routes,
        exception_handlers={404: not_found, 405: not_allowed, 413: too_large, 500: server_error},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False
    # Outermost, so that even the 500 page Starlette's error middleware sends has the headers.
    return Guard(app, trusted_proxies=workspace.settings.web.trusted_proxies)
