"""The web app, the preview and the email itself in a real browser: Debian's Chromium, headless,
driven by Playwright. Screenshots are kept in tests/artifacts/."""

from __future__ import annotations

import email
import itertools
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from email import policy
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, Route, sync_playwright

from hebdo_mail.web.app import create_app
from hebdo_mail.web.preview import create_preview_app
from hebdo_mail.workspace import load_workspace, write_secret

from .helpers import CHROMIUM, EXAMPLE_ISSUE, REPO, SITE, Result, replace_in, run_process, store_of
from .pictures import illustrate_example

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "tests" / "artifacts"
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1024, "height": 900}


class LiveServer:
    """uvicorn serving an ASGI app on 127.0.0.1 and a port the system picked, in a thread."""

    def __init__(self, app: Any, port: int = 0) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed; `make test` installs it")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        yield chromium
        chromium.close()


def new_page(browser: Browser, viewport: dict[str, int] = DESKTOP, **options: Any) -> Page:
    return browser.new_context(viewport=viewport, **options).new_page()  # type: ignore[arg-type]


@pytest.fixture
def site(workspace: Path) -> Path:
    # In processes of their own: Playwright's sync API keeps an event loop running in this one.
    write_secret(workspace / ".hebdo-secret")
    assert run_process("subscribers", "import", "subscribers.example.csv", cwd=workspace).code == 0
    assert run_process("send", EXAMPLE_ISSUE, cwd=workspace).code == 0
    return workspace


@pytest.fixture
def server(site: Path) -> Iterator[str]:
    """The site served at its base_url, as behind a proxy: forms are only accepted from there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    replace_in(site / "hebdo.toml", SITE, f"http://127.0.0.1:{port}")
    with LiveServer(create_app(load_workspace(site, explicit=True)), port) as url:
        yield url


def status_of(site: Path, address: str) -> str | None:
    with store_of(site) as store:
        subscriber = store.get(address)
        return subscriber.status if subscriber else None


def no_horizontal_scroll(page: Page) -> bool:
    width = page.evaluate("document.documentElement.scrollWidth")
    return bool(width <= page.viewport_size["width"])


def test_unsubscribe_clicked_through_from_a_sent_message(
    browser: Browser, site: Path, server: str
) -> None:
    message = next(
        m for p in (site / "outbox" / EXAMPLE_ISSUE / "new").iterdir()
        if (m := email.message_from_bytes(p.read_bytes(), policy=policy.default))["Delivered-To"] == "marc.dubois@example.net"
    )  # fmt: skip
    link = re.search(
        r"https://hebdo\.example\.org(/unsubscribe/[^\s]+)", message.get_content()
    ).group(1)
    page = new_page(browser, PHONE)
    page.goto(server + link)
    assert page.locator("html").get_attribute("lang") == "fr"
    assert (
        status_of(site, "marc.dubois@example.net") == "active"
    )  # opening the page changed nothing
    assert no_horizontal_scroll(page)
    page.screenshot(path=ARTIFACTS / "unsubscribe-ask.png")
    page.get_by_role("button", name="Se désabonner").click()
    page.wait_for_selector("text=ne recevra plus")
    page.screenshot(path=ARTIFACTS / "unsubscribe-done.png")
    assert status_of(site, "marc.dubois@example.net") == "unsubscribed"


def test_subscribe_and_confirm_with_the_mail_read_from_the_outbox(
    browser: Browser, site: Path, server: str
) -> None:
    page = new_page(browser, PHONE, locale="en-GB")
    page.goto(server + "/subscribe")
    assert page.locator("html").get_attribute("lang") == "en"
    assert no_horizontal_scroll(page)
    page.get_by_label("Email address").fill("reader.new@example.org")
    page.get_by_label("Name (optional)").fill("Ana Núñez")
    page.get_by_label("Language").select_option("en")
    page.get_by_label("Plain text").check()
    page.screenshot(path=ARTIFACTS / "subscribe-form.png")
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_selector("text=Check your inbox")
    assert status_of(site, "reader.new@example.org") == "pending"

    mail = next((site / "outbox" / "confirmations" / "new").iterdir())
    confirmation = email.message_from_bytes(mail.read_bytes(), policy=policy.default)
    assert confirmation["Subject"] == "Confirm your subscription to NATO Update"
    link = re.search(r"https?://[^/\s]+(/confirm/\S+)", confirmation.get_content()).group(1)
    page.goto(server + link)
    assert status_of(site, "reader.new@example.org") == "pending"
    page.get_by_role("button", name="Confirm my subscription").click()
    page.wait_for_selector("text=from the next issue on")
    page.screenshot(path=ARTIFACTS / "subscribe-confirmed.png")
    with store_of(site) as store:
        reader = store.get("reader.new@example.org")
        assert reader is not None
        assert (reader.status, reader.name, reader.lang, reader.format) == (
            "active",
            "Ana Núñez",
            "en",
            "text",
        )


def test_the_archive_navigated(browser: Browser, server: str) -> None:
    page = new_page(browser, DESKTOP, locale="fr-FR")
    page.goto(server + "/")
    assert page.get_by_role("heading", level=1).inner_text() == "OTAN Hebdo"
    page.get_by_role("link", name="OTAN Hebdo n°50 — 15 décembre 2006").click()
    page.wait_for_url(re.compile(r".*/issues/2006-50/fr/$"))
    assert page.get_by_role(
        "heading", level=2, name="Le président du Kazakhstan reçu au siège de l'OTAN"
    ).is_visible()
    image = page.locator("img.article-image").first
    assert image.evaluate("img => img.complete && img.naturalWidth") == 560  # the picture is served
    page.screenshot(path=ARTIFACTS / "archive-issue.png", full_page=True)
    page.get_by_role("link", name="Retour à la page de garde").click()
    page.wait_for_url(server + "/")
    page.get_by_role("link", name="English").click()
    page.wait_for_url(re.compile(r".*/issues/2006-50/en/$"))
    assert page.locator("html").get_attribute("lang") == "en"
    phone = new_page(browser, PHONE)
    for path in ["/", "/issues/2006-50/fr/", "/issues/2006-50/en/"]:
        phone.goto(server + path)
        assert no_horizontal_scroll(phone), path


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_email_fits_a_phone_and_keeps_its_layout_on_a_desktop(
    browser: Browser, workspace: Path, cli: Callable[..., Result], lang: str
) -> None:
    assert cli("build", EXAMPLE_ISSUE, cwd=workspace).code == 0
    html = (workspace / "build" / EXAMPLE_ISSUE / lang / "email.html").as_uri()
    for width in (320, 375):
        phone = new_page(browser, {"width": width, "height": 740})
        phone.goto(html)
        assert no_horizontal_scroll(phone), width
        assert phone.locator("table.container").evaluate("t => t.offsetWidth") <= width
    phone.screenshot(path=ARTIFACTS / f"email-{lang}-375.png", full_page=True)
    desktop = new_page(browser, {"width": 800, "height": 900})
    desktop.goto(html)
    assert desktop.locator("table.container").evaluate("t => t.offsetWidth") == 600
    assert no_horizontal_scroll(desktop)
    desktop.screenshot(path=ARTIFACTS / f"email-{lang}-600.png", full_page=True)


def test_the_preview_shows_both_widths_and_rebuilds_on_a_change(
    browser: Browser, workspace: Path
) -> None:
    folder = workspace / "issues" / EXAMPLE_ISSUE
    app = create_preview_app(load_workspace(workspace, explicit=True), folder)
    with LiveServer(app) as url:
        page = new_page(browser, {"width": 1280, "height": 1000})
        page.goto(url + "/")
        frames = page.locator("iframe")
        assert frames.count() == 2
        assert frames.nth(0).evaluate("f => f.clientWidth") >= 600
        assert frames.nth(1).evaluate("f => f.clientWidth") == 375
        phone = page.frame_locator("iframe").nth(1)
        assert phone.locator("h1").inner_text() == "OTAN Hebdo"
        page.get_by_text("Texte", exact=True).click()
        assert "SOMMAIRE" in page.locator("pre").inner_text()
        page.get_by_text("En-têtes", exact=True).click()
        assert page.get_by_text("List-Unsubscribe-Post:").is_visible()
        page.screenshot(path=ARTIFACTS / "preview.png")

        article = folder / "transit-fias.md"
        article.write_text(
            article.read_text().replace(
                "Transit vers l'Afghanistan", "Transit revu vers l'Afghanistan"
            )
        )
        page.wait_for_event("load", timeout=10_000)
        phone = page.frame_locator("iframe").nth(1)
        phone.get_by_text("Transit revu vers l'Afghanistan").first.wait_for(timeout=10_000)

        (folder / "transit-fias.md").write_text("---\ntitle: Sans section\n---\nTexte.\n")
        page.wait_for_event("load", timeout=10_000)
        assert "missing required key 'section'" in page.get_by_role("alert").inner_text()


def test_pictures_are_never_blown_up_at_any_width(
    browser: Browser, workspace: Path, cli: Callable[..., Result]
) -> None:
    """The illustrated week (a 1600 px photo, a 400 px one, a 120 px logo, a 3000 px map and a
    60-character bare URL), built but never sent: its pictures come from `serve`."""
    illustrate_example(workspace)
    assert cli("build", EXAMPLE_ISSUE, cwd=workspace).code == 0
    built = workspace / "build" / EXAMPLE_ISSUE

    with LiveServer(create_app(load_workspace(workspace, explicit=True))) as server:

        def from_serve(route: Route) -> None:
            with urllib.request.urlopen(
                server + urlsplit(route.request.url).path, timeout=20
            ) as answer:
                route.fulfill(
                    status=answer.status,
                    body=answer.read(),
                    content_type=answer.headers["content-type"],
                )

        for width, lang, name in itertools.product(
            (320, 375, 600), ("fr", "en"), ("email.html", "index.html")
        ):
            page = new_page(browser, {"width": width, "height": 800})
            page.route("https://hebdo.example.org/issues/**", from_serve)
            page.goto((built / lang / name).as_uri())
            page.wait_for_function("[...document.images].every(i => i.complete)", timeout=20_000)
            pictures = page.evaluate(
                "[...document.images].map(i => [i.src.split('/').pop().split('.')[0], "
                "i.naturalWidth, i.getBoundingClientRect().width])"
            )
            assert len(pictures) == 6
            for stem, natural, shown in pictures:
                where = f"{stem} in {lang}/{name} at {width} px"
                assert natural > 0, f"{where} did not load"
                assert shown <= natural and shown <= width, where
            shown = {stem: shown for stem, _, shown in pictures}
            if width == 600 and name == "email.html":
                assert (shown["logo-partenariat"], shown["laboratoire"]) == (120, 400)
            assert no_horizontal_scroll(page), f"{lang}/{name} at {width} px"
            if width == 320:
                page.screenshot(path=ARTIFACTS / f"pictures-{lang}-{name}-320.png", full_page=True)


def test_dark_mode_keeps_the_section_label_red_in_apple_mail_and_outlook_com(
    browser: Browser, workspace: Path, cli: Callable[..., Result]
) -> None:
    assert cli("build", EXAMPLE_ISSUE, cwd=workspace).code == 0
    html = (workspace / "build" / EXAMPLE_ISSUE / "fr" / "email.html").as_uri()
    colour = "el => getComputedStyle(el).color"
    light = new_page(browser, PHONE)
    light.goto(html)
    kicker, title = light.locator(".kicker"), light.locator(".lead .article-title")
    assert kicker.evaluate(colour) == "rgb(200, 16, 46)"  # the section's red
    dark = new_page(browser, PHONE, color_scheme="dark")
    dark.goto(html)
    assert dark.locator(".kicker").evaluate(colour) == "rgb(255, 138, 155)"  # still red, lighter
    assert dark.locator(".container").evaluate("el => getComputedStyle(el).backgroundColor") == (
        "rgb(27, 31, 36)"
    )
    dark.screenshot(path=ARTIFACTS / "email-fr-dark.png", full_page=True)
    # Outlook.com marks what its dark mode recolours; the same rules follow those marks.
    light.evaluate(
        "() => document.querySelectorAll('*').forEach(el => {"
        " el.setAttribute('data-ogsc', ''); el.setAttribute('data-ogsb', ''); })"
    )
    assert kicker.evaluate(colour) == "rgb(255, 138, 155)"
    assert title.evaluate(colour) != "rgb(0, 51, 102)"
