"""The welcome mail: confirming sends one, in the reader's language and format, linking the latest
issue and carrying the list's unsubscribe headers; turned off, none (the real app, the outbox)."""

from __future__ import annotations

import email
import re
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hebdo_mail.audience.tokens import TokenSigner
from hebdo_mail.web.app import create_app
from hebdo_mail.workspace import load_secret, load_workspace

from .helpers import BOTH_STORES, EXAMPLE_ISSUE, Result, append_settings, post_form

pytestmark = BOTH_STORES


@pytest.fixture
def site(ws: Path, cli: Callable[..., Result]) -> Path:
    assert cli("subscribers", "import", "subscribers.example.csv", cwd=ws).code == 0
    assert cli("send", EXAMPLE_ISSUE, cwd=ws).code == 0
    return ws


def mailed(site: Path, address: str) -> list[EmailMessage]:
    folder = site / "outbox" / "confirmations" / "new"
    found = []
    for path in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        if message["To"] == address:
            found.append(message)
    return found


def subscribe_and_confirm(client: TestClient, site: Path, address: str, **choices: str) -> None:
    assert post_form(client, "/subscribe", {"email": address, **choices}).status_code == 200
    (confirmation,) = mailed(site, address)
    link = re.search(r"https://hebdo\.example\.org(/confirm/\S+)", confirmation.get_content())
    assert link is not None
    assert post_form(client, link.group(1), {}).status_code == 200
    assert post_form(client, link.group(1), {}).status_code == 400  # a link works once


def test_confirming_sends_one_welcome_in_the_readers_language_and_format(site: Path) -> None:
    workspace = load_workspace(site, explicit=True)
    client = TestClient(create_app(workspace))
    subscribe_and_confirm(client, site, "lea@example.org", lang="fr", format="html")
    confirmation, welcome = mailed(site, "lea@example.org")  # and nothing more
    assert str(welcome["Subject"]) == "Bienvenue dans OTAN Hebdo"
    assert welcome.get_content_type() == "multipart/alternative"
    html = welcome.get_body(("html",)).get_content()
    text = welcome.get_body(("plain",)).get_content()
    latest = "https://hebdo.example.org/issues/2006-50/fr/"
    assert f'href="{latest}"' in html and latest in text
    assert "OTAN Hebdo n°50 — 15 décembre 2006" in text

    signer = TokenSigner(load_secret(site)[0], workspace.settings.newsletter.list_identifier)
    unsubscribe = str(welcome["List-Unsubscribe"])
    web_link = re.match(r"<https://hebdo\.example\.org/unsubscribe/([^>]+)>, <mailto:", unsubscribe)
    assert web_link is not None and signer.verify(web_link.group(1)) == "lea@example.org"
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert welcome["List-Id"] == "OTAN Hebdo <otan-hebdo.example.org>"
    assert "List-Id" not in confirmation  # a confirmation is not yet from the list
    assert f"/unsubscribe/{web_link.group(1)}" in text

    subscribe_and_confirm(client, site, "sam@example.org", lang="en", format="text")
    _, english = mailed(site, "sam@example.org")
    assert str(english["Subject"]) == "Welcome to NATO Update"
    assert english.get_content_type() == "text/plain"
    assert "https://hebdo.example.org/issues/2006-50/en/" in english.get_content()


def test_the_welcome_can_be_turned_off_or_rewritten(site: Path) -> None:
    append_settings(site, "[welcome]\nenabled = false\n")
    client = TestClient(create_app(load_workspace(site, explicit=True)))
    subscribe_and_confirm(client, site, "quiet@example.org", lang="fr")
    assert len(mailed(site, "quiet@example.org")) == 1  # the confirmation only

    (site / "hebdo.toml").write_text(
        (site / "hebdo.toml").read_text().replace("enabled = false", "enabled = true")
    )
    (site / "templates").mkdir()
    (site / "templates" / "welcome_email.txt").write_text("Salut {{ email }} !\n")
    client = TestClient(create_app(load_workspace(site, explicit=True)))
    subscribe_and_confirm(client, site, "plain@example.org", lang="fr", format="text")
    _, welcome = mailed(site, "plain@example.org")
    assert welcome.get_content().strip() == "Salut plain@example.org !"
