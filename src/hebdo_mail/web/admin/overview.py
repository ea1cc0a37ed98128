"""The overview (the list's counts, its weekly changes, the last issues, a send running now) and
the activity page (the audit log)."""

from __future__ import annotations

import datetime as dt

from starlette.responses import Response

from ...audience.audit import AuditLog
from ...deliver.report import issue_report
from ...publish.i18n import N_, format_date
from ...vocabulary import Status
from .charts import Series, bar_chart
from .site import AdminRequest, AdminSite, page_number

WEEKS = 26  # the chart of the list covers half a year
LAST_ISSUES = 5
REFRESH = 5  # seconds between refreshes while a send runs
PER_PAGE = 50
LIST_ORDER = (Status.ACTIVE, Status.PENDING, Status.UNSUBSCRIBED, Status.BOUNCED)


class Overview:
    def __init__(self, site: AdminSite) -> None:
        self.site = site
        self.workspace = site.workspace

    async def overview(self, admin: AdminRequest) -> Response:
        _ = self.site.web.gettext(admin.lang)
        store = admin.store
        counts = store.stats()["status"]
        weeks = store.history.weekly(WEEKS)
        chart = bar_chart(
            _(N_("Readers who joined, unsubscribed and bounced, per week")),
            _(N_("Week of")),
            [format_date(w.week, admin.lang, "d MMM") for w in weeks],
            [
                Series(_(N_("joined")), [w.joined for w in weeks], "good"),
                Series(_(N_("unsubscribed")), [w.unsubscribed for w in weeks], "warn"),
                Series(_(N_("bounced")), [w.bounced for w in weeks], "bad"),
            ],
        )
        running, issues = await self.site.reading(
            lambda records: (
                records.running(),
                [issue_report(self.workspace, row.issue) for row in records.issues(LAST_ISSUES)],
            )
        )
        return self.site.render(
            admin, "overview.html", heading=_(N_("Overview")),
            counts={status: counts.get(status, 0) for status in LIST_ORDER},
            total=sum(counts.values()), chart=chart, issues=issues, running=running,
            refresh=REFRESH if running else 0,
            this_week=weeks[-1] if weeks else None, today=dt.date.today(),
        )  # fmt: skip

    async def activity(self, admin: AdminRequest) -> Response:
        _ = self.site.web.gettext(admin.lang)
        page = page_number(admin.request.query_params.get("page"))
        log = AuditLog(admin.store.db)
        entries = log.latest(offset=(page - 1) * PER_PAGE, limit=PER_PAGE)
        pages = max(1, -(-log.count() // PER_PAGE))
        return self.site.render(
            admin, "activity.html", heading=_(N_("Activity")), entries=entries, page=page,
            pages=pages,
        )  # fmt: skip
