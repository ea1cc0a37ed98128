"""Logging in and out of the dashboard.

A wrong name and a wrong password get the same answer, after the same work. Ten failures for a
name, or from a client address, within fifteen minutes: further attempts answer 429, whatever
they carry, until the failures age out (counted in the store, so every worker sees them). The
login form has the public forms' token and Origin check (forms.py; there is no session yet), so
that another site cannot log a browser into an account of its choosing.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ...audience.admin_sessions import AdminSessions
from ...audience.admins import (
    LOGIN_WINDOW,
    AdminAccounts,
    LoginThrottle,
    decoy_hash,
    hasher,
    password_matches,
)
from ...audience.audit import AuditLog
from ...publish.i18n import N_
from .site import COOKIE, PREFIX, AdminRequest, AdminSite

LOGIN_PATH = f"{PREFIX}/login"


class Login:
    def __init__(self, site: AdminSite) -> None:
        self.site = site
        self.web = site.web

    def form(
        self, request: Request, status: int = 200, error: str = "", next_page: str = ""
    ) -> Response:
        """The login page; ``next_page`` (else the query's ``next``) is where a login leads."""
        lang = self.site.lang(request)
        next_page = _local(next_page or request.query_params.get("next", ""))
        return self.web.page(
            "admin/login.html", lang, status,
            heading=self.web.gettext(lang)(N_("Log in to the dashboard")),
            form_token=self.web.forms.token(LOGIN_PATH),
            next_page=next_page, error=self.web.gettext(lang)(error) if error else "",
        )  # fmt: skip

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            with self.web.store() as store:
                if self.site.session(request, store) is not None:
                    return RedirectResponse(f"{PREFIX}/", status_code=303)
            return self.form(request)
        form = await request.form(max_files=0, max_fields=10)
        name = str(form.get("username") or "").strip()[:64]
        password = str(form.get("password") or "")
        next_page = _local(str(form.get("next") or ""))
        if not self.web.forms.accepts(request, form):
            return self.form(
                request, 403, N_("The login page had expired. Please try again."), next_page
            )
        client = self.site.client(request)
        subjects = [f"account:{name}", f"client:{client}"]
        with self.web.store() as store:
            throttle = LoginThrottle(store.db)
            if throttle.blocked(subjects):
                response = self.form(
                    request,
                    429,
                    N_("Too many failed logins. Wait a few minutes and try again."),
                    next_page,
                )
                response.headers["retry-after"] = str(LOGIN_WINDOW)
                return response
            accounts = AdminAccounts(store.db)
            stored = accounts.stored_hash(name)
            # Hashing takes a tenth of a second of CPU: off the event loop.
            matches = await run_in_threadpool(password_matches, stored or decoy_hash(), password)
            audit = AuditLog(store.db)
            if stored is None or not matches:
                throttle.failed(subjects)
                audit.record(name or "-", "login-refused", client=client)
                return self.form(request, 200, N_("Wrong name or password."), next_page)
            if hasher().check_needs_rehash(stored):
                accounts.rehash(name, password)
            throttle.succeeded(subjects[0])
            cookie = AdminSessions(store.db).open(name, client)
            audit.record(name, "login", client=client)
        response = RedirectResponse(next_page or f"{PREFIX}/", status_code=303)
        self.site.set_cookie(response, cookie)
        return response

    async def logout(self, admin: AdminRequest, _: object) -> Response:
        token = admin.request.cookies.get(COOKIE, "")
        AdminSessions(admin.store.db).close(token)
        self.site.audit(admin, "logout")
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        self.site.clear_cookie(response)
        return response


def _local(target: str) -> str:
    """A page of the dashboard to go to after logging in; anything else is ignored (no open
    redirect: not another site, not a scheme-relative //host)."""
    if target.startswith(f"{PREFIX}/") and not target.startswith("//") and "\\" not in target:
        return target
    return ""
