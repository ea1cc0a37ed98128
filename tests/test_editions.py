"""Editions: one issue in several languages and formats; each reader gets theirs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from lxml import html as lxml_html

from hebdo_mail.publish.i18n import PACKAGE_LOCALE_DIR, extract_messages
from hebdo_mail.workspace import package_templates_dir, write_secret

from .helpers import EXAMPLE_ISSUE, Result
from .smtpserver import Recorder, SmtpServer

ISSUE = Path("issues") / EXAMPLE_ISSUE


def test_the_example_issue_ships_in_french_and_english(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    result = cli("build", EXAMPLE_ISSUE, cwd=workspace)
    assert result.code == 0 and result.err == ""
    assert result.out.strip().endswith("built issue 2006-50 (fr, en)")
    english = lxml_html.fromstring(
        (workspace / "build" / EXAMPLE_ISSUE / "en" / "email.html").read_bytes()
    )
    assert english.get("lang") == "en"
    assert english.xpath("//h1/text()") == ["NATO Update"]
    assert english.xpath("//title/text()") == ["NATO Update No. 50 — December 15, 2006"]
    assert [h.text_content() for h in english.xpath("//h2[@class='heading-label']")][1:] == [
        "News",
        "History",
        "Opinion",
        "Multimedia",
    ]
    assert (
        english.xpath("//div[@class='preheader']")[0]
        .text_content()
        .startswith("Kazakhstan's President")
    )
    text = (workspace / "build" / EXAMPLE_ISSUE / "en" / "email.txt").read_text()
    assert "Unsubscribe:" in text and "Issue 50 — December 15, 2006" in text
    assert "Recording of the press briefing (MP3, 39.1\u00a0KB)" in text
    web = lxml_html.fromstring(
        (workspace / "build" / EXAMPLE_ISSUE / "en" / "index.html").read_bytes()
    )
    assert web.xpath("//a[normalize-space()='Back to the cover page']/@href") == ["../../../"]


def test_a_mixed_list_gets_the_right_edition_and_format(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    write_secret(workspace / ".hebdo-secret")
    readers = {
        "fr-html@example.org": ("fr", "html"),
        "fr-text@example.org": ("fr", "text"),
        "en-html@example.org": ("en", "html"),
        "en-text@example.org": ("en", "text"),
        "gb@example.org": ("en-GB", "html"),  # no en-GB edition: the English one
        "de@example.org": ("de", "text"),  # no German edition: the default, French
        "none@example.org": ("", "html"),
    }
    rows = ["email,name,lang,format"] + [
        f"{a},Reader,{lang},{fmt}" for a, (lang, fmt) in readers.items()
    ]
    (workspace / "mixed.csv").write_text("\n".join(rows) + "\n")
    recorder = Recorder()
    with SmtpServer(recorder) as server:
        result = cli(
            "send",
            EXAMPLE_ISSUE,
            "--subscribers",
            "mixed.csv",
            "--smtp",
            server.url,
            "--yes",
            cwd=workspace,
        )
    assert result.code == 0, result.err
    expected = {
        "fr-html@example.org": ("OTAN Hebdo", "multipart/alternative"),
        "fr-text@example.org": ("OTAN Hebdo", "text/plain"),
        "en-html@example.org": ("NATO Update", "multipart/alternative"),
        "en-text@example.org": ("NATO Update", "text/plain"),
        "gb@example.org": ("NATO Update", "multipart/alternative"),
        "de@example.org": ("OTAN Hebdo", "text/plain"),
        "none@example.org": ("OTAN Hebdo", "multipart/alternative"),
    }
    got = {}
    for received in recorder.received:
        message = received.message
        got[received.rcpt] = (
            message["Subject"].split(" n°")[0].split(" No.")[0],
            message.get_content_type(),
        )
        body = message.get_body(preferencelist=("plain",)).get_content()
        assert ("Read online:" in body) == got[received.rcpt][0].startswith("NATO")
        assert message["From"] == (
            "NATO Update <hebdo@example.org>"
            if got[received.rcpt][0].startswith("NATO")
            else "OTAN Hebdo <hebdo@example.org>"
        )
    assert got == expected
    log = [
        json.loads(line)
        for line in (workspace / "logs" / f"{EXAMPLE_ISSUE}.jsonl").read_text().splitlines()
    ]
    editions = {e["recipient"]: e["edition"] for e in log if e["event"] == "sent"}
    assert editions["en-text@example.org"] == "en/text" and editions["de@example.org"] == "fr/text"


def test_a_missing_translation_warns_and_falls_back(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    (workspace / ISSUE / "plans-action.en.md").unlink()
    result = cli("build", EXAMPLE_ISSUE, cwd=workspace)
    assert result.code == 0
    assert (
        "warning: plans-action.md: no en translation of 'plans-action'; the en edition uses the fr text"
        in result.err
    )
    text = (workspace / "build" / EXAMPLE_ISSUE / "en" / "email.txt").read_text()
    assert "Les plans d'action individuels pour le Partenariat" in text
    assert "HISTORY" in text  # the section keeps its English name


def test_fallback_omit_leaves_the_article_out(workspace: Path, cli: Callable[..., Result]) -> None:
    config = workspace / "hebdo.toml"
    config.write_text(
        config.read_text().replace('language = "fr"', 'language = "fr"\nfallback = "omit"')
    )
    (workspace / ISSUE / "plans-action.en.md").unlink()
    result = cli("build", EXAMPLE_ISSUE, cwd=workspace)
    assert (
        "warning: plans-action.md: no en version of 'plans-action'; left out of the en edition"
        in result.err
    )
    text = (workspace / "build" / EXAMPLE_ISSUE / "en" / "email.txt").read_text()
    assert "Partenariat" not in text and "HISTORY" not in text


def test_lang_in_front_matter_and_a_language_the_default_lacks(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    (workspace / ISSUE / "extra-de.md").write_text(
        "---\ntitle: Nur auf Deutsch\nsection: news\nlang: de\n---\nEin kurzer Text.\n",
        encoding="utf-8",
    )
    result = cli("build", EXAMPLE_ISSUE, cwd=workspace)
    assert result.code == 0, result.err
    assert "built issue 2006-50 (fr, de, en)" in result.out
    assert "extra-de.md: no fr version of 'extra-de'; left out of the fr edition" in result.err
    german = (workspace / "build" / EXAMPLE_ISSUE / "de" / "email.txt").read_text()
    assert "Nur auf Deutsch" in german and "15. Dezember 2006" in german


def test_a_workspace_adds_a_language_with_a_catalogue(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    created = cli("catalogue", "de", cwd=workspace)
    assert created.out.startswith("created locale/de/LC_MESSAGES/messages.po: ")
    path = workspace / "locale" / "de" / "LC_MESSAGES" / "messages.po"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace('msgid "Contents"\nmsgstr ""', 'msgid "Contents"\nmsgstr "Inhalt"'),
        encoding="utf-8",
    )
    (workspace / ISSUE / "visite-kazakhstan.de.md").write_text(
        "---\ntitle: Besuch aus Kasachstan\nsection: news\norder: 1\n---\nText.\n", encoding="utf-8"
    )
    result = cli("build", EXAMPLE_ISSUE, cwd=workspace)
    assert result.code == 0
    german = (workspace / "build" / EXAMPLE_ISSUE / "de" / "email.txt").read_text()
    assert "INHALT" in german  # translated by the workspace catalogue
    assert "Read online:" in german  # not translated yet: English
    again = cli("catalogue", "de", cwd=workspace)
    assert again.out.startswith("updated") and "to translate" in again.out
    assert 'msgstr "Inhalt"' in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_shipped_catalogues_are_complete(lang: str) -> None:
    messages = extract_messages([package_templates_dir()])
    with (PACKAGE_LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalogue = {m.id: m.string for m in read_po(handle) if m.id}
    missing = sorted(m for m in messages if not catalogue.get(m))
    assert not missing, (
        f"untranslated in {lang}: {missing}; run scripts/update-catalogues and translate"
    )
    stale = sorted(set(catalogue) - set(messages))
    assert not stale, f"no longer used in {lang}: {stale}; run scripts/update-catalogues"
