"""The admin dashboard, under ``/admin/`` of the web app: the list, each reader's history and
each issue's report, behind a login. It shows and manages; sending stays on the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute, Route

from .issues import Issues
from .lists import Lists
from .login import Login
from .overview import Overview
from .readers import Readers
from .site import PREFIX, AdminSite

if TYPE_CHECKING:
    from ..app import WebApp

__all__ = ["admin_routes"]


def admin_routes(web: WebApp) -> list[BaseRoute]:
    site = AdminSite(web)
    login, overview, readers = Login(site), Overview(site), Readers(site)
    lists, issues = Lists(site), Issues(site)
    page, action = site.page, site.action
    reader = f"{PREFIX}/subscribers/{{reader_id:int}}"
    return [
        Route(f"{PREFIX}/", page(overview.overview), methods=["GET"]),
        Route(f"{PREFIX}/login", login.login, methods=["GET", "POST"]),
        Route(f"{PREFIX}/logout", action(login.logout), methods=["POST"]),
        Route(f"{PREFIX}/activity", page(overview.activity), methods=["GET"]),
        Route(f"{PREFIX}/subscribers", page(readers.list), methods=["GET"]),
        Route(reader, page(readers.reader), methods=["GET"]),
        *(
            Route(f"{reader}/{name}", action(getattr(readers, name)), methods=["POST"])
            for name in ("unsubscribe", "reactivate", "settings", "erase")
        ),
        Route(f"{PREFIX}/import", page(lists.form), methods=["GET"]),
        Route(f"{PREFIX}/import", action(lists.upload, max_files=1), methods=["POST"]),
        Route(f"{PREFIX}/export", page(lists.export), methods=["GET"]),
        Route(f"{PREFIX}/issues", page(issues.list), methods=["GET"]),
        Route(f"{PREFIX}/issues/{{issue_id}}", page(issues.issue), methods=["GET"]),
    ]
