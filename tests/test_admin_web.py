"""The dashboard over HTTP (Starlette's test client on the real app and store), tried from outside:
logged out, with a stolen cookie after logout, with cross-site forms, with guessed passwords."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
from starlette.testclient import TestClient

from hebdo_mail.audience.admins import AdminAccounts
from hebdo_mail.audience.audit import AuditLog
from hebdo_mail.web.app import create_app
from hebdo_mail.workspace import load_workspace, write_secret

from .helpers import BOTH_STORES, EXAMPLE_ISSUE, Result, append_settings, store_of
from .smtpserver import Recorder, SmtpServer

pytestmark = BOTH_STORES
PASSWORD = "correct horse battery"
PAGES = [
    "/admin/", "/admin/subscribers", "/admin/subscribers?q=dub&status=active",
    "/admin/subscribers/1", "/admin/import", "/admin/issues", f"/admin/issues/{EXAMPLE_ISSUE}",
    "/admin/activity", "/admin/export",
]  # fmt: skip
ACTIONS = ["unsubscribe", "reactivate", "settings", "erase"]


@pytest.fixture
def site(workspace: Path, cli: Callable[..., Result]) -> Path:
    """The example workspace after the example issue went out, with one admin."""
    write_secret(workspace / ".hebdo-secret")
    assert cli("subscribers", "import", "subscribers.example.csv", cwd=workspace).code == 0
    assert cli("send", EXAMPLE_ISSUE, cwd=workspace).code == 0
    with store_of(workspace) as store:
        AdminAccounts(store.db).add("marie", PASSWORD)
        AdminAccounts(store.db).add("paul", PASSWORD)
    return workspace


def client_of(site: Path, address: str = "192.0.2.1") -> TestClient:
    # https: base_url is https, so the cookie is Secure and only goes back over https.
    return TestClient(
        create_app(load_workspace(site, explicit=True)), base_url="https://testserver",
        client=(address, 50000), headers={"accept-language": "en"},
    )  # fmt: skip


def login(client: TestClient, name: str = "marie", password: str = PASSWORD) -> httpx2.Response:
    page = client.get("/admin/login")
    token = re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)
    response = client.post(
        "/admin/login",
        data={"username": name, "password": password, "form_token": token},
        follow_redirects=False,
    )
    return response


def without_token(page: str) -> str:
    return re.sub(r'name="form_token" value="[^"]+"', "", page)


def csrf_of(client: TestClient, path: str = "/admin/") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


def status_of(site: Path, address: str) -> str | None:
    with store_of(site) as store:
        found = store.get(address)
        return found.status if found else None


def test_logged_out_every_page_and_every_change_redirects_to_the_login(site: Path) -> None:
    client = client_of(site)
    for path in PAGES:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/admin/login?next=%2Fadmin%2F"), path
    for action in ACTIONS:
        response = client.post(f"/admin/subscribers/1/{action}", follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (
            303,
            "/admin/login?next=%2Fadmin%2F",
        )
    assert client.post("/admin/import", follow_redirects=False).status_code == 303
    assert status_of(site, "helene.lefevre@example.org") == "active"
    page = client.get("/admin/login")
    assert 'name="username"' in page.text and 'name="password"' in page.text


def test_wrong_and_right_passwords_and_the_cookie(site: Path) -> None:
    client = client_of(site)
    for name, password in (("marie", "wrong password"), ("nobody", PASSWORD)):
        wrong = login(client, name, password)
        assert wrong.status_code == 200 and "Wrong name or password." in wrong.text
        assert client.get("/admin/", follow_redirects=False).status_code == 303
    right = login(client)
    assert (right.status_code, right.headers["location"]) == (303, "/admin/")
    response = client.get("/admin/")
    assert response.status_code == 200 and "marie" in response.text
    (only,) = [c for c in client.cookies.jar if c.name == "hebdo_admin"]
    assert only.secure and only.path == "/admin"
    set_cookie = login(client_of(site)).headers["set-cookie"].lower()
    for attribute in ("httponly", "samesite=strict", "secure", "path=/admin"):
        assert attribute in set_cookie
    with store_of(site) as store:
        actions = [(e.account, e.action) for e in AuditLog(store.db).latest()]
    assert ("marie", "login") in actions and ("nobody", "login-refused") in actions


def test_a_login_needs_the_login_page_s_token(site: Path) -> None:
    client = client_of(site)
    response = client.post(
        "/admin/login", data={"username": "marie", "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 403
    assert client.get("/admin/", follow_redirects=False).status_code == 303


def test_ten_failures_then_429_whether_the_account_exists_or_not(site: Path) -> None:
    client = client_of(site)
    for _ in range(10):
        assert login(client, "marie", "wrong password").status_code == 200
    blocked = login(client, "marie", PASSWORD)  # even the right password, for a while
    assert blocked.status_code == 429 and "Too many failed logins" in blocked.text
    assert blocked.headers["retry-after"] == "900"
    other = client_of(site, "198.51.100.7")  # another client: the account is still blocked
    assert login(other, "marie", PASSWORD).status_code == 429
    # From the same client, the same answer for a name that does not exist.
    unknown = login(client, "nobody-at-all", "whatever password")
    assert unknown.status_code == 429
    assert without_token(unknown.text) == without_token(blocked.text)
    assert login(other, "paul", PASSWORD).status_code == 303  # paul, from elsewhere: not affected


def test_a_change_without_its_csrf_token_or_with_another_session_s_is_refused(
    site: Path,
) -> None:
    marie, paul = client_of(site), client_of(site)
    login(marie)
    login(paul, "paul")
    target = "/admin/subscribers/1/unsubscribe"
    address = "helene.lefevre@example.org"
    assert marie.post(target, data={}).status_code == 403
    assert marie.post(target, data={"csrf_token": "forged"}).status_code == 403
    assert marie.post(target, data={"csrf_token": csrf_of(paul)}).status_code == 403
    assert status_of(site, address) == "active"  # nothing changed
    # A form another site serves is refused, even were it to carry the right token.
    cross_site = marie.post(
        target, data={"csrf_token": csrf_of(marie)}, headers={"origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403
    assert status_of(site, address) == "active"
    done = marie.post(target, data={"csrf_token": csrf_of(marie)}, follow_redirects=False)
    assert (
        done.status_code == 303
        and done.headers["location"] == "/admin/subscribers/1?done=unsubscribed"
    )
    assert status_of(site, address) == "unsubscribed"


def test_a_cookie_stolen_before_logout_opens_nothing_after_it(site: Path) -> None:
    client = client_of(site)
    login(client)
    stolen = client.cookies["hebdo_admin"]
    assert client.post("/admin/logout", data={"csrf_token": csrf_of(client)}).status_code == 200
    thief = client_of(site)
    thief.cookies.set("hebdo_admin", stolen, domain="testserver.local", path="/admin")
    for path in PAGES:
        assert thief.get(path, follow_redirects=False).status_code == 303, path
    with store_of(site) as store:
        assert store.db.execute("SELECT count(*) FROM admin_sessions").fetchone()[0] == 0


def test_a_session_works_on_every_worker(site: Path) -> None:
    first, second = client_of(site), client_of(site)  # two apps: two worker processes
    login(first)
    second.cookies.set(
        "hebdo_admin", first.cookies["hebdo_admin"], domain="testserver.local", path="/admin"
    )
    assert second.get("/admin/", follow_redirects=False).status_code == 200
    token = csrf_of(second)
    assert (
        second.post(
            "/admin/subscribers/2/unsubscribe", data={"csrf_token": token}, follow_redirects=False
        ).status_code
        == 303
    )


def test_admin_pages_carry_the_security_headers_and_no_script(site: Path) -> None:
    client = client_of(site)
    login(client)
    for path in [p for p in PAGES if p != "/admin/export"] + ["/admin/login"]:
        response = client.get(path)
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert "<script" not in response.text and "http://" not in response.text.replace(
            "http://www.w3.org", ""
        )


def test_after_login_only_a_page_of_the_dashboard(site: Path) -> None:
    client = client_of(site)
    page = client.get("/admin/login?next=https://evil.example/")
    assert 'name="next" value=""' in page.text
    page = client.get("/admin/login?next=%2Fadmin%2Fissues")
    assert 'name="next" value="/admin/issues"' in page.text


def test_reactivating_asks_first_and_erasing_says_what_is_kept(site: Path) -> None:
    client = client_of(site)
    login(client)
    address = "helene.lefevre@example.org"
    client.post("/admin/subscribers/1/unsubscribe", data={"csrf_token": csrf_of(client)})
    asked = client.post("/admin/subscribers/1/reactivate", data={"csrf_token": csrf_of(client)})
    assert asked.status_code == 200 and 'name="confirm" value="yes"' in asked.text
    assert status_of(site, address) == "unsubscribed"
    client.post(
        "/admin/subscribers/1/reactivate", data={"csrf_token": csrf_of(client), "confirm": "yes"}
    )
    assert status_of(site, address) == "active"
    saved = client.post(
        "/admin/subscribers/1/settings",
        data={"csrf_token": csrf_of(client), "lang": "en", "format": "text"},
    )
    assert saved.status_code == 200 and "Saved." in saved.text
    with store_of(site) as store:
        reader = store.get(address)
        assert reader is not None and (reader.lang, reader.format, reader.status) == (
            "en",
            "text",
            "active",
        )
    erased = client.post(
        "/admin/subscribers/1/erase", data={"csrf_token": csrf_of(client), "confirm": "yes"}
    )
    assert erased.status_code == 200
    assert "one-way digest" in erased.text and EXAMPLE_ISSUE in erased.text
    # The file logs keep the address; the shared ledger's rows no longer name it.
    shared = load_workspace(site, explicit=True).store_url is not None
    said = "no longer names the address" if shared else "still name the address"
    assert said in erased.text
    assert status_of(site, address) is None
    assert client.get("/admin/subscribers/1").status_code == 404
    history = client.get("/admin/activity").text
    assert address not in history and "(erased reader)" in history
    for action in ("unsubscribe", "reactivate", "settings", "erase", "login"):
        assert f">{action}<" in history


def test_import_reports_file_and_line_and_export_follows_the_filter(site: Path) -> None:
    client = client_of(site)
    login(client)
    csv = "email,name,lang\nanne.martin@example.com,Anne Martin,fr\nnot-an-address,Bad,fr\n"
    response = client.post(
        "/admin/import",
        data={"csrf_token": csrf_of(client, "/admin/import")},
        files={"file": ("adherents.csv", csv.encode(), "text/csv")},
    )
    assert response.status_code == 200
    assert "adherents.csv:3: " in response.text and "added 1" in response.text
    assert status_of(site, "anne.martin@example.com") == "active"
    broken = client.post(
        "/admin/import",
        data={"csrf_token": csrf_of(client, "/admin/import")},
        files={"file": ("binary.csv", b"\x00\x01\x02" * 100, "text/csv")},
    )
    assert broken.status_code == 400 and "binary.csv" in broken.text
    exported = client.get("/admin/export?q=martin")
    assert exported.status_code == 200
    assert exported.headers["content-disposition"].startswith("attachment;")
    lines = exported.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("email,name,lang") and len(lines) == 2
    assert lines[1].startswith("anne.martin@example.com,Anne Martin,fr")
    whole = client.get("/admin/export").content.decode("utf-8-sig").splitlines()
    assert len(whole) == 7


def test_an_upload_is_taken_only_by_the_import_and_only_so_large(site: Path) -> None:
    client = client_of(site)
    login(client)
    big = b"x" * (32 * 1024)
    assert client.post("/admin/subscribers/1/settings", content=big).status_code == 413
    huge = b"x" * (21 * 1024 * 1024)
    assert (
        client.post("/admin/import", content=huge, headers={"content-type": "text/csv"}).status_code
        == 413
    )


def test_the_overview_shows_a_send_running_now_and_refreshes_itself(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    write_secret(workspace / ".hebdo-secret")
    assert cli("subscribers", "import", "subscribers.example.csv", cwd=workspace).code == 0
    assert cli("send", EXAMPLE_ISSUE, "--limit", "2", cwd=workspace).code == 75  # 3 to go
    with store_of(workspace) as store:
        AdminAccounts(store.db).add("marie", PASSWORD)
    client = client_of(workspace)
    login(client)
    page = client.get("/admin/").text
    assert f"Sending {EXAMPLE_ISSUE} now" in page
    assert '<progress id="progress-1" max="5" value="2">' in page
    assert '<meta http-equiv="refresh" content="5">' in page
    assert cli("send", EXAMPLE_ISSUE, cwd=workspace).code == 0
    page = client.get("/admin/").text
    assert "now" not in page.split("<h1>")[1].split("</h2>")[0] and "<progress" not in page
    assert 'http-equiv="refresh"' not in page
    assert (
        f'<a href="/admin/issues/{EXAMPLE_ISSUE}">{EXAMPLE_ISSUE}</a></th><td class="number">5</td>'
        in page
    )


def test_the_issue_page_is_the_report_of_the_command_line(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    """Sent through a pool of two relays, one refusing a reader: the page's figures, relays and
    failures are those of `report --json`, whichever ledger kept the send."""
    write_secret(workspace / ".hebdo-secret")
    assert cli("subscribers", "import", "subscribers.example.csv", cwd=workspace).code == 0
    refused = "marc.dubois@example.net"

    def refusing(stage: str, rcpt: str, count: int) -> str | None:
        if stage == "rcpt" and rcpt == refused:
            return f"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"
        return None

    with SmtpServer(Recorder(hook=refusing)) as one, SmtpServer(Recorder(hook=refusing)) as two:
        append_settings(
            workspace,
            "".join(
                f'[[smtp.relays]]\nurl = "{relay.url}"\nconcurrency = 1\n' for relay in (one, two)
            ),
        )
        assert cli("send", EXAMPLE_ISSUE, "--yes", cwd=workspace).code == 0
    report = json.loads(cli("report", EXAMPLE_ISSUE, "--json", cwd=workspace).out)
    assert (report["sent"], report["failed"]) == (4, 1) and report["relays"]
    with store_of(workspace) as store:
        AdminAccounts(store.db).add("marie", PASSWORD)
    client = client_of(workspace)
    login(client)
    page = client.get(f"/admin/issues/{EXAMPLE_ISSUE}").text
    shown = dict(re.findall(r'data-figure="(\w+)"><span class="card-figure">(\d+)<', page))
    assert {key: int(value) for key, value in shown.items()} == {
        key: report[key] for key in shown
    } and len(shown) == 10
    for relay in report["relays"]:
        cells = [relay["relay"], *(str(relay[key]) for key in ("sent", "failed", "deferred"))]
        assert "<tr><td>" + '</td><td class="number">'.join(cells) + "</td></tr>" in page
    masked = "550 5.1.1 &lt;address&gt;: Recipient address rejected: User unknown"
    assert f'<tr><td>{masked}</td><td class="number">1</td></tr>' in page  # by reply
    (failure,) = report["failures"]
    assert f'<tr><td>example.net</td><td class="number">1</td><td>{masked}</td></tr>' in page
    assert failure["domain"] == "example.net" and refused not in page
