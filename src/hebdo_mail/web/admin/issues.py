"""The issues that were sent: a list with their delivery counts, and each issue's report: the
figures of ``hebdo-mail report`` (deliver/report.py), a chart of the send over time, its failures
grouped by reply and by domain, bounces by reason, clicks per link. What the send recorded is read
through ``DeliveryRecords``, from the file logs or the shared ledger alike."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable

from starlette.responses import Response

from ...deliver.delivery_records import ISSUE_ID, TIMED, DeliveryRecords
from ...deliver.report import IssueReport, issue_report
from ...deliver.transport import without_addresses
from ...publish.i18n import N_
from ...vocabulary import Event
from .charts import Chart, Series, bar_chart
from .site import AdminRequest, AdminSite

IssueFigures = tuple[IssueReport, Counter[tuple[str, str]], list[str]]
STEPS = (1, 5, 15, 60, 240, 1440)  # minutes per bar of the send's chart
MAX_BARS = 60


class Issues:
    def __init__(self, site: AdminSite) -> None:
        self.site = site
        self.workspace = site.workspace

    async def list(self, admin: AdminRequest) -> Response:
        _ = self.site.web.gettext(admin.lang)
        rows = await self.site.reading(lambda records: records.issues())
        return self.site.render(admin, "issues.html", heading=_(N_("Issues")), rows=rows)

    async def issue(self, admin: AdminRequest) -> Response:
        _ = self.site.web.gettext(admin.lang)
        issue_id = str(admin.request.path_params["issue_id"])
        if not ISSUE_ID.fullmatch(issue_id):
            return self.never_sent(admin)

        def read(records: DeliveryRecords) -> IssueFigures | None:
            """The command's figures, and the log's times and replies."""
            if records.progress(issue_id) is None:
                return None
            report = issue_report(self.workspace, issue_id)
            return report, records.per_minute(issue_id), records.final_failures(issue_id)

        found = await self.site.reading(read)
        if found is None:
            return self.never_sent(admin)
        report, per_minute, failures = found
        return self.site.render(
            admin, "issue.html", heading=_(N_("Issue %(issue)s")) % {"issue": issue_id},
            report=report, chart=send_chart(per_minute, _), by_reply=failures_by_reply(failures),
        )  # fmt: skip

    def never_sent(self, admin: AdminRequest) -> Response:
        return self.site.error(admin, 404, N_("No issue of that name was sent."))


def send_chart(per_minute: Counter[tuple[str, str]], gettext: Callable[[str], str]) -> Chart | None:
    """Messages per minute (or per longer step for a long send) by outcome."""
    moments = {
        (dt.datetime.fromisoformat(minute), event): number
        for (minute, event), number in per_minute.items()
    }
    if not moments:
        return None
    first = min(m for m, _e in moments)
    last = max(m for m, _e in moments)
    span = int((last - first).total_seconds() // 60) + 1
    step = next((s for s in STEPS if span / s <= MAX_BARS), STEPS[-1])
    bars = -(-span // step)  # ceiling: the last minute has its bar, no more
    counts = {event: [0] * bars for event in TIMED}
    for (moment, outcome), number in moments.items():
        counts[Event(outcome)][int((moment - first).total_seconds() // 60) // step] += number
    one_day = first.date() == last.date()
    labels = [
        (first + dt.timedelta(minutes=n * step)).strftime("%H:%M" if one_day else "%d/%m %H:%M")
        for n in range(bars)
    ]
    names = {Event.SENT: N_("sent"), Event.DEFERRED: N_("deferred"), Event.FAILED: N_("failed")}
    tones = {Event.SENT: "good", Event.DEFERRED: "warn", Event.FAILED: "bad"}
    label = gettext(N_("Messages per %(minutes)s minute(s) by outcome (UTC)")) % {"minutes": step}
    return bar_chart(
        label, gettext(N_("Time (UTC)")), labels,
        [Series(gettext(names[e]), counts[e], tones[e]) for e in TIMED], stacked=True,
    )  # fmt: skip


def failures_by_reply(replies: list[str]) -> list[tuple[str, int]]:
    """The failed recipients grouped by what the relay answered (addresses masked), most first."""
    return Counter(without_addresses(reply) for reply in replies).most_common(20)
