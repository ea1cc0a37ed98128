"""The archive's Atom feeds, served and written by build --site: read back with feedparser, one
entry per published issue, newest first, and checked against RFC 4287's rules."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import feedparser
import pytest
from starlette.testclient import TestClient

from hebdo_mail.web.app import create_app
from hebdo_mail.workspace import load_workspace

from .helpers import EXAMPLE_ISSUE, Result

ATOM = "{http://www.w3.org/2005/Atom}"
BASE = "https://hebdo.example.org"


@pytest.fixture
def site(ws: Path, cli: Callable[..., Result]) -> Path:
    """Two issues: the example, sent, and the next one, sent too; a third drafted, unsent."""
    assert cli("subscribers", "import", "subscribers.example.csv", cwd=ws).code == 0
    assert cli("send", EXAMPLE_ISSUE, cwd=ws).code == 0
    assert cli("new", cwd=ws).code == 0
    article = ws / "issues" / "2006-51" / "article-1.md"
    article.write_text(
        "---\ntitle: La neige à Riga\nsection: news\nsummary: Le sommet se prépare.\n---\n"
        "Les préparatifs du sommet de Riga avancent sous la neige.\n",
        encoding="utf-8",
    )
    assert cli("send", "2006-51", cwd=ws).code == 0
    assert cli("new", cwd=ws).code == 0  # 2006-52: drafted, never sent
    return ws


def assert_atom_1_0(data: bytes) -> ET.Element:
    """The requirements of RFC 4287 a feed must meet (sections 4.1.1, 4.1.2, 3.3, 4.2.7)."""
    root = ET.fromstring(data)
    assert root.tag == f"{ATOM}feed"

    def one(parent: ET.Element, name: str) -> ET.Element:
        found = parent.findall(f"{ATOM}{name}")
        assert len(found) == 1, f"{parent.tag} must have exactly one atom:{name}"
        return found[0]

    def date(element: ET.Element) -> dt.datetime:
        text = element.text or ""
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
        return dt.datetime.fromisoformat(text)

    def absolute(iri: str) -> None:
        assert urlsplit(iri).scheme in ("http", "https", "tag", "urn"), iri

    def links(parent: ET.Element) -> list[ET.Element]:
        found = parent.findall(f"{ATOM}link")
        alternates = [
            (link.get("type"), link.get("hreflang"))
            for link in found
            if link.get("rel", "alternate") == "alternate"
        ]
        assert len(alternates) == len(set(alternates)), "one alternate per type and language"
        for link in found:
            absolute(link.get("href", ""))
        return found

    absolute(one(root, "id").text or "")
    assert (one(root, "title").text or "").strip()
    date(one(root, "updated"))
    feed_has_author = bool(root.findall(f"{ATOM}author"))
    for author in root.findall(f"{ATOM}author"):
        assert (one(author, "name").text or "").strip()
    assert any(link.get("rel") == "self" for link in links(root))
    for entry in root.findall(f"{ATOM}entry"):
        absolute(one(entry, "id").text or "")
        assert (one(entry, "title").text or "").strip()
        date(one(entry, "updated"))
        assert feed_has_author or entry.findall(f"{ATOM}author")
        entry_links = links(entry)
        if not entry.findall(f"{ATOM}content"):
            assert any(link.get("rel", "alternate") == "alternate" for link in entry_links)
    return root


def test_the_feeds_list_the_published_issues_newest_first(site: Path) -> None:
    client = TestClient(create_app(load_workspace(site, explicit=True)))
    response = client.get("/feed.xml")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    assert_atom_1_0(response.content)
    feed = feedparser.parse(response.content)
    assert not feed.bozo and feed.version == "atom10"
    assert feed.feed.title == "OTAN Hebdo" and feed.feed.language == "fr"
    assert [entry.link for entry in feed.entries] == [
        f"{BASE}/issues/2006-51/fr/",
        f"{BASE}/issues/2006-50/fr/",
    ]  # one per published issue: the drafted 2006-52 is not there
    newest, example = feed.entries
    assert newest.title == "OTAN Hebdo n°51 — 22 décembre 2006"
    assert newest.summary == "Le sommet se prépare."  # no preheader: the lead's summary
    assert example.summary.startswith("Le président du Kazakhstan au siège de l'OTAN")
    assert (example.updated_parsed.tm_year, example.updated_parsed.tm_yday) == (2006, 349)

    english = feedparser.parse(client.get("/feed.en.xml").content)
    assert english.feed.title == "NATO Update" and not english.bozo
    assert english.entries[1].title == "NATO Update No. 50 — December 15, 2006"
    # 2006-51 has no English edition: it is listed in French, as on the cover page
    assert english.entries[0].link == f"{BASE}/issues/2006-51/fr/"
    assert client.get("/feed.de.xml").status_code == 404
    assert client.get(f"/feed.{'a' * 300}.xml").status_code == 404
    moved = client.get("/feed.fr.xml", follow_redirects=False)
    assert moved.status_code == 308 and moved.headers["location"] == "/feed.xml"


def test_every_archive_page_links_its_feed(site: Path, cli: Callable[..., Result]) -> None:
    client = TestClient(create_app(load_workspace(site, explicit=True)))
    pages = {"/": "/feed.xml", "/issues/2006-50/fr/": "/feed.xml"}
    pages["/issues/2006-50/en/"] = "/feed.en.xml"
    for page, feed in pages.items():
        html = client.get(page).text
        link = re.search(r'<link rel="alternate" type="application/atom\+xml" href="([^"]+)"', html)
        assert link is not None, page
        assert urlsplit(urljoin(f"http://testserver{page}", link.group(1))).path == feed
        assert client.get(feed).status_code == 200

    target = site / "public"
    assert cli("build", "--site", str(target), cwd=site).code == 0
    for name in ("feed.xml", "feed.en.xml"):
        assert (target / name).read_bytes() == client.get(f"/{name}").content
    assert not (target / "feed.fr.xml").exists()
