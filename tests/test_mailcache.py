"""What `build` leaves for `send`: the same messages as a fresh render, every changed input
noticed, and a send of a built issue that never loads the renderer."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from hebdo_mail.config import Settings
from hebdo_mail.publish.mailcache import RENDER_SETTINGS, mail_editions
from hebdo_mail.workspace import load_workspace

from .helpers import EXAMPLE_ISSUE, Result, append_settings, replace_in
from .smtpserver import Recorder, SmtpServer

PUBLISH = Path(__file__).parents[1] / "src" / "hebdo_mail" / "publish"


def listing(ws: Path) -> None:
    rows = [
        "reader1@example.org,Hélène Lefèvre,fr,html,Liège",
        "reader2@example.org,Jack O'Connor,en,html,Cork",
        "reader3@example.org,Zoé Nguyễn,fr,text,Huế",
    ]
    (ws / "list.csv").write_text("email,name,lang,format,city\n" + "\n".join(rows) + "\n")


def personal_footer(ws: Path) -> None:
    """Templates that print personal fields, so the cached slots are exercised too."""
    footer = ws / "templates" / "partials" / "footer_email.html"
    footer.parent.mkdir(parents=True)
    footer.write_text(
        '<p>Pour {{ subscriber.name }} ({{ subscriber.city }}) · <a href="{{ unsubscribe_url }}">'
        "Se désabonner</a></p>\n"
    )


def sent(ws: Path, cli: Callable[..., Result]) -> dict[str, tuple[str, bytes]]:
    """Each reader's envelope sender and message (its Date line aside), sent afresh."""
    shutil.rmtree(ws / "logs", ignore_errors=True)
    recorder = Recorder()
    with SmtpServer(recorder) as server:
        result = cli(
            "send", EXAMPLE_ISSUE, "--subscribers", "list.csv", "--smtp", server.url, "--yes",
            cwd=ws,
        )  # fmt: skip
    assert result.code == 0 and result.out.startswith("3 sent"), result.err
    return {
        item.rcpt: (item.mail_from, re.sub(rb"\nDate: [^\r\n]*", b"", item.data))
        for item in recorder.received
    }


def run_digest(ws: Path) -> object:
    lines = (ws / "logs" / f"{EXAMPLE_ISSUE}.jsonl").read_text().splitlines()
    return next(json.loads(line)["digest"] for line in lines if '"event":"run"' in line)


def test_a_send_from_the_build_is_the_send_a_fresh_render_makes(
    ws: Path, cli: Callable[..., Result]
) -> None:
    # Counted links (signed with the secret) and VERP: what the cache must carry or leave alone.
    append_settings(ws, "[tracking]\nclicks = true\n\n[bounces]\nverp = true\n")
    personal_footer(ws)
    listing(ws)
    assert cli("build", EXAMPLE_ISSUE, cwd=ws).code == 0
    workspace = load_workspace(ws, explicit=True)
    _, cached = mail_editions(ws / "issues" / EXAMPLE_ISSUE, workspace)
    assert all(edition.web_html == "" for edition in cached.values())  # from the build
    from_build, digest_from_build = sent(ws, cli), run_digest(ws)

    shutil.rmtree(ws / "build")
    _, rendered = mail_editions(ws / "issues" / EXAMPLE_ISSUE, workspace)
    assert all(edition.web_html for edition in rendered.values())  # rendered now
    for lang, edition in rendered.items():
        assert (edition.subject, edition.html, edition.text) == (
            cached[lang].subject, cached[lang].html, cached[lang].text,
        )  # fmt: skip
        assert (edition.slots, edition.digests) == (cached[lang].slots, cached[lang].digests)
        assert edition.marker_pattern.pattern == cached[lang].marker_pattern.pattern
    fresh = sent(ws, cli)
    assert from_build == fresh and len(fresh) == 3
    assert all(sender.startswith("bounces+") for sender, _ in fresh.values())
    assert b"/l/" + EXAMPLE_ISSUE.encode() in fresh["reader1@example.org"][1]  # counted links
    assert digest_from_build == run_digest(ws)  # a resumed send sees the same issue


def test_every_input_the_rendering_read_is_watched(ws: Path, cli: Callable[..., Result]) -> None:
    folder = ws / "issues" / EXAMPLE_ISSUE
    workspace = load_workspace(ws, explicit=True)

    def from_build() -> bool:
        """Whether a send now takes the editions from the build (else it renders)."""
        _, editions = mail_editions(folder, load_workspace(ws, explicit=True))
        return all(edition.web_html == "" for edition in editions.values())

    def changes_something(change: Callable[[], object]) -> bool:
        assert cli("build", EXAMPLE_ISSUE, cwd=ws).code == 0
        assert from_build()
        change()
        return not from_build()

    article = folder / "transit-fias.md"
    catalogue = ws / "locale" / "fr" / "LC_MESSAGES" / "messages.po"
    catalogue.parent.mkdir(parents=True)
    assert changes_something(lambda: replace_in(article, "hommes et matériel", "troupes"))
    assert changes_something(lambda: (folder / "notes.txt").write_text("a new file"))
    assert changes_something(lambda: personal_footer(ws))
    assert changes_something(
        lambda: catalogue.write_text('msgid "Read online"\nmsgstr "Lire sur le site"\n')
    )
    assert changes_something(lambda: replace_in(ws / "hebdo.toml", "#003366", "#663300"))
    assert changes_something(lambda: append_settings(ws, "[tracking]\nclicks = true\n"))
    # What the renderer does not read, or a file rewritten as it was, leaves the build in use.
    assert not changes_something(lambda: append_settings(ws, "[send]\nconcurrency = 3\n"))
    assert not changes_something(lambda: article.write_bytes(article.read_bytes()))
    _, editions = mail_editions(folder, workspace)
    assert "troupes" in editions["fr"].html and "Lire sur le site" in editions["fr"].html


def test_the_watched_settings_are_those_the_renderer_reads() -> None:
    sections = set(Settings.model_fields)
    read = {
        name
        for path in PUBLISH.glob("*.py")
        for name in re.findall(r"settings\.(\w+)", path.read_text())
        if name in sections
    }
    assert read and read <= set(RENDER_SETTINGS), read - set(RENDER_SETTINGS)


def test_a_send_of_a_built_issue_and_status_load_no_renderer_nor_settings_model(
    ws: Path, cli: Callable[..., Result]
) -> None:
    listing(ws)
    assert cli("build", EXAMPLE_ISSUE, cwd=ws).code == 0
    probe = (
        "import sys\nfrom hebdo_mail.cli.main import main\n"
        "code = main(sys.argv[1:])\n"
        "heavy = ['hebdo_mail.publish.render', 'premailer', 'lxml', 'jinja2', 'markdown_it',"
        " 'PIL', 'pydantic', 'aiosmtplib']\n"
        "print(code, *[name for name in heavy if name in sys.modules])\n"
    )

    def loaded(*args: str) -> list[str]:
        result = subprocess.run(
            [sys.executable, "-c", probe, *args], cwd=ws, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        return result.stdout.strip().splitlines()[-1].split()

    dry_run = ["send", EXAMPLE_ISSUE, "--subscribers", "list.csv", "--dry-run"]
    # An SMTP client; no renderer, no settings' models (build left their checked copy).
    assert loaded(*dry_run) == ["0", "aiosmtplib"]
    assert loaded("status", EXAMPLE_ISSUE) == ["0"]
    replace_in(ws / "issues" / EXAMPLE_ISSUE / "transit-fias.md", "matériel", "vivres")
    assert "hebdo_mail.publish.render" in loaded(*dry_run)  # a changed issue: rendered again
