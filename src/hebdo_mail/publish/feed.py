"""The archive as Atom 1.0 feeds (RFC 4287), written by feedgen: ``feed.xml`` in the default
language and ``feed.<lang>.xml`` for each language an issue was published in. Each entry is a
published issue, newest first, linking its web page, with its subject, date and summary (the
preheader, else the lead story's summary or title). An issue without that language's edition
appears in the default one, as on the cover page.

The web app serves the feeds and ``build --site`` writes them; both come from here.
"""

from __future__ import annotations

import datetime as dt

from ..workspace import Workspace
from .issue import Issue

ATOM_TYPE = "application/atom+xml"


def feed_name(lang: str, default: str) -> str:
    return "feed.xml" if lang == default else f"feed.{lang}.xml"


def feed_languages(issues: list[Issue], default: str) -> list[str]:
    """The languages with a feed: the default, and every published edition's."""
    return sorted({default, *(code for issue in issues for code in issue.editions)})


def feed_link(lang: str, issues: list[Issue], default: str) -> str:
    """The feed a page in ``lang`` announces: its language's, else the default one."""
    return feed_name(lang if lang in feed_languages(issues, default) else default, default)


def atom_feed(workspace: Workspace, issues: list[Issue], lang: str) -> bytes:
    """The feed of ``issues`` (published, newest first) in ``lang``."""
    from feedgen.feed import FeedGenerator  # here: rendering an issue needs none of it

    settings = workspace.settings.newsletter
    base = settings.base_url
    url = f"{base}/{feed_name(lang, settings.language)}"
    feed = FeedGenerator()
    feed.id(url)
    feed.title(settings.name_in(lang))
    feed.author({"name": settings.name_in(lang)})
    feed.link(href=f"{base}/", rel="alternate", type="text/html")
    feed.link(href=url, rel="self", type=ATOM_TYPE)
    feed.language(lang)
    feed.generator("hebdo-mail")
    # A feed must say when it last changed: the newest issue's date (a fixed one while there is
    # none, so an unchanged archive gives the same bytes).
    feed.updated(_moment(issues[0].date) if issues else dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    for issue in issues:
        edition = issue.editions.get(lang) or issue.editions[issue.default_language]
        page = f"{base}/issues/{issue.id}/{edition.lang}/"
        entry = feed.add_entry(order="append")
        entry.id(page)
        entry.title(edition.subject)
        entry.link(href=page, rel="alternate", type="text/html", hreflang=edition.lang)
        entry.published(_moment(issue.date))
        entry.updated(_moment(issue.date))
        summary = edition.preheader or edition.lead.summary or edition.lead.title
        entry.summary(summary)
    data: bytes = feed.atom_str(pretty=True)
    return data


def _moment(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)
