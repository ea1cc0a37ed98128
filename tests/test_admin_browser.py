"""The dashboard in a real browser (Debian's Chromium through Playwright), as an admin uses it,
on a desktop and on a phone, in French and in English; with axe-core's accessibility rules.
The screenshots of the README are taken here (docs/admin/)."""

from __future__ import annotations

import email
import json
import re
import subprocess
import sys
from email import policy
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from hebdo_mail.workspace import write_secret

from .helpers import EXAMPLE_ISSUE, REPO, SITE, append_settings, run_process, store_of
from .test_browser import DESKTOP, PHONE, browser, new_page, no_horizontal_scroll, server

pytestmark = pytest.mark.browser
# The browser tests' Chromium, and their server (this module's site served at its base_url).
__all__ = ["browser", "server"]

PASSWORD = "correct horse battery"
DOCS = REPO / "docs" / "admin"
AXE = REPO / ".test-tools" / "node_modules" / "axe-core" / "axe.min.js"
PAGES = {
    "overview": "/admin/",
    "readers": "/admin/subscribers",
    "reader": "/admin/subscribers/1",
    "issues": "/admin/issues",
    "issue": f"/admin/issues/{EXAMPLE_ISSUE}",
    "import": "/admin/import",
    "activity": "/admin/activity",
}
SERIOUS = ("serious", "critical")
# The issue page's cards, named as `report --json` names them.
FIGURES = (
    "total", "sent", "failed", "deferred", "unknown", "skipped", "pending", "bounced",
    "complaints", "unsubscribed",
)  # fmt: skip


@pytest.fixture
def site(workspace: Path) -> Path:
    DOCS.mkdir(parents=True, exist_ok=True)
    write_secret(workspace / ".hebdo-secret")
    append_settings(workspace, "[tracking]\nclicks = true\n")
    assert run_process("subscribers", "import", "subscribers.example.csv", cwd=workspace).code == 0
    assert run_process("send", EXAMPLE_ISSUE, cwd=workspace).code == 0
    added = subprocess.run(
        [sys.executable, "-m", "hebdo_mail", "admin", "add", "marie", "--password-stdin"],
        cwd=workspace, input=PASSWORD + "\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    return workspace


def log_in(page: Page, server: str, password: str = PASSWORD, path: str = "/admin/") -> None:
    page.goto(server + path)
    page.fill("#username", "marie")
    page.fill("#password", password)
    page.click("button[type=submit]")


def test_logged_out_a_page_leads_to_the_login_and_back_after_it(
    browser: Browser, server: str
) -> None:
    page = new_page(browser, DESKTOP, locale="en-GB")
    page.goto(server + "/admin/subscribers?q=dub")
    assert page.url.startswith(server + "/admin/login?next=")
    assert page.locator("h1").inner_text() == "Log in to the dashboard"
    page.fill("#username", "marie")
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").inner_text() == "Wrong name or password."
    assert "/admin/login" in page.url
    page.fill("#username", "marie")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    assert page.url == server + "/admin/subscribers?q=dub"  # where the admin was going
    assert page.locator("tbody tr").count() == 1
    assert "marc.dubois@example.net" in page.locator("tbody").inner_text()


def test_ten_wrong_passwords_then_the_right_one_is_refused_for_a_while(
    browser: Browser, server: str
) -> None:
    page = new_page(browser, DESKTOP, locale="en-GB")
    for _ in range(10):
        log_in(page, server, "a wrong password")
        assert page.get_by_role("alert").inner_text() == "Wrong name or password."
    answer = page.goto(server + "/admin/login")
    assert answer is not None and answer.status == 200
    page.fill("#username", "marie")
    page.fill("#password", PASSWORD)
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("button[type=submit]")
    assert posted.value.status == 429
    assert "Too many failed logins" in page.get_by_role("alert").inner_text()
    assert page.goto(server + "/admin/").url.startswith(server + "/admin/login")


def test_search_finds_a_reader_imported_in_the_browser_by_part_of_the_name(
    browser: Browser, server: str, tmp_path: Path
) -> None:
    upload = tmp_path / "adherents.csv"
    upload.write_text(
        "courriel;nom\nsolene.garnier@example.com;Solène Garnier\npas-une-adresse;Erreur\n",
        encoding="utf-8",
    )
    page = new_page(browser, DESKTOP, locale="fr-FR")
    log_in(page, server, path="/admin/import")
    page.set_input_files("#file", upload)
    page.click("form[enctype] button[type=submit]")
    report = page.locator("#report").locator("..").inner_text()
    assert "adherents.csv:3:" in report
    page.goto(server + "/admin/subscribers")
    page.fill("#q", "garn")
    page.click("form[role=search] button")
    rows = page.locator("tbody tr")
    assert rows.count() == 1 and "solene.garnier@example.com" in rows.inner_text()
    assert "q=garn" in page.url


def test_unsubscribing_on_a_reader_s_page_shows_in_subscribers_list(
    browser: Browser, server: str, site: Path
) -> None:
    page = new_page(browser, PHONE, locale="en-GB")
    log_in(page, server, path="/admin/subscribers?q=helene")
    page.click("text=helene.lefevre@example.org")
    page.screenshot(path=DOCS / "reader-phone.png", full_page=True)
    page.click("button:text('Unsubscribe')")
    assert "Unsubscribed" in page.get_by_role("status").inner_text()
    listed = run_process("subscribers", "list", "--status", "unsubscribed", cwd=site)
    assert "helene.lefevre@example.org" in listed.out
    history = page.locator("h2:text('Status changes') + div").inner_text()
    assert "admin:marie" in history


def test_a_form_sent_without_its_csrf_token_is_refused(
    browser: Browser, server: str, site: Path
) -> None:
    page = new_page(browser, DESKTOP, locale="en-GB")
    log_in(page, server, path="/admin/subscribers/1")
    page.evaluate(
        "document.querySelectorAll('form[action$=\"/unsubscribe\"] input[name=csrf_token]')"
        ".forEach(field => field.remove())"
    )
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("button:text('Unsubscribe')")
    assert posted.value.status == 403
    listed = run_process("subscribers", "list", "--status", "unsubscribed", cwd=site)
    assert "helene.lefevre" not in listed.out


def test_the_issue_page_and_the_overview_show_the_figures_of_the_command_line(
    browser: Browser, server: str, site: Path
) -> None:
    # A reader leaves through the issue's one-click link; the counted links were followed.
    copy = next((site / "outbox" / EXAMPLE_ISSUE / "new").iterdir())
    message = email.message_from_bytes(copy.read_bytes(), policy=policy.default)
    one_click = str(message["List-Unsubscribe"]).split(">")[0].lstrip("<")
    page = new_page(browser, DESKTOP, locale="en-GB")
    left = page.request.post(
        server + one_click.removeprefix(SITE), form={"List-Unsubscribe": "One-Click"}
    )
    assert left.ok
    links = json.loads(run_process("report", EXAMPLE_ISSUE, "--json", cwd=site).out)["clicks"]
    with store_of(site) as store:
        store.tallies.add_clicks(EXAMPLE_ISSUE, {(1, links[0]["url"]): 3, (2, links[1]["url"]): 1})
    report = json.loads(run_process("report", EXAMPLE_ISSUE, "--json", cwd=site).out)
    assert (report["sent"], report["unsubscribed"]) == (5, 1)
    log_in(page, server, path=PAGES["issue"])
    for key in FIGURES:
        shown = page.locator(f"[data-figure={key}] .card-figure").inner_text()
        assert int(shown) == report[key], key
    rows = page.locator("tr[data-link]")
    shown_clicks = [
        (
            rows.nth(n).locator("td").nth(0).inner_text(),
            int(rows.nth(n).locator("td").nth(1).inner_text()),
        )
        for n in range(rows.count())
    ]
    assert shown_clicks == [(link["url"], link["clicks"]) for link in report["clicks"]]
    assert sum(clicks for _, clicks in shown_clicks) == 4
    assert page.locator("figure svg[role=img]").count() == 1
    page.screenshot(path=DOCS / "issue.png", full_page=True)
    page.goto(server + PAGES["overview"])
    cells = page.locator(f"tr:has(a[href='{PAGES['issue']}']) td").all_inner_texts()
    assert [int(cell) for cell in cells] == [
        report["sent"], report["failed"], report["bounced"], report["unsubscribed"],
        sum(link["clicks"] for link in report["clicks"]),
    ]  # fmt: skip


@pytest.mark.parametrize("locale", ["fr-FR", "en-GB"])
def test_every_page_fits_a_phone_and_is_in_the_admin_s_language(
    browser: Browser, server: str, locale: str
) -> None:
    page = new_page(browser, PHONE, locale=locale)
    log_in(page, server)
    for name, path in PAGES.items():
        page.goto(server + path)
        assert page.locator("html").get_attribute("lang") == locale[:2], name
        assert no_horizontal_scroll(page), f"{name} scrolls sideways at 375 px ({locale})"
    page.goto(server + PAGES["overview"])
    heading = page.locator("h1").inner_text()
    assert heading == {"fr-FR": "Vue d'ensemble", "en-GB": "Overview"}[locale]
    if locale == "en-GB":
        desktop = new_page(browser, DESKTOP, locale=locale)
        log_in(desktop, server)
        desktop.screenshot(path=DOCS / "overview.png", full_page=True)


def test_no_serious_accessibility_violation(browser: Browser, server: str) -> None:
    if not AXE.is_file():
        pytest.fail("axe-core is missing: run `make install-test` (scripts/install-test-tools)")
    engine = AXE.read_text(encoding="utf-8")
    page = new_page(browser, DESKTOP, locale="en-GB")
    found = {}
    for name, path in {"login": "/admin/login", **PAGES}.items():
        if name == "overview":
            log_in(page, server)
        page.goto(server + path)
        page.evaluate(engine)  # from the test's side, as the CSP forbids the page any script
        results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        serious = [
            f"{v['id']}: {v['help']} ({len(v['nodes'])}x, e.g. {v['nodes'][0]['html'][:120]})"
            for v in results["violations"]
            if v["impact"] in SERIOUS
        ]
        if serious:
            found[name] = serious
        assert results["passes"], name  # the rules ran
    assert not found, found
    # The check can fail: a search field without its label is a serious violation.
    page.goto(server + PAGES["readers"])
    page.evaluate("document.querySelector('label[for=q]').remove()")
    page.evaluate(engine)
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    assert "label" in [v["id"] for v in results["violations"] if v["impact"] in SERIOUS]


def test_the_login_page_loads_nothing_from_elsewhere(browser: Browser, server: str) -> None:
    page = new_page(browser, DESKTOP)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    log_in(page, server)
    page.goto(server + PAGES["issue"])
    assert requested and all(re.match(re.escape(server), url) for url in requested), requested
