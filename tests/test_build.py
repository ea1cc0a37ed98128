"""The example issue renders to golden HTML and text, and both have the properties mail needs."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest
from lxml import html as lxml_html

from .helpers import EXAMPLE_ISSUE, REPO, Result, run_process

GOLDEN = REPO / "tests" / "golden" / EXAMPLE_ISSUE
UPDATE = os.environ.get("HEBDO_UPDATE_GOLDEN") == "1"


@pytest.fixture
def built(workspace: Path, cli: Callable[..., Result]) -> Path:
    result = cli("build", f"issues/{EXAMPLE_ISSUE}", cwd=workspace)
    assert result.code == 0, result.err
    return workspace / "build" / EXAMPLE_ISSUE / "fr"


@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize("name", ["email.html", "email.txt", "index.html"])
def test_output_matches_golden_file(built: Path, name: str, lang: str) -> None:
    produced = (built.parent / lang / name).read_text(encoding="utf-8")
    golden = GOLDEN / lang / name
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(produced, encoding="utf-8")
    assert produced == golden.read_text(encoding="utf-8"), (
        f"{name} differs from {golden}; if the change is intended, rerun with HEBDO_UPDATE_GOLDEN=1"
    )


def test_build_prints_each_output_with_its_size(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    result = cli("build", f"issues/{EXAMPLE_ISSUE}", cwd=workspace)
    assert result.code == 0
    for name in ["fr/email.html", "en/email.txt", "fr/index.html", "files/point-de-presse."]:
        line = next(
            row
            for row in result.out.splitlines()
            if row.startswith(f"build/{EXAMPLE_ISSUE}/{name}")
        )
        path, shown, unit = line.split()[:3]
        size = (workspace / path).stat().st_size
        assert abs(float(shown) - size / 1024) < 0.1 and unit == "KB"
    # A picture: its size in the build, then where it came from, its size and pixels before.
    picture = next(row for row in result.out.splitlines() if "files/rose-des-vents." in row)
    assert re.fullmatch(
        r"build/2006-50/files/rose-des-vents\.[0-9a-f]{8}\.png  [\d.]+ KB  "
        r"\(from rose-des-vents\.png: 1\.9 KB, 560×240 px → 560×240 px\)",
        picture,
    )


def test_email_html_is_well_formed_email_markup(built: Path) -> None:
    source = (built / "email.html").read_text(encoding="utf-8")

    class Strict(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.stack: list[str] = []

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag not in {"meta", "img", "br", "hr", "link", "input"}:
                self.stack.append(tag)

        def handle_endtag(self, tag: str) -> None:
            assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
            self.stack.pop()

    parser = Strict()
    parser.feed(source)
    assert parser.stack == []

    document = lxml_html.fromstring(source.encode())
    assert document.get("lang") == "fr"
    style_blocks = document.xpath("//head/style")
    assert len(style_blocks) == 1, "the inlinable CSS must be gone, the responsive block kept"
    kept = style_blocks[0].text
    assert "@media only screen and (max-width: 620px)" in kept
    assert "!important" in kept and "prefers-color-scheme: dark" in kept
    assert document.xpath("//meta[@name='color-scheme']/@content") == ["light dark"]
    assert "<!--[if mso]>" in source
    assert (
        document.xpath("//div[@class='preheader']")[0]
        .text_content()
        .startswith("Le président du Kazakhstan")
    )
    layout_tables = document.xpath("//table[not(ancestor::td[contains(@class, 'block')])]")
    assert layout_tables and all(t.get("role") == "presentation" for t in layout_tables)
    images = document.xpath("//img")
    assert len(images) == 2 and all(img.get("alt") for img in images)
    assert all(
        img.get("src").startswith("https://hebdo.example.org/issues/2006-50/files/")
        for img in images
    )
    # Inlined: the elements carry the rules of the dropped <style> block.
    title = document.xpath("//h2[contains(@class, 'article-title')]")[0]
    assert "font-family:Georgia" in title.get("style").replace(" ", "")
    assert all(len(line.encode()) <= 998 for line in source.splitlines())


def test_email_html_has_the_bulletin_layout(built: Path) -> None:
    document = lxml_html.fromstring((built / "email.html").read_bytes())
    rows = document.xpath("//table[contains(@class, 'container')]/tr/td")
    kinds = [row.get("class") for row in rows]
    assert kinds == ["topbar", "masthead", "block", "block lead", *["block"] * 4, "footer"]

    def heading(row: object, xpath: str) -> list[str]:
        return [h.text_content().strip() for h in row.xpath(xpath)]  # type: ignore[attr-defined]

    masthead, contents, lead = rows[1], rows[2], rows[3]
    assert heading(masthead, ".//h1") == ["OTAN Hebdo"]
    assert "N°\u00a050 · 15 décembre 2006" in masthead.text_content()
    assert heading(contents, ".//h2") == ["Sommaire"]
    assert len(contents.xpath(".//a[starts-with(@href, '#article-')]")) == 5
    assert heading(lead, ".//h2") == ["Le président du Kazakhstan reçu au siège de l'OTAN"]
    assert heading(lead, ".//h3") == [
        "Afghanistan\u00a0: un appui affiché",
        "Dix ans de partenariat",
        "Semipalatinsk, quinze ans après",
    ]
    sections = [heading(row, "./h2")[0] for row in rows[4:8]]
    assert sections == ["Nouvelles", "Historique", "Opinion", "Multimédia"]
    assert heading(rows[4], ".//h3") == [
        "Transit vers l'Afghanistan\u00a0: le rôle des pays d'Asie centrale"
    ]
    # The lead story's download comes with it, described once, not pooled at the end.
    media = lead.xpath(".//ul[@class='media-list']")[0].text_content()
    assert "Enregistrement du point de presse (MP3, 39,1\u00a0ko)" in media
    assert document.text_content().count("Enregistrement du point de presse") == 1
    footer = rows[8]
    assert footer.xpath(".//a[normalize-space()='Se désabonner']/@href") == [
        "https://hebdo.example.org/unsubscribe/preview"
    ]
    assert "Questions ou remarques" in footer.text_content()
    assert rows[0].xpath(".//a/@href") == ["https://hebdo.example.org/issues/2006-50/fr/"]
    assert lead.xpath(".//blockquote")
    assert document.xpath("//table[@class='article-table']//th")[0].text_content() == "Pays"


def test_text_part_is_plain_and_wrapped(built: Path) -> None:
    text = (built / "email.txt").read_text(encoding="utf-8")
    assert not re.search(r"</?[a-z][^>]*>", text), "no HTML tags in the text part"
    assert "**" not in text and "](" not in text and "&nbsp;" not in text
    for line in text.splitlines():
        if len(line) > 76:
            assert re.fullmatch(r"\s*\S+://\S+", line), f"line over 76 columns: {line!r}"
    # Headings underlined, links numbered after the article, French typography kept.
    assert "Le président du Kazakhstan reçu au siège de l'OTAN\n" + "=" * 50 in text
    assert "Dix ans de partenariat\n----------------------" in text
    assert "Partenariat pour la paix [1]" in text and "[1] https://www.nato.int/pfp/" in text
    assert (
        "«\u00a0La science au\nservice de la paix\u00a0»" in text
        or "«\u00a0La science au service" in text
    )
    assert "FIAS\u00a0: il l'aide" in text
    assert "- l'interopérabilité" in text and "1. les itinéraires" in text
    assert "Géorgie      2004" in text


def test_web_version_links_back_to_the_cover_page(built: Path) -> None:
    document = lxml_html.fromstring((built / "index.html").read_bytes())
    back = document.xpath("//a[normalize-space()='Retour à la page de garde']/@href")
    assert back == ["../../../"]
    assert document.get("lang") == "fr"
    pictures = document.xpath("//img/@src")
    assert len(pictures) == 2 and all(
        re.fullmatch(r"\.\./files/rose-des-vents\.[0-9a-f]{8}\.png", src) for src in pictures
    )
    assert (built.parent / pictures[0].removeprefix("../")).is_file()


def test_python_dash_m_is_the_same_command(workspace: Path) -> None:
    result = run_process("build", EXAMPLE_ISSUE, cwd=workspace)
    assert result.code == 0, result.err
    assert f"build/{EXAMPLE_ISSUE}/fr/email.html" in result.out


def test_workspace_option_and_subfolder_discovery(
    workspace: Path, cli: Callable[..., Result], tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert cli("--workspace", str(workspace), "build", EXAMPLE_ISSUE, cwd=elsewhere).code == 0
    assert cli("build", ".", cwd=workspace / "issues" / EXAMPLE_ISSUE).code == 0
    missing = cli("build", EXAMPLE_ISSUE, cwd=elsewhere)
    assert missing.code == 1 and "no hebdo.toml" in missing.err and "hebdo-mail init" in missing.err


def test_build_warns_about_gmail_clipping_and_overlong_lines(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    issue = workspace / "issues" / EXAMPLE_ISSUE
    paragraph = "Un paragraphe assez long pour peser dans le message final, répété encore. " * 40
    body = "\n\n".join([paragraph] * 40) + "\n\n```\n" + "x" * 1200 + "\n```\n"
    (issue / "annexe.md").write_text(
        f"---\ntitle: Annexe\nsection: Opinion\n---\n{body}", encoding="utf-8"
    )
    result = cli("build", EXAMPLE_ISSUE, cwd=workspace)
    assert result.code == 0
    warnings = [line for line in result.err.splitlines() if line.startswith("warning: ")]
    assert any(
        "fr/email.html is" in w and "Gmail clips messages over about 102 KB" in w for w in warnings
    )
    assert any(
        re.search(r"fr/email\.txt:\d+: line of 1204 octets passes the 998", w) for w in warnings
    )
    # Paragraphs are folded between words; only the preformatted line, which must not be, stays long.
    html = (workspace / "build" / EXAMPLE_ISSUE / "fr" / "email.html").read_text()
    long_lines = [line for line in html.splitlines() if len(line.encode()) > 998]
    assert len(long_lines) == 1 and "x" * 1200 in long_lines[0]
