"""The web app against a hostile web: cross-site posts, mail-bombing through the subscribe form,
a pending reader's request overwritten, links used twice, and requests meant to cause a 500.
(The same app over real sockets, proxies and slow clients: test_web_server.py.)"""

from __future__ import annotations

import email
import re
import sqlite3
from collections.abc import Callable
from email import policy
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hebdo_mail.audience.store import SubscriberStore
from hebdo_mail.audience.tokens import TokenSigner
from hebdo_mail.web.app import create_app
from hebdo_mail.workspace import load_secret, load_workspace

from .helpers import EXAMPLE_ISSUE, SITE, Result, append_settings, post_form

SECURITY = ("content-security-policy", "x-frame-options", "x-content-type-options")
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def site(ws: Path, cli: Callable[..., Result]) -> Path:
    cli("subscribers", "import", "subscribers.example.csv", cwd=ws)
    assert cli("send", EXAMPLE_ISSUE, cwd=ws).code == 0
    return ws


def client_of(site: Path, *, raise_server_exceptions: bool = True) -> TestClient:
    app = create_app(load_workspace(site, explicit=True))
    return TestClient(app, raise_server_exceptions=raise_server_exceptions)


@pytest.fixture
def client(site: Path) -> TestClient:
    return client_of(site)


def signer(site: Path) -> TokenSigner:
    list_id = load_workspace(site, explicit=True).settings.newsletter.list_identifier
    return TokenSigner(load_secret(site)[0], list_id)


def reader(site: Path, address: str) -> tuple[str, str, str | None, str] | None:
    with SubscriberStore.at(site / "hebdo.db") as store:
        found = store.get(address)
    return (found.status, found.name, found.lang, found.format) if found else None


def confirmations(site: Path) -> list[str]:
    """The confirmation links mailed so far, oldest first."""
    folder = site / "outbox" / "confirmations" / "new"
    links = []
    for path in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns) if folder.exists() else []:  # fmt: skip
        body = email.message_from_bytes(path.read_bytes(), policy=policy.default).get_content()
        links.append(re.search(r"https://hebdo\.example\.org(/confirm/\S+)", body).group(1))
    return links


def token_of(client: TestClient, path: str) -> str:
    return re.search(r'name="form_token" value="([^"]+)"', client.get(path).text).group(1)


# -- cross-site posts ---------------------------------------------------------------------------


def test_a_cross_site_post_is_refused_and_mails_nothing(client: TestClient, site: Path) -> None:
    token = token_of(client, "/subscribe")  # even with a genuine form token
    fields = f"email=victim%40example.org&form_token={token}"
    for headers in [
        {"origin": "https://evil.example", "content-type": "application/x-www-form-urlencoded"},
        {"origin": "https://evil.example", "content-type": "text/plain"},
        {"origin": "null", "content-type": "application/x-www-form-urlencoded"},
        {"referer": "https://evil.example/page", "content-type": "application/x-www-form-urlencoded"},
    ]:  # fmt: skip
        response = client.post("/subscribe", content=fields, headers=headers)
        assert response.status_code == 403, headers
    without_token = client.post(
        "/subscribe", data={"email": "victim@example.org"}, headers={"origin": SITE}
    )
    assert without_token.status_code == 403
    assert confirmations(site) == [] and reader(site, "victim@example.org") is None
    # The same form, from the site itself, goes through.
    assert post_form(client, "/subscribe", {"email": "victim@example.org"}).status_code == 200
    assert len(confirmations(site)) == 1


def test_one_click_needs_its_body_and_the_page_button_needs_the_site(
    client: TestClient, site: Path
) -> None:
    url = f"/unsubscribe/{signer(site).token('marc.dubois@example.net')}"
    assert client.post(url).status_code == 403  # an empty POST
    assert (
        client.post(url, content="x=1", headers={"content-type": "text/plain"}).status_code == 403
    )
    evil = post_form(client, url, {}, origin="https://evil.example")
    assert evil.status_code == 403 and reader(site, "marc.dubois@example.net")[0] == "active"
    # RFC 8058: a mail client's POST, no Origin, no token.
    assert client.post(url, data=ONE_CLICK).status_code == 200
    assert reader(site, "marc.dubois@example.net")[0] == "unsubscribed"
    other = f"/unsubscribe/{signer(site).token('zoe.nguyen@example.fr')}"
    assert post_form(client, other, {}).status_code == 200  # the page's own button
    assert reader(site, "zoe.nguyen@example.fr")[0] == "unsubscribed"


# -- mail-bombing and overwriting through the subscribe form ------------------------------------


def test_an_address_gets_one_confirmation_an_hour_and_a_few_a_day_whoever_asks(
    ws: Path, cli: Callable[..., Result]
) -> None:
    append_settings(ws, "[web]\nform_posts_per_minute = 1000\n")
    client = client_of(ws)
    for _ in range(15):
        assert post_form(client, "/subscribe", {"email": "target@example.org"}).status_code == 200
    assert len(confirmations(ws)) == 1
    # Without the hourly spacing, the daily cap still holds.
    append_settings(ws, "confirmation_interval = 0\nconfirmations_per_day = 3\n")
    client = client_of(ws)
    for _ in range(15):
        post_form(client, "/subscribe", {"email": "target@example.org"})
    assert len(confirmations(ws)) == 3


def test_what_the_form_asked_applies_only_with_its_own_link_and_a_link_works_once(
    ws: Path,
) -> None:
    append_settings(ws, "[web]\nconfirmation_interval = 0\n")
    client = client_of(ws)
    post_form(client, "/subscribe", {"email": "ines@example.org", "name": "Inès", "lang": "fr"})
    post_form(
        client, "/subscribe",
        {"email": "ines@example.org", "name": "Someone Else", "lang": "en", "format": "text"},
    )  # fmt: skip
    first, second = confirmations(ws)
    assert reader(ws, "ines@example.org") == ("pending", "", None, "html")  # nothing applied yet
    assert post_form(client, first, {}).status_code == 200
    assert reader(ws, "ines@example.org") == ("active", "Inès", "fr", "html")
    assert post_form(client, first, {}).status_code == 400  # used
    assert post_form(client, second, {}).status_code == 400  # made before the confirmation
    assert reader(ws, "ines@example.org") == ("active", "Inès", "fr", "html")


def test_a_link_is_dead_once_the_reader_unsubscribed_after_it_was_made(ws: Path) -> None:
    client = client_of(ws)
    post_form(client, "/subscribe", {"email": "paul@example.org", "name": "Paul"})
    (link,) = confirmations(ws)
    with SubscriberStore.at(ws / "hebdo.db") as store:
        store.mark_unsubscribed("paul@example.org", source="test")
    assert post_form(client, link, {}).status_code == 400
    assert reader(ws, "paul@example.org")[0] == "unsubscribed"


# -- never a 500 ---------------------------------------------------------------------------------


def test_hostile_paths_and_tokens_get_a_4xx_page_never_a_500(
    client: TestClient, site: Path
) -> None:
    long = "a" * 300  # longer than a file name may be (ENAMETOOLONG)
    for path in [f"/issues/{long}/", f"/issues/{long}/fr/", f"/issues/{long}/files/x.png",
                 f"/issues/2006-50/files/{long}.png"]:  # fmt: skip
        assert client.get(path).status_code == 404, path
    # A genuine MAC over an address that does not validate (made by an older version, say).
    no_longer_valid = "reader@-bad-.example"
    unsubscribe = signer(site).token(no_longer_valid)
    confirm = signer(site).timed_token(no_longer_valid, "confirm")
    for path in (f"/unsubscribe/{unsubscribe}", f"/confirm/{confirm}"):
        assert client.get(path).status_code == 400
        assert client.post(path, data=ONE_CLICK).status_code == 400


def test_the_500_page_carries_the_security_headers(site: Path) -> None:
    client = client_of(site, raise_server_exceptions=False)
    url = f"/unsubscribe/{signer(site).token('marc.dubois@example.net')}"
    (site / "hebdo.db").write_bytes(b"this is not a database any more")
    for name in ("hebdo.db-wal", "hebdo.db-shm"):
        (site / name).unlink(missing_ok=True)
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(site / "hebdo.db").execute("SELECT 1 FROM subscribers")
    response = client.get(url)
    assert response.status_code == 500
    assert all(header in response.headers for header in SECURITY)
    assert "<html" in response.text and "hebdo.db" not in response.text


def test_the_trailing_slash_redirect_is_relative(client: TestClient) -> None:
    for path, location in [("/issues/2006-50/fr", "./fr/"), ("/issues/2006-50", "./2006-50/")]:
        response = client.get(path, headers={"host": "evil.example"}, follow_redirects=False)
        assert response.status_code == 307 and response.headers["location"] == location
    assert client.get("/issues/2006-50/fr").url.path == "/issues/2006-50/fr/"


def test_a_workspace_catalogue_serves_every_request_not_only_the_first(ws: Path) -> None:
    """A workspace catalogue is chained before the shipped one; a string neither translates (a
    template override's own) falls back to itself, at every request: the chain of catalogues must
    be built afresh each time, never grown or looped."""
    from hebdo_mail.publish.i18n import PACKAGE_LOCALE_DIR
    from hebdo_mail.workspace import package_templates_dir

    own = ws / "locale" / "fr" / "LC_MESSAGES" / "messages.po"
    own.parent.mkdir(parents=True)
    own.write_bytes((PACKAGE_LOCALE_DIR / "fr" / "LC_MESSAGES" / "messages.po").read_bytes())
    override = ws / "templates" / "subscribe.html"
    override.parent.mkdir()
    override.write_text(
        (package_templates_dir() / "subscribe.html")
        .read_text(encoding="utf-8")
        .replace("{% block content %}", '{% block content %}<p>{{ _("Our own words") }}</p>'),
        encoding="utf-8",
    )
    client = client_of(ws, raise_server_exceptions=False)
    for _ in range(3):
        page = client.get("/subscribe", headers={"accept-language": "fr"})
        assert page.status_code == 200 and "<p>Our own words</p>" in page.text
