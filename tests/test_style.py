"""The brand without forking templates ([style] accent, logo, footer address), dark mode for
every client, and fallback articles that say which language they are in."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from lxml import html as lxml_html

from .helpers import EXAMPLE_ISSUE, Result
from .pictures import logo


def set_style(workspace: Path, style: str) -> None:
    config = workspace / "hebdo.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text[: text.index("[style]")] + "[style]\n" + style, encoding="utf-8")


def test_accent_logo_and_footer_address_brand_every_output(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    logo(workspace / "logo.png", 240, 60)
    set_style(
        workspace,
        'accent = "#7A1F5C"\nlogo = "logo.png"\n'
        'footer_address = """Le Petit Hebdo\n12 rue des Lilas\n69001 Lyon"""\n',
    )
    result = cli("build", EXAMPLE_ISSUE, cwd=workspace)
    assert result.code == 0, result.err
    assert "footer_address" not in result.err
    assert re.search(r"files/logo\.[0-9a-f]{8}\.png  .*\(from logo\.png: ", result.out)
    built = workspace / "build" / EXAMPLE_ISSUE
    email = lxml_html.fromstring((built / "fr" / "email.html").read_bytes())
    masthead = email.xpath("//td[contains(@class, 'masthead')]")[0]
    assert "background-color:#7a1f5c" in masthead.get("style").replace(" ", "")
    (img,) = masthead.xpath(".//img")
    assert re.fullmatch(
        r"https://hebdo\.example\.org/issues/2006-50/files/logo\.[0-9a-f]{8}\.png", img.get("src")
    )
    assert (img.get("width"), img.get("alt")) == ("240", "")
    title = email.xpath("//h2[contains(@class, 'article-title')]")[0]
    assert "color:#7a1f5c" in title.get("style").replace(" ", "")
    address = email.xpath("//p[@class='footer-address']")[0]
    assert [t.strip() for t in address.itertext()] == [
        "Le Petit Hebdo",
        "12 rue des Lilas",
        "69001 Lyon",
    ]
    text = (built / "en" / "email.txt").read_text()
    assert text.rstrip().endswith("Le Petit Hebdo\n12 rue des Lilas\n69001 Lyon")
    page = (built / "fr" / "index.html").read_text()
    assert "--brand: #7a1f5c;" in page and 'src="../files/logo.' in page
    assert (built / "files" / img.get("src").rsplit("/", 1)[1]).is_file()


def test_build_warns_until_the_postal_address_is_given(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    set_style(workspace, "")
    result = cli("build", EXAMPLE_ISSUE, cwd=workspace)
    assert result.code == 0
    assert "warning: hebdo.toml: no [style] footer_address; US (CAN-SPAM) and EU law" in result.err


def test_a_bad_accent_or_logo_is_one_line_naming_hebdo_toml(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    set_style(workspace, 'accent = "bleu"\n')
    bad = cli("build", EXAMPLE_ISSUE, cwd=workspace)
    assert bad.code == 1 and re.search(
        r"hebdo\.toml:\d+: style\.accent: 'bleu' is not a colour", bad.err
    )
    (workspace / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    set_style(workspace, 'logo = "logo.svg"\n')
    svg = cli("build", EXAMPLE_ISSUE, cwd=workspace)
    assert svg.code == 1 and svg.err.count("\n") == 1
    assert re.search(r"hebdo\.toml:\d+: style\.logo: 'logo\.svg' is SVG", svg.err)


def test_dark_mode_rules_also_speak_to_outlook_com(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    assert cli("build", EXAMPLE_ISSUE, cwd=workspace).code == 0
    email = workspace / "build" / EXAMPLE_ISSUE / "fr" / "email.html"
    css = lxml_html.fromstring(email.read_bytes()).xpath("//head/style")[0].text
    dark = css[css.index("prefers-color-scheme: dark") :]
    media_rules = re.findall(r"^  (\S[^{]*) \{", dark[: dark.index("\n}")], re.M)
    outlook = re.findall(r"^(\[data-og[sb]?[cb]\] [^{]*) \{", dark, re.M)
    assert media_rules and len(outlook) == len(media_rules)
    for plain, marked in zip(media_rules, outlook, strict=True):
        assert re.sub(r"\[data-og\w+\] ", "", marked) == plain
    assert "[data-ogsc] .block .kicker { color: #ff8a9b !important; }" in dark
    assert "[data-ogsb] .container { background-color: #1b1f24 !important; }" in dark


def test_a_fallback_article_carries_its_own_language(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    (workspace / "issues" / EXAMPLE_ISSUE / "transit-fias.en.md").unlink()
    assert cli("build", EXAMPLE_ISSUE, cwd=workspace).code == 0
    for name in ("email.html", "index.html"):
        page = lxml_html.fromstring(
            (workspace / "build" / EXAMPLE_ISSUE / "en" / name).read_bytes()
        )
        tagged = page.xpath("//div[contains(@class, 'article')][@lang]")
        assert [
            (d.get("lang"), d.xpath(".//*[contains(@class, 'article-title')]")[0].text_content())
            for d in tagged
        ] == [("fr", "Transit vers l'Afghanistan\u00a0: le rôle des pays d'Asie centrale")]
