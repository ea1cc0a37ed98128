"""The issues that were sent: a list with their delivery counts (from the index of the send logs),
and each issue's report: its figures, a chart of the send over time, its failures grouped by reply
and by domain, its clicks."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from starlette.responses import Response

from ...deliver.delivery_index import progress
from ...deliver.ledger import log_path
from ...deliver.sendlog import read_log, recipient_events
from ...publish.i18n import N_
from ...vocabulary import Event, Outcome
from ...workspace import Workspace
from .charts import Chart, Series, bar_chart
from .figures import issue_figures
from .site import AdminRequest, AdminSite

ISSUE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
# Relays name the recipient in their replies: masked, one refusal reads the same for everyone.
ADDRESS = re.compile(r"<?[^\s<>@\"']+@[^\s<>\"']+>?")
STEPS = (1, 5, 15, 60, 240, 1440)  # minutes per bar of the send's chart
MAX_BARS = 60
TIMED = (Event.SENT, Event.DEFERRED, Event.FAILED)


def sent_issues(workspace: Workspace) -> list[str]:
    """Issues with a send log, the latest written first."""
    if not workspace.logs_dir.is_dir():
        return []
    logs = sorted(workspace.logs_dir.glob("*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [log.stem for log in logs if ISSUE_ID.fullmatch(log.stem)]


class Issues:
    def __init__(self, site: AdminSite) -> None:
        self.site = site
        self.workspace = site.workspace

    async def list(self, admin: AdminRequest) -> Response:
        _ = self.site.web.gettext(admin.lang)
        await self.site.index_logs()
        rows = [progress(admin.store.db, issue) for issue in sent_issues(self.workspace)]
        return self.site.render(
            admin, "issues.html", heading=_(N_("Issues")), rows=[r for r in rows if r]
        )

    async def issue(self, admin: AdminRequest) -> Response:
        _ = self.site.web.gettext(admin.lang)
        issue_id = str(admin.request.path_params["issue_id"])
        path = log_path(self.workspace, issue_id)
        if not ISSUE_ID.fullmatch(issue_id) or not path.is_file():
            return self.site.error(admin, 404, N_("No issue of that name was sent."))
        figures = issue_figures(self.workspace, admin.store, issue_id)
        chart = send_chart(path, _)
        return self.site.render(
            admin, "issue.html", heading=_(N_("Issue %(issue)s")) % {"issue": issue_id},
            figures=figures, chart=chart, by_reply=failures_by_reply(path),
        )  # fmt: skip


def send_chart(path: Path, gettext: Callable[[str], str]) -> Chart | None:
    """Messages per minute (or per longer step for a long send) by outcome."""
    moments: Counter[tuple[dt.datetime, str]] = Counter()
    for event in recipient_events(path, warnings=[]):
        if event.event in TIMED:
            moment = dt.datetime.fromisoformat(event.time).replace(second=0, microsecond=0)
            moments[(moment, event.event)] += 1
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


def failures_by_reply(path: Path) -> list[tuple[str, int]]:
    """The failed recipients grouped by what the relay answered, most first."""
    state = read_log(path)
    replies: dict[str, str] = {}
    for event in recipient_events(path, warnings=[]):
        if event.event == Event.FAILED:
            replies[event.recipient] = f"{event.code or ''} {event.reply or ''}".strip()
    grouped = Counter(
        ADDRESS.sub("<address>", reply)
        for recipient, reply in replies.items()
        if state.status_of(recipient) == Outcome.FAILED
    )
    return grouped.most_common(20)
