"""What every page of the admin dashboard shares: the session behind the cookie, the CSRF token
tied to it, the audit log, and rendering in the admin's language.

Every page asks for a live session first: without one, any ``/admin/…`` request is redirected to
the login page, before its form is even read. Every change is a POST whose ``csrf_token`` field
must be the token of the session making it (an HMAC of the session under the workspace secret, by
the same TokenSigner as the public forms' tokens), and the browser must not say it comes from
another site (the public forms' Origin check, forms.py); otherwise the answer is 403 and nothing
changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ...audience.admin_sessions import LIFETIME, AdminSessions, Session
from ...audience.audit import AuditLog
from ...audience.store import SubscriberStore, open_store
from ...deliver.delivery_records import DeliveryRecords
from ...deliver.ledger import delivery_records
from ...publish.i18n import N_

if TYPE_CHECKING:
    from ..app import WebApp

COOKIE = "hebdo_admin"
CSRF_FIELD = "csrf_token"
CSRF_PURPOSE = "admin-csrf"
PREFIX = "/admin"
ACTION_REFUSED = N_(
    "This form has expired or was not sent from the dashboard. Go back, reload the page and "
    "try again."
)


@dataclass
class AdminRequest:
    """One request of a logged-in admin: the HTTP request, the open store, the session."""

    request: Request
    store: SubscriberStore
    session: Session
    lang: str

    @property
    def account(self) -> str:
        return self.session.account


T = TypeVar("T")
Handler = Callable[[AdminRequest], Awaitable[Response]]
FormHandler = Callable[[AdminRequest, FormData], Awaitable[Response]]


class AdminSite:
    def __init__(self, web: WebApp) -> None:
        self.web = web
        self.workspace = web.workspace
        self.secure = web.settings.base_url.startswith("https:")

    # -- sessions and tokens ---------------------------------------------------------------------

    def client(self, request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def session(self, request: Request, store: SubscriberStore) -> Session | None:
        token = request.cookies.get(COOKIE)
        return AdminSessions(store.db).find(token) if token else None

    def csrf_token(self, session: Session) -> str:
        return self.web.signer.timed_token(session.digest, CSRF_PURPOSE)

    def csrf_valid(self, request: Request, session: Session, form: FormData) -> bool:
        """The form carries this session's token, and the browser says it comes from this site
        (the public forms' Origin check)."""
        token = form.get(CSRF_FIELD)
        if not isinstance(token, str) or not self.web.forms.from_this_site(request):
            return False
        verified = self.web.signer.verify_timed(token, CSRF_PURPOSE, LIFETIME)
        return verified is not None and verified[0] == session.digest

    def set_cookie(self, response: Response, token: str) -> None:
        response.set_cookie(
            COOKIE, token, path=PREFIX, httponly=True, samesite="strict", secure=self.secure
        )

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(
            COOKIE, path=PREFIX, httponly=True, samesite="strict", secure=self.secure
        )

    # -- guards ----------------------------------------------------------------------------------

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A page for logged-in admins only (GET)."""

        async def endpoint(request: Request) -> Response:
            with self.web.store() as store:
                session = self.session(request, store)
                if session is None:
                    return self.to_login(request)
                return await handler(AdminRequest(request, store, session, self.lang(request)))

        return endpoint

    def action(
        self, handler: FormHandler, *, max_files: int = 0
    ) -> Callable[[Request], Awaitable[Response]]:
        """A change (POST) by a logged-in admin, with the session's CSRF token."""

        async def endpoint(request: Request) -> Response:
            with self.web.store() as store:
                session = self.session(request, store)
                if session is None:
                    return self.to_login(request)
                # As a context: an uploaded file's spool is closed however the handler ends.
                async with request.form(max_files=max_files, max_fields=20) as form:
                    admin = AdminRequest(request, store, session, self.lang(request))
                    if not self.csrf_valid(request, session, form):
                        return self.error(admin, 403, ACTION_REFUSED)
                    return await handler(admin, form)

        return endpoint

    def to_login(self, request: Request) -> Response:
        target = request.url.path if request.method == "GET" else f"{PREFIX}/"
        if request.method == "GET" and request.url.query:
            target += f"?{request.url.query}"
        return RedirectResponse(f"{PREFIX}/login?next={quote(target, safe='')}", status_code=303)

    # -- pages -----------------------------------------------------------------------------------

    def lang(self, request: Request) -> str:
        return self.web.language(request)

    def render(
        self, admin: AdminRequest, template: str, *, status: int = 200, **context: Any
    ) -> HTMLResponse:
        return self.web.page(
            f"admin/{template}", admin.lang, status,
            account=admin.account, csrf_token=self.csrf_token(admin.session),
            path=admin.request.url.path, **context,
        )  # fmt: skip

    def error(self, admin: AdminRequest, status: int, message: str) -> HTMLResponse:
        text = self.web.gettext(admin.lang)(message)
        return self.render(admin, "error.html", status=status, heading=text)

    async def deliveries(self, admin: AdminRequest) -> DeliveryRecords:
        """What the sends recorded (the file logs, or the shared ledger), brought up to date,
        for quick questions on the request's store."""
        await self.reading(lambda records: None)
        return delivery_records(self.workspace, admin.store.db)

    async def reading(self, read: Callable[[DeliveryRecords], T]) -> T:
        """``read`` what the sends recorded, brought up to date first, off the event loop (after
        a large send the logs' index reads for seconds, a report replays a log), on a store of
        its own: the process's store is the requests', on the loop, never a thread's."""

        def run() -> T:
            with open_store(self.workspace) as store:
                records = delivery_records(self.workspace, store.db)
                records.refresh()
                return read(records)

        return await run_in_threadpool(run)

    def audit(self, admin: AdminRequest, action: str, target: str = "", detail: str = "") -> None:
        AuditLog(admin.store.db).record(
            admin.account, action, target=target, detail=detail, client=self.client(admin.request)
        )

    def back(self, path: str, notice: str = "") -> RedirectResponse:
        """After a change: back to a page of the dashboard (Post/Redirect/Get)."""
        separator = "&" if "?" in path else "?"
        suffix = f"{separator}done={quote(notice)}" if notice else ""
        return RedirectResponse(f"{PREFIX}{path}{suffix}", status_code=303)


def page_number(text: str | None) -> int:
    """The ``page`` of a query string: a positive number, else the first page."""
    return int(text) if text and text.isdigit() and 0 < int(text) < 1_000_000 else 1
