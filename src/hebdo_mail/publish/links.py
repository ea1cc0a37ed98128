"""An issue's links as readers get them in the email (pure, no I/O).

With ``[tracking] clicks`` on, each web link of the articles becomes
``<base_url>/l/<issue-id>/<n>/<mac>``: ``n`` numbers the issue's distinct links in reading order
and the MAC binds the number to the issue and to the URL, so the web app can send a click on to
the URL the issue holds and nowhere else. The URL is the same in every reader's copy: a click
says which link was followed, never who followed it. With ``[tracking] ref``, outgoing links
(or the redirect's target) carry ``?ref=<value>`` for the publisher's own analytics.

The table of links is worked out from the issue's articles, so the web app finds link ``n``
the way the send numbered it; rendering only looks URLs up in it.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .articles import Article
from .issue import Issue
from .markdown import is_external, iter_inline

MAC_LENGTH = 22  # characters: 16 bytes of HMAC-SHA256, base64url


def is_web_link(url: str) -> bool:
    return url[:8].lower().startswith(("http://", "https://"))


def link_mac(secret: bytes, issue_id: str, number: int, url: str) -> str:
    digest = hmac.digest(secret, f"link\n{issue_id}\n{number}\n{url}".encode(), "sha256")
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def with_ref(url: str, param: str, value: str) -> str:
    """The URL with ``param=value`` in its query, unless it names that parameter already."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == param for name, _ in query):
        return url
    joined = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=joined + urlencode({param: value})))


class FileResolver(Protocol):
    """The absolute URLs of the issue folder's files (render.FileLinks)."""

    def link(self, href: str) -> str: ...
    def download(self, name: str) -> str: ...


def article_links(issue: Issue, files: FileResolver) -> list[str]:
    """Every web link of the issue's articles (bodies and downloads), each once, in reading
    order: the default edition first, then the others."""
    found: dict[str, None] = {}
    codes = [issue.default_language, *(c for c in issue.editions if c != issue.default_language)]
    for code in codes:
        for article in issue.editions[code].articles:
            for url in _links_of(article, files):
                if is_web_link(url):
                    found.setdefault(url, None)
    return list(found)


def _links_of(article: Article, files: FileResolver) -> Iterator[str]:
    for child, _ in iter_inline(article.tokens):
        if child.type == "link_open":
            href = str(child.attrGet("href") or "")
            yield href if is_external(href) else files.link(href)
    for media in article.media:
        yield files.download(media.target) if media.is_file else media.target


@dataclass(frozen=True)
class OutgoingLinks:
    """How the email's links are written: counted, marked with a ref, or as the editor wrote."""

    issue_id: str = ""
    base_url: str = ""
    links: tuple[str, ...] = ()  # link n is links[n - 1]
    secret: bytes | None = None  # the key of the MACs; None: clicks are not counted
    ref: tuple[str, str] | None = None  # (parameter, value)
    numbers: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        numbers = {url: n for n, url in enumerate(self.links, start=1)}
        object.__setattr__(self, "numbers", numbers)

    @property
    def counted(self) -> bool:
        return self.secret is not None

    def __call__(self, url: str) -> str:
        """The URL as it appears in the email."""
        if not is_web_link(url):
            return url
        number = self.numbers.get(url)
        if self.secret is not None and number is not None:
            mac = link_mac(self.secret, self.issue_id, number, url)
            return f"{self.base_url}/l/{self.issue_id}/{number}/{mac}"
        return self.destination(url)

    def destination(self, url: str) -> str:
        """Where a reader lands: the URL, with the ref when one is set."""
        return with_ref(url, *self.ref) if self.ref else url

    def target(self, number: int, mac: str) -> str | None:
        """Where a counted link leads, or None when it is not one of this issue's (an unknown
        number, a forged or stale MAC)."""
        if self.secret is None or not 1 <= number <= len(self.links) or len(mac) != MAC_LENGTH:
            return None
        url = self.links[number - 1]
        if not hmac.compare_digest(mac, link_mac(self.secret, self.issue_id, number, url)):
            return None
        return self.destination(url)


AS_WRITTEN = OutgoingLinks()
