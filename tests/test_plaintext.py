"""The plaintext writer, block by block, on Markdown the example issue does not use."""

from __future__ import annotations

from hebdo_mail.publish.markdown import apply_typography, french_spacing, parse
from hebdo_mail.publish.plaintext import PlainTextWriter, reference_lines


def text_of(source: str, language: str = "en") -> str:
    tokens = parse(source)
    apply_typography(tokens, language)
    writer = PlainTextWriter(
        resolve_url=lambda name: f"https://x.example/files/{name}", gettext=lambda s: s
    )
    return writer.render(tokens)


def test_paragraphs_wrap_at_76_and_keep_hard_breaks() -> None:
    words = " ".join(["newsletter"] * 30)
    out = text_of(words + "  \nafter the break")
    lines = out.splitlines()
    assert all(len(line) <= 76 for line in lines)
    assert lines[-1] == "after the break"
    assert " ".join(lines[:-1]) == words


def test_links_become_numbered_references_and_repeat_the_same_number() -> None:
    out = text_of(
        "See [the plan](https://a.example/p) and [the annex](annex.pdf), then [again](https://a.example/p)."
    )
    assert "See the plan [1] and the annex [2], then again [1]." in out
    assert out.endswith("[1] https://a.example/p\n[2] https://x.example/files/annex.pdf")


def test_bare_urls_and_mail_addresses_are_not_numbered() -> None:
    out = text_of("Write to <ed@example.org> or read https://a.example/x")
    assert out == "Write to ed@example.org or read https://a.example/x"


def test_a_long_url_goes_alone_on_its_line() -> None:
    url = "https://example.org/" + "a" * 90
    out = text_of(f"[report]({url})")
    assert out.splitlines()[-2:] == ["[1]", url]


def test_nested_lists_indent_and_wrap_under_their_marker() -> None:
    out = text_of(
        "1. first point which is long enough " + "to wrap " * 10 + "\n   - nested item\n2. second"
    )
    lines = out.splitlines()
    assert lines[0].startswith("1. first point")
    assert all(line.startswith("   ") for line in lines[1:-2])
    assert "   - nested item" in lines
    assert lines[-1] == "2. second"


def test_quotes_code_and_rules() -> None:
    out = text_of("> quoted *words*\n\n```\ncode  line\n```\n\n---\n\nend")
    assert out.splitlines()[0] == "    quoted words"
    assert "    code  line" in out
    assert "* * *" in out


def test_headings_underlined_and_markup_dropped() -> None:
    out = text_of("## A **bold** heading\n\nbody with `code` and ~~old~~ text")
    assert out.startswith("A bold heading\n--------------\n\nbody with code and old text")


def test_narrow_table_aligned_wide_table_as_records() -> None:
    narrow = text_of("| City | Year |\n|---|---|\n| Riga | 2006 |")
    assert narrow.splitlines() == ["City  Year", "----  ----", "Riga  2006"]
    wide = text_of("| Name | Description |\n|---|---|\n| IPAP | " + "a long description " * 6 + "|")
    assert wide.splitlines()[0] == "Name: IPAP"
    assert wide.splitlines()[1].startswith("Description: a long description")
    assert all(len(line) <= 76 for line in wide.splitlines())


def test_images_are_described_by_their_alt_text() -> None:
    assert text_of("![A map of the region](map.png)") == "[Image: A map of the region]"


def test_french_spacing_binds_punctuation_to_its_word() -> None:
    assert (
        french_spacing("« Oui » : non ; vraiment ?")
        == "«\u00a0Oui\u00a0»\u00a0: non\u202f; vraiment\u202f?"
    )
    assert french_spacing("à 10:30, voir http://x.org") == "à 10:30, voir http://x.org"
    out = text_of(("mot " * 17) + "« citation »", language="fr")
    assert "«\u00a0citation\u00a0»" in out and not any(
        line.startswith("»") for line in out.splitlines()
    )


def test_reference_lines_fit_or_split() -> None:
    assert reference_lines(["https://a.example"]) == ["[1] https://a.example"]
