"""init makes a working workspace; build handles issue folders unlike the example."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

from lxml import html as lxml_html

from .helpers import Result


def test_init_creates_a_workspace_that_builds(tmp_path: Path, cli: Callable[..., Result]) -> None:
    result = cli("init", "mynews", cwd=tmp_path)
    assert result.code == 0, result.err
    root = tmp_path / "mynews"
    assert (root / "hebdo.toml").read_text().count('name = "Mynews"') == 1
    assert stat.S_IMODE((root / ".hebdo-secret").stat().st_mode) == 0o600
    assert len((root / ".hebdo-secret").read_text().strip()) >= 40
    assert (root / "issues" / "2006-50" / "issue.toml").is_file()
    built = cli("build", "issues/2006-50", cwd=root)
    assert built.code == 0, built.err
    assert (root / "build" / "2006-50" / "fr" / "email.html").is_file()


def test_init_refuses_a_folder_in_use(tmp_path: Path, cli: Callable[..., Result]) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("x")
    result = cli("init", "busy", cwd=tmp_path)
    assert result.code == 1 and "is not empty" in result.err


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_an_english_issue_with_other_sections_and_no_order(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    root = tmp_path / "update"
    write(
        root / "hebdo.toml",
        '[newsletter]\nname = "NATO Update"\nfrom = "NATO Update <update@example.net>"\n'
        'base_url = "https://update.example.net/"\nlanguage = "en-GB"\ndate_format = "dd-MMM-yyyy"\n',
    )
    issue = root / "issues" / "2007-03"
    write(
        issue / "issue.toml", 'number = 3\ndate = 2007-01-19\nsections = ["Briefing", "Archive"]\n'
    )
    write(
        issue / "b-second.md",
        "---\ntitle: Second item\nsection: Archive\n---\nSee [the brochure](brochure.pdf).\n",
    )
    write(
        issue / "a-first.md",
        "---\ntitle: 'First: the opening item'\nsection: Briefing\nmedia:\n"
        "  - url: https://video.example.net/clip\n    label: Video of the briefing\n"
        "  - file: brochure.pdf\n    label: Brochure\n---\n"
        "# Heading one\n\n![External chart](https://cdn.example.net/chart.png)\n\n"
        "| Ministry | Contact | Topic | Notes |\n|---|---|---|---|\n"
        "| Defence | press@example.net | Logistics and transport of personnel | none so far, ask again |\n",
    )
    (issue / "brochure.pdf").write_bytes(b"%PDF-1.4\n" + bytes(3 * 1024 - 9))
    result = cli("build", "2007-03", cwd=root)
    assert result.code == 0, result.err
    out = root / "build" / "2007-03" / "en-GB"
    text = (out / "email.txt").read_text()
    # Without order, the lead story is the first article of the first section.
    assert "LEAD STORY · BRIEFING\n\nFirst: the opening item\n" in text
    assert "Issue 3 — 19-Jan-2007" in text
    assert "Brochure (PDF, 3\u00a0KB)" in text
    assert "- Video of the briefing\n  https://video.example.net/clip\n\n- Brochure" in text
    assert "Ministry: Defence" in text  # too wide for columns: one record per row
    document = lxml_html.fromstring((out / "email.html").read_bytes())
    assert document.get("lang") == "en-GB"
    assert document.xpath("//title/text()") == ["NATO Update, issue 3 — 19-Jan-2007"]
    assert document.xpath("//img[@alt='External chart']/@src") == [
        "https://cdn.example.net/chart.png"
    ]
    assert "https://update.example.net/issues/2007-03/files/brochure.pdf" in document.xpath(
        "//a/@href"
    )
    assert (root / "build" / "2007-03" / "files" / "brochure.pdf").is_file()
