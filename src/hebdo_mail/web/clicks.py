"""Counted links: ``/l/<issue-id>/<n>/<mac>`` answers with a 303 to the link's URL and adds one
to that link's count. A link that is not one of an issue's (an unknown number, a forged MAC) is
a 404, never a redirect: nobody can use the site to send people elsewhere.

What is counted is a person following a link, as far as a request that names nobody can tell:
- HEAD requests, prefetches and declared robots (link previews, crawlers) get the redirect and
  count nothing, and so do the links of an issue not sent yet (a proof copy's);
- mail security scanners open every link of a message as it arrives: a client that fetches
  two different links of one issue within ``WINDOW`` seconds counts for nothing. A client is its
  network (an IPv4 /24, an IPv6 /64), since scanners work from pools of neighbouring addresses
  and IPv6 hosts change address within their /64. So a click waits ``WINDOW`` seconds in this
  process's memory before it is counted, and its client is forgotten then; the store only ever
  gets (issue, link, number of clicks).
The counts live in the store, which every worker process of ``serve`` adds to; the scanner
filter is per process.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..errors import HebdoError
from ..publish.i18n import N_
from ..publish.issue import Issue
from ..publish.links import OutgoingLinks
from ..publish.render import outgoing_links

if TYPE_CHECKING:
    from .app import WebApp

WINDOW = 2.0  # seconds: two links of one issue fetched closer than this are a scanner's
MAX_VISITS = 50_000  # clients held at once; past it the oldest are settled early
log = logging.getLogger(__name__)

# Headers with which browsers and mail apps announce a fetch nobody asked for.
PREFETCH_HEADERS = ("purpose", "sec-purpose", "x-purpose", "x-moz")
PREFETCH_WORDS = ("prefetch", "preview", "prerender")
# User agents of programs that say they are not a person: chat apps' link previews, crawlers.
ROBOTS = re.compile(r"bot\b|spider|crawler|preview|facebookexternalhit|whatsapp", re.I)

Click = tuple[str, int, str]  # issue, link number, url


@dataclass
class _Visit:
    links: dict[int, str]  # the links this client fetched: number -> url
    last: float  # when it fetched the latest
    scanner: bool = False


@dataclass
class ClickFilter:
    """Clicks in, clicks to count out (pure: time comes from ``clock``)."""

    window: float = WINDOW
    clock: Callable[[], float] = time.monotonic
    visits: dict[tuple[str, str], _Visit] = field(default_factory=dict, init=False)
    _ready: Counter[Click] = field(default_factory=Counter, init=False)

    def hit(self, client: str, issue_id: str, link: int, url: str) -> None:
        now = self.clock()
        key = (client, issue_id)
        visit = self.visits.get(key)
        if visit is not None and now - visit.last >= self.window:
            self._settle(key)
            visit = None
        if visit is None:
            if len(self.visits) >= MAX_VISITS:
                self._settle(next(iter(self.visits)))
            self.visits[key] = _Visit({link: url}, now)
            return
        if link not in visit.links:  # the same link again (a double click) is one click
            visit.scanner = True
            visit.links[link] = url
        visit.last = now

    def settle(self, *, everything: bool = False) -> Counter[Click]:
        """The clicks whose window has passed (or all of them, when the process stops), each
        client then forgotten; a scanner's fetches are dropped."""
        now = math.inf if everything else self.clock()
        for key in [k for k, v in self.visits.items() if now - v.last >= self.window]:
            self._settle(key)
        ready, self._ready = self._ready, Counter()
        return ready

    def next_due(self) -> float | None:
        """Seconds until the oldest pending click can be settled, if any is pending."""
        if not self.visits:
            return None
        oldest = min(visit.last for visit in self.visits.values())
        return max(0.0, oldest + self.window - self.clock())

    def _settle(self, key: tuple[str, str]) -> None:
        visit = self.visits.pop(key)
        if not visit.scanner:
            ((link, url),) = visit.links.items()
            self._ready[(key[1], link, url)] += 1


def is_prefetch(request: Request) -> bool:
    """A fetch no person asked for: a prefetch, or a program that says it is one."""
    return bool(ROBOTS.search(request.headers.get("user-agent", ""))) or any(
        word in request.headers.get(name, "").lower()
        for name in PREFETCH_HEADERS
        for word in PREFETCH_WORDS
    )


def client_network(request: Request) -> str:
    """The client as the scanner filter knows it: its network, not its address."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an IP address (a test client, a Unix socket)
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


class ClickCounter:
    """The endpoint, the issues' link tables, and the timer that moves settled clicks to the
    store."""

    def __init__(self, web: WebApp, clicks: ClickFilter | None = None) -> None:
        self.web = web
        self.filter = clicks or ClickFilter()
        self._links: dict[str, tuple[Issue, OutgoingLinks]] = {}
        self._published: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._writes: set[asyncio.Task[None]] = set()

    def links_of(self, issue_id: str) -> OutgoingLinks | None:
        """The issue's link table, worked out as the send did (kept while the issue is)."""
        issue = self.web.archive.issue(issue_id, published=False)
        if issue is None:
            return None
        cached = self._links.get(issue_id)
        if cached is None or cached[0] is not issue:
            table = outgoing_links(issue, self.web.workspace, self.web.secret)
            cached = self._links[issue_id] = (issue, table)
        return cached[1]

    async def follow(self, request: Request) -> Response:
        issue_id = request.path_params["issue_id"]
        number = request.path_params["number"]
        links = self.links_of(issue_id)
        target = links.target(number, request.path_params["mac"]) if links else None
        if links is None or target is None:
            return self.web.error(request, 404, N_("This link does not exist."))
        if request.method == "GET" and not is_prefetch(request) and self.published(issue_id):
            self.filter.hit(client_network(request), issue_id, number, links.links[number - 1])
            self._schedule()
        # Not cached: every real click must reach us to be counted.
        return RedirectResponse(target, status_code=303, headers={"cache-control": "no-store"})

    def published(self, issue_id: str) -> bool:
        """Clicks count once the issue has been sent: a proof copy's links lead on, uncounted."""
        if issue_id not in self._published and self.web.archive.published(issue_id):
            self._published.add(issue_id)
        return issue_id in self._published

    def _schedule(self) -> None:
        due = self.filter.next_due()
        if self._timer is None and due is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(due + 0.01, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        ready = self.filter.settle()
        if ready:
            write = asyncio.get_running_loop().create_task(asyncio.to_thread(self.record, ready))
            self._writes.add(write)
            write.add_done_callback(self._writes.discard)
        self._schedule()

    async def close(self) -> None:
        """When the server stops: what is pending is settled now, not lost."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        ready = self.filter.settle(everything=True)
        if ready:
            await asyncio.to_thread(self.record, ready)
        if self._writes:
            await asyncio.gather(*self._writes)

    def record(self, ready: Counter[Click]) -> None:
        by_issue: dict[str, dict[tuple[int, str], int]] = {}
        for (issue_id, link, url), count in ready.items():
            by_issue.setdefault(issue_id, {})[(link, url)] = count
        try:
            with self.web.store() as store:
                for issue_id, clicks in by_issue.items():
                    store.tallies.add_clicks(issue_id, clicks)
        except HebdoError as exc:
            log.warning("%d clicks not counted: %s", sum(ready.values()), exc)
