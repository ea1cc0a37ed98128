"""Counted links: the same URL in every copy, a 303 to the link's own URL, and counts that leave
out HEAD, prefetches, forged links and scanner bursts (the real app, the real store)."""

from __future__ import annotations

import email
import re
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hebdo_mail.web.app import create_app
from hebdo_mail.web.clicks import ClickFilter
from hebdo_mail.workspace import load_workspace, write_secret

from .helpers import (
    BOTH_STORES,
    EXAMPLE_ISSUE,
    Result,
    append_settings,
    request,
    serving,
    store_of,
    wait_until,
)

pytestmark = BOTH_STORES

PFP = "https://www.nato.int/pfp/"  # the example issue's first link, in both editions
TRACKED = re.compile(r"https://hebdo\.example\.org(/l/2006-50/\d+/[A-Za-z0-9_-]+)")


class Clock:
    """A clock the test moves: the scanner window is judged by it, not by the machine's speed."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sent_copies(site: Path) -> dict[str, EmailMessage]:
    copies = {}
    for path in (site / "outbox" / EXAMPLE_ISSUE / "new").iterdir():
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        copies[str(message["Delivered-To"])] = message
    return copies


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def publish(workspace: Path, cli: Callable[..., Result], tracking: str) -> Path:
    write_secret(workspace / ".hebdo-secret")
    append_settings(workspace, tracking)
    assert cli("subscribers", "import", "subscribers.example.csv", cwd=workspace).code == 0
    assert cli("send", EXAMPLE_ISSUE, cwd=workspace).code == 0
    return workspace


@pytest.fixture
def site(workspace: Path, cli: Callable[..., Result]) -> Path:
    """The example issue sent to the outbox with clicks counted and a ref."""
    return publish(workspace, cli, '[tracking]\nclicks = true\nref = "hebdo"\n')


def tracked_paths(site: Path) -> list[str]:
    """The counted links of a French reader's copy, in order."""
    html = html_of(sent_copies(site)["helene.lefevre@example.org"])
    return list(dict.fromkeys(TRACKED.findall(html)))


def clicks(site: Path) -> dict[int, int]:
    with store_of(site) as store:
        return {row.link: row.clicks for row in store.tallies.clicks(EXAMPLE_ISSUE)}


def app_with(site: Path, clock: Clock) -> TestClient:
    app = create_app(load_workspace(site, explicit=True), clicks=ClickFilter(clock=clock))
    return TestClient(app, follow_redirects=False)


def test_two_readers_copies_carry_the_same_tracked_links(site: Path) -> None:
    copies = sent_copies(site)
    readers = ["helene.lefevre@example.org", "zoe.nguyen@example.fr"]
    masked = []
    for reader in readers:
        message = copies[reader]
        html = html_of(message)
        unsubscribe = str(message["List-Unsubscribe"]).split(">")[0].lstrip("<")
        token = unsubscribe.split("?")[0].rsplit("/", 1)[1]  # the unsubscribe and preferences links
        name = message["To"].addresses[0].display_name
        for personal in (token, reader, name):
            html = html.replace(personal, "PERSONAL")
        masked.append(html)
    assert len(TRACKED.findall(masked[0])) >= 2
    assert masked[0] == masked[1]  # nothing but the personal fields tells two copies apart
    text = copies[readers[0]].get_body(("plain",)).get_content()
    assert set(TRACKED.findall(text)) == set(TRACKED.findall(masked[0]))
    assert PFP not in masked[0]  # the link's own URL is only in the redirect


def test_a_click_redirects_to_the_link_and_is_counted_once_its_window_has_passed(
    site: Path,
) -> None:
    clock = Clock()
    first = tracked_paths(site)[0]
    with app_with(site, clock) as client:
        response = client.get(first)
        assert response.status_code == 303
        assert response.headers["location"] == PFP + "?ref=hebdo"
        assert "no-store" in response.headers["cache-control"]
        assert clicks(site) == {}  # waiting out the scanner window, in memory only
    assert clicks(site) == {1: 1}  # settled when the server stopped


def test_the_running_server_counts_a_click_by_itself(site: Path) -> None:
    first = tracked_paths(site)[0]
    app = create_app(load_workspace(site, explicit=True))
    with TestClient(app, follow_redirects=False) as client:
        assert client.get(first).status_code == 303
        wait_until(lambda: clicks(site) == {1: 1}, timeout=20, what="the click to be counted")


def test_head_prefetch_forgeries_and_scanner_bursts_count_nothing(site: Path) -> None:
    clock = Clock()
    paths = tracked_paths(site)
    first = paths[0]
    number, mac = first.split("/")[-2:]
    forged = [
        first[:-1] + ("A" if first[-1] != "A" else "B"),  # a MAC one character off
        f"/l/{EXAMPLE_ISSUE}/99/{mac}",  # no such link
        f"/l/{EXAMPLE_ISSUE}/0/{mac}",
        f"/l/{EXAMPLE_ISSUE}/{number}/{mac}x",
        f"/l/2006-49/{number}/{mac}",  # another issue
        f"/l/..%2F..%2Fhebdo.toml/{number}/{mac}",
        f"/l/{'a' * 300}/{number}/{mac}",  # longer than a file name may be
        f"/l/{EXAMPLE_ISSUE}/{'9' * 40}/{mac}",
        f"/l/{EXAMPLE_ISSUE}/{number}/{'A' * 5000}",
    ]
    with app_with(site, clock) as client:
        assert client.head(first).status_code == 303
        for header in (
            {"Sec-Purpose": "prefetch"}, {"Purpose": "prefetch"}, {"X-Moz": "prefetch"},
            {"User-Agent": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"},
        ):  # fmt: skip
            assert client.get(first, headers=header).status_code == 303
        for path in forged:
            response = client.get(path)
            assert response.status_code == 404, path
            assert "location" not in response.headers
        clock.now += 10
        # A scanner opens every link of the message as it arrives.
        for path in paths:
            assert client.get(path).status_code == 303
            clock.now += 0.3
    assert clicks(site) == {}
    with store_of(site) as store:
        assert store.db.execute("SELECT count(*) FROM link_clicks").fetchone()[0] == 0


def test_readers_are_counted_apart_and_workers_add_to_the_same_counts(site: Path) -> None:
    clock = Clock()
    first, second = tracked_paths(site)[:2]
    workspace = load_workspace(site, explicit=True)
    filters = [ClickFilter(clock=clock) for _ in range(3)]
    workers = [create_app(workspace, clicks=f) for f in filters]  # three processes of `serve`
    with (
        TestClient(workers[0], client=("192.0.2.1", 5000), follow_redirects=False) as one,
        TestClient(workers[1], client=("198.51.100.2", 5000), follow_redirects=False) as two,
        TestClient(workers[2], client=("2001:db8:1::3", 5000), follow_redirects=False) as three,
    ):
        for client in (one, two, three):
            assert client.get(first).status_code == 303
        one.get(first)  # a double click is one click
        clock.now += 60
        three.get(second)  # another link, a minute later: a reader, not a scanner
    assert clicks(site) == {1: 3, 2: 1}
    assert all(f.visits == {} for f in filters)  # no client stays in memory


def test_a_scanners_pool_of_neighbouring_addresses_is_one_client(site: Path) -> None:
    clock = Clock()
    first, second = tracked_paths(site)[:2]
    app = create_app(load_workspace(site, explicit=True), clicks=ClickFilter(clock=clock))
    pools = [("192.0.2.10", "192.0.2.211"), ("2001:db8::10", "2001:db8::ffff:1")]
    for one, other in pools:
        with (
            TestClient(app, client=(one, 1), follow_redirects=False) as a,
            TestClient(app, client=(other, 1), follow_redirects=False) as b,
        ):
            a.get(first)
            clock.now += 0.5
            b.get(second)
            clock.now += 60
    assert clicks(site) == {}


def test_clicks_settle_to_counts() -> None:
    clock = Clock()
    filter_ = ClickFilter(clock=clock)
    filter_.hit("a", EXAMPLE_ISSUE, 1, PFP)
    filter_.hit("a", EXAMPLE_ISSUE, 1, PFP)  # again at once: one click
    filter_.hit("b", EXAMPLE_ISSUE, 1, PFP)
    filter_.hit("c", EXAMPLE_ISSUE, 1, PFP)
    clock.now += 1.9
    filter_.hit("c", EXAMPLE_ISSUE, 2, "https://example.org/x")  # c is a scanner
    assert filter_.settle() == {}  # nothing is due before its window has passed
    clock.now += 2.0
    assert filter_.settle() == {(EXAMPLE_ISSUE, 1, PFP): 2}
    assert filter_.visits == {} and filter_.next_due() is None
    filter_.hit("a", EXAMPLE_ISSUE, 2, "https://example.org/x")  # a, later: a new click
    clock.now += 2.5
    filter_.hit("a", EXAMPLE_ISSUE, 1, PFP)
    assert filter_.settle(everything=True) == {
        (EXAMPLE_ISSUE, 2, "https://example.org/x"): 1,
        (EXAMPLE_ISSUE, 1, PFP): 1,
    }


def test_without_counting_links_are_as_written_or_carry_the_ref(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    publish(workspace, cli, '[tracking]\nref = "hebdo"\nref_param = "utm_source"\n')
    html = html_of(sent_copies(workspace)["helene.lefevre@example.org"])
    assert f'href="{PFP}?utm_source=hebdo"' in html and not TRACKED.search(html)
    page = TestClient(create_app(load_workspace(workspace, explicit=True))).get(
        f"/issues/{EXAMPLE_ISSUE}/fr/"
    )
    assert f'href="{PFP}"' in page.text  # the archive's page is not the email


def test_by_default_links_are_as_the_editor_wrote_them(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    publish(workspace, cli, "")
    html = html_of(sent_copies(workspace)["helene.lefevre@example.org"])
    assert f'href="{PFP}"' in html and not TRACKED.search(html) and "?ref=" not in html


def test_a_proof_copys_links_lead_on_but_count_only_once_the_issue_is_sent(
    ws: Path, cli: Callable[..., Result]
) -> None:
    append_settings(ws, "[tracking]\nclicks = true\n")
    assert cli("send", EXAMPLE_ISSUE, "--test", "editor@example.org", cwd=ws).code == 0
    (proof,) = (ws / "outbox" / "test" / "new").iterdir()
    message = email.message_from_bytes(proof.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    link = TRACKED.findall(html_of(message))[0]
    clock = Clock()
    with app_with(ws, clock) as client:
        assert client.get(link).headers["location"] == PFP
    assert cli("subscribers", "import", "subscribers.example.csv", cwd=ws).code == 0
    assert cli("send", EXAMPLE_ISSUE, cwd=ws).code == 0
    assert clicks(ws) == {}
    with app_with(ws, clock) as client:
        assert client.get(link).status_code == 303  # the same link as the readers'
    assert clicks(ws) == {1: 1}


def test_serve_with_workers_counts_clicks_and_loses_none_when_it_stops(site: Path) -> None:
    first = tracked_paths(site)[0]
    with serving(site, "--workers", "2") as port:
        status, _ = request(port, "GET", first)
        assert status == 303
    # The server stopped at once: the click, still in its scanner window, was counted then.
    assert clicks(site) == {1: 1}
