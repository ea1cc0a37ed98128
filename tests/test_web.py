"""The web app over HTTP (Starlette's test client on the real application, the real store)."""

from __future__ import annotations

import email
import re
import time
from collections.abc import Callable
from email import policy
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hebdo_mail.audience.tokens import TokenSigner
from hebdo_mail.web.app import create_app
from hebdo_mail.workspace import load_secret, load_workspace, write_secret

from .helpers import BOTH_STORES, EXAMPLE_ISSUE, Result, post_form, store_of

pytestmark = BOTH_STORES

SECURITY = (
    "content-security-policy",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
)


@pytest.fixture
def site(workspace: Path, cli: Callable[..., Result]) -> Path:
    """The example workspace after the example issue went to the outbox (so it is published)."""
    write_secret(workspace / ".hebdo-secret")
    cli("subscribers", "import", "subscribers.example.csv", cwd=workspace)
    assert cli("send", EXAMPLE_ISSUE, cwd=workspace).code == 0
    return workspace


@pytest.fixture
def client(site: Path) -> TestClient:
    return TestClient(create_app(load_workspace(site, explicit=True)), base_url="http://testserver")


def signer(site: Path) -> TokenSigner:
    workspace = load_workspace(site, explicit=True)
    return TokenSigner(load_secret(site)[0], workspace.settings.newsletter.list_identifier)


def status_of(site: Path, address: str) -> str | None:
    with store_of(site) as store:
        subscriber = store.get(address)
        return subscriber.status if subscriber else None


def preferences_of(site: Path, address: str) -> tuple[str, str | None, str]:
    with store_of(site) as store:
        reader = store.get(address)
    assert reader is not None
    return reader.name, reader.lang, reader.format


def unsubscribe_url_from_outbox(site: Path, address: str) -> str:
    for path in (site / "outbox" / EXAMPLE_ISSUE / "new").iterdir():
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if message["Delivered-To"] == address:
            header = str(message["List-Unsubscribe"])
            return header.split(">")[0].lstrip("<").replace("https://hebdo.example.org", "")
    raise AssertionError(f"no message for {address}")


def test_every_page_has_security_headers_and_a_language(client: TestClient) -> None:
    for path in [
        "/",
        "/subscribe",
        "/issues/2006-50/fr/",
        "/unsubscribe/nope",
        "/no-such-page",
        "/confirm/x",
    ]:
        response = client.get(path)
        for header in SECURITY:
            assert header in response.headers, (path, header)
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert re.search(r'<html lang="(fr|en)"', response.text), path


def test_get_never_unsubscribes_post_does_and_is_idempotent(client: TestClient, site: Path) -> None:
    url = unsubscribe_url_from_outbox(site, "helene.lefevre@example.org")
    page = client.get(url)
    assert page.status_code == 200 and '<form method="post"' in page.text
    assert "Se désabonner" in page.text and "helene.lefevre@example.org" in page.text
    assert status_of(site, "helene.lefevre@example.org") == "active"
    for _ in range(2):
        done = client.post(url, data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200 and "ne recevra plus" in done.text
    assert status_of(site, "helene.lefevre@example.org") == "unsubscribed"


def test_rfc8058_one_click_in_multipart_without_cookies(client: TestClient, site: Path) -> None:
    url = unsubscribe_url_from_outbox(site, "a.kowalski@example.com")
    response = client.post(url, files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert status_of(site, "a.kowalski@example.com") == "unsubscribed"
    # An English reader's page is in English.
    assert "will receive no more issues of" in response.text


def test_forged_truncated_and_foreign_tokens_change_nothing(client: TestClient, site: Path) -> None:
    genuine = unsubscribe_url_from_outbox(site, "zoe.nguyen@example.fr").rsplit("/", 1)[1]
    other_list = TokenSigner(load_secret(site)[0], "another.list.example.org").token(
        "zoe.nguyen@example.fr"
    )
    forged_mac = TokenSigner(b"not the workspace secret at all", "otan-hebdo.example.org").token(
        "zoe.nguyen@example.fr"
    )
    someone_else = (
        signer(site).token("marc.dubois@example.net").split(".")[0] + "." + genuine.split(".")[1]
    )
    for token in [genuine[:-3], genuine + "A", other_list, forged_mac, someone_else, "", "x" * 700]:
        for method in (client.get, client.post):
            response = method(f"/unsubscribe/{token}")
            assert response.status_code in (400, 404, 405), token
    assert status_of(site, "zoe.nguyen@example.fr") == "active"
    assert status_of(site, "marc.dubois@example.net") == "active"


def test_unsubscribing_a_reader_the_store_did_not_know(client: TestClient, site: Path) -> None:
    token = signer(site).token("csv-only@example.org")
    one_click = {"List-Unsubscribe": "One-Click"}
    assert client.post(f"/unsubscribe/{token}", data=one_click).status_code == 200
    assert status_of(site, "csv-only@example.org") == "unsubscribed"


def read_confirmation(site: Path, address: str) -> str:
    for path in sorted((site / "outbox" / "confirmations" / "new").iterdir()):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if message["To"] == address:
            body = message.get_content()
            return re.search(r"https://hebdo\.example\.org(/confirm/\S+)", body).group(1)
    raise AssertionError(f"no confirmation for {address}")


def test_double_opt_in(client: TestClient, site: Path) -> None:
    response = post_form(
        client,
        "/subscribe",
        {"email": "New.Reader@Example.ORG", "name": "Nouvelle", "lang": "fr", "format": "text"},
    )
    assert response.status_code == 200 and "Consultez votre messagerie" in response.text
    assert status_of(site, "New.Reader@example.org") == "pending"
    link = read_confirmation(site, "New.Reader@example.org")
    assert client.get(link).status_code == 200
    assert status_of(site, "New.Reader@example.org") == "pending"  # a GET changes nothing
    done = post_form(client, link, {})
    assert done.status_code == 200 and "à partir du prochain numéro" in done.text
    with store_of(site) as store:
        reader = store.get("new.reader@example.org")
        assert reader is not None and (reader.status, reader.name, reader.format) == (
            "active",
            "Nouvelle",
            "text",
        )


def test_subscribe_answers_the_same_for_known_and_unknown_addresses(
    client: TestClient, site: Path
) -> None:
    def answer(address: str) -> str:
        text = post_form(client, "/subscribe", {"email": address, "lang": "fr"}).text
        return text.replace(address, "ADDRESS")

    assert answer("helene.lefevre@example.org") == answer("stranger@example.org")
    assert status_of(site, "helene.lefevre@example.org") == "active"


def test_a_confirmation_link_expires_and_cannot_be_forged(client: TestClient, site: Path) -> None:
    old = signer(site).timed_token("late@example.org", "confirm", now=time.time() - 8 * 24 * 3600)
    assert client.post(f"/confirm/{old}").status_code == 400
    unsubscribe_token = signer(site).token("late@example.org")  # right address, wrong purpose
    assert client.post(f"/confirm/{unsubscribe_token}").status_code == 400
    assert status_of(site, "late@example.org") is None


def test_honeypot_rate_limit_and_body_limit(client: TestClient, site: Path) -> None:
    trapped = post_form(client, "/subscribe", {"email": "bot@example.org", "website": "http://x"})
    assert trapped.status_code == 200
    assert status_of(site, "bot@example.org") is None
    assert not (site / "outbox" / "confirmations").exists()

    too_big = client.post(
        "/subscribe",
        content=b"email=" + b"a" * 20000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert too_big.status_code == 413

    codes = [
        post_form(client, "/subscribe", {"email": "not-an-address"}).status_code for _ in range(12)
    ]
    assert codes[:9] == [400] * 9 and codes[-1] == 429


def test_state_changes_only_by_post_and_no_open_redirect(client: TestClient) -> None:
    assert client.put("/subscribe").status_code == 405
    assert client.delete("/unsubscribe/abc").status_code == 405
    response = client.get("/issues/2006-50/", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/issues/2006-50/fr/"
    for path in [
        "//evil.example.com/",
        "/issues/..%2f..%2fhebdo.toml/fr/",
        "/issues/2006-50/files/..%2fissue.toml",
    ]:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 404 or not response.headers.get("location", "").startswith(
            "//"
        )


def test_archive_lists_only_published_issues_and_serves_their_files(
    client: TestClient, site: Path
) -> None:
    cover = client.get("/", headers={"accept-language": "en-US,en;q=0.9"})
    assert "NATO Update No. 50 — December 15, 2006" in cover.text
    assert '<html lang="en"' in cover.text
    page = client.get("/issues/2006-50/en/")
    assert page.status_code == 200 and "President welcomed at NATO Headquarters" in page.text
    recording = re.search(r"\.\./files/(point-de-presse\.[0-9a-f]{8}\.mp3)", page.text)
    assert recording is not None
    answer = client.get(f"/issues/2006-50/files/{recording.group(1)}")
    assert answer.headers["content-type"] == "audio/mpeg"
    assert answer.content == (site / "issues" / "2006-50" / "point-de-presse.mp3").read_bytes()
    for name in ["issue.toml", "point-de-presse.mp3", "point-de-presse.00000000.mp3"]:
        assert client.get(f"/issues/2006-50/files/{name}").status_code == 404
    draft = site / "issues" / "2007-01"
    draft.mkdir()
    (draft / "issue.toml").write_text('number = 1\ndate = 2007-01-05\nsections = ["Nouvelles"]\n')
    (draft / "a.md").write_text(
        "---\ntitle: Brouillon\nsection: Nouvelles\n---\nPas encore envoyé.\n"
    )
    assert "Brouillon" not in client.get("/").text
    assert client.get("/issues/2007-01/fr/").status_code == 404


def test_build_site_writes_the_archive_as_static_files(
    site: Path, cli: Callable[..., Result], tmp_path: Path
) -> None:
    target = tmp_path / "public"
    result = cli("build", "--site", str(target), cwd=site)
    assert result.code == 0 and "3 pages, 2 files" in result.out
    assert (target / "index.html").read_text().count("issues/2006-50/fr/") >= 1
    page = (target / "issues" / "2006-50" / "en" / "index.html").read_text()
    for picture in re.findall(r'<img[^>]* src="\.\./files/([^"]+)"', page):
        assert (target / "issues" / "2006-50" / "files" / picture).is_file()
    again = cli("build", "--site", str(target), cwd=site)
    assert again.code == 0
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    refused = cli("build", "--site", str(occupied), cwd=site)
    assert refused.code == 1 and "was not written by `build --site`" in refused.err
    assert (occupied / "keep.txt").read_text() == "mine"


def test_mailto_unsubscribes_are_processed_once(site: Path, cli: Callable[..., Result]) -> None:
    maildir = site / "unsubscribe-box"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    token = unsubscribe_url_from_outbox(site, "j.oconnor@example.org").rsplit("/", 1)[1]
    (maildir / "new" / "1.eml").write_bytes(
        f"From: j.oconnor@example.org\r\nTo: hebdo@example.org\r\nSubject: unsubscribe {token}\r\n\r\n\r\n".encode()
    )
    (maildir / "new" / "2.eml").write_bytes(
        b"From: someone@example.org\r\nSubject: hello\r\n\r\nPlease remove me.\r\n"
    )
    result = cli("unsubscribes", "process", str(maildir), cwd=site)
    assert result.code == 0 and result.out.startswith(
        "1 unsubscribed, 0 already were, 1 left in place"
    )
    assert "2.eml: no valid unsubscribe token; left as it is" in result.err
    assert status_of(site, "j.oconnor@example.org") == "unsubscribed"
    assert [p.name for p in (maildir / "cur").iterdir()] == ["1.eml:2,S"]
    again = cli("unsubscribes", "process", str(maildir), cwd=site)
    assert again.out.startswith("0 unsubscribed, 0 already were, 1 left in place")


def test_preferences_change_the_language_of_the_next_issue(
    client: TestClient, site: Path, cli: Callable[..., Result]
) -> None:
    address = "helene.lefevre@example.org"  # French, HTML
    path = unsubscribe_url_from_outbox(site, address).replace("/unsubscribe/", "/preferences/")
    message = next(
        m
        for p in (site / "outbox" / EXAMPLE_ISSUE / "new").iterdir()
        if (m := email.message_from_bytes(p.read_bytes(), policy=policy.default))["Delivered-To"]
        == address
    )
    html = message.get_body(("html",)).get_content()
    assert f'href="https://hebdo.example.org{path}"' in html  # the footer links to the page
    page = client.get(path)
    assert page.status_code == 200 and '<html lang="fr"' in page.text
    assert "Enregistrer mes préférences" in page.text and 'value="fr" selected' in page.text
    assert preferences_of(site, address) == ("Hélène Lefèvre", "fr", "html")

    forged = client.post(path, data={"name": "X", "lang": "en", "format": "text"})
    assert forged.status_code == 403  # a form from elsewhere changes nothing
    assert preferences_of(site, address) == ("Hélène Lefèvre", "fr", "html")
    saved = post_form(client, path, {"name": "Hélène L.", "lang": "en", "format": "text"})
    assert saved.status_code == 200 and '<html lang="en"' in saved.text
    assert "Your preferences are saved" in saved.text
    assert preferences_of(site, address) == ("Hélène L.", "en", "text")
    assert status_of(site, address) == "active"
    forged = post_form(client, path, {"lang": "xx", "format": "pdf", "name": "x" * 500})
    assert forged.status_code == 200
    assert preferences_of(site, address) == ("Hélène L.", "en", "text")  # a forgery changes nothing
    assert client.get("/preferences/not-a-token").status_code == 400

    # The next issue comes in English, as plain text.
    (site / "issues" / "2006-51").mkdir()
    for source in (site / "issues" / EXAMPLE_ISSUE).iterdir():
        (site / "issues" / "2006-51" / source.name).write_bytes(source.read_bytes())
    assert cli("send", "2006-51", cwd=site).code == 0
    (copy,) = [
        m
        for p in (site / "outbox" / "2006-51" / "new").iterdir()
        if (m := email.message_from_bytes(p.read_bytes(), policy=policy.default))["Delivered-To"]
        == address
    ]
    assert copy.get_content_type() == "text/plain"
    assert copy["Subject"].startswith("NATO Update No. 50")
    assert copy["To"].addresses[0].display_name == "Hélène L."
