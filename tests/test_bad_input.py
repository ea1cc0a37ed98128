"""Every kind of bad input gives one line naming the file (and line) and what to do, and the
previous build is left exactly as it was."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from hebdo_mail.checkedsettings import CACHE_NAME as SETTINGS_COPY
from hebdo_mail.errors import BuildError
from hebdo_mail.publish.build import write_tree

from .helpers import EXAMPLE_ISSUE, Result, replace_in, run_process

ISSUE = Path("issues") / EXAMPLE_ISSUE
LEAD = ISSUE / "visite-kazakhstan.md"
LEAD_EN = ISSUE / "visite-kazakhstan.en.md"  # read first: files are read in name order


def line_of(path: Path, needle: str) -> int:
    return next(
        i
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if needle in line
    )


def break_missing_title(ws: Path) -> tuple[str, str]:
    replace_in(ws / LEAD, "title: Le président du Kazakhstan reçu au siège de l'OTAN\n", "")
    return f"{LEAD}:1:", "missing required key 'title'"


def break_unknown_key(ws: Path) -> tuple[str, str]:
    replace_in(ws / LEAD, "author: Service de presse", "auteur: Service de presse")
    return f"{LEAD}:{line_of(ws / LEAD, 'auteur:')}:", "unknown key 'auteur'"


def break_bad_order(ws: Path) -> tuple[str, str]:
    replace_in(ws / LEAD, "order: 1", "order: premier")
    return f"{LEAD}:{line_of(ws / LEAD, 'order:')}:", "order: Input should be a valid integer"


def break_unknown_section(ws: Path) -> tuple[str, str]:
    replace_in(ws / LEAD, "section: Nouvelles", "section: Actualités")
    return (
        f"{LEAD}:{line_of(ws / LEAD, 'section:')}:",
        "section 'Actualités' is not one of the issue's sections",
    )


def break_yaml(ws: Path) -> tuple[str, str]:
    replace_in(ws / LEAD, "order: 1", "order: [1")
    return f"{LEAD}:", "front matter is not valid YAML"


def break_no_front_matter(ws: Path) -> tuple[str, str]:
    (ws / ISSUE / "note.md").write_text("Juste un paragraphe.\n", encoding="utf-8")
    return f"{ISSUE}/note.md:1:", "has no front matter"


def break_missing_media(ws: Path) -> tuple[str, str]:
    (ws / ISSUE / "point-de-presse.mp3").unlink()
    return (
        f"{LEAD_EN}:{line_of(ws / LEAD_EN, 'file: point-de-presse.mp3')}:",
        "media file 'point-de-presse.mp3' is not in the issue folder",
    )


def break_image_alt(ws: Path) -> tuple[str, str]:
    path = ws / ISSUE / "photos.md"
    replace_in(path, "![La rose des vents de l'OTAN, emblème de l'Alliance]", "![]")
    return f"{ISSUE}/photos.md:{line_of(path, '![](')}:", "image has no alt text"


def break_linked_file(ws: Path) -> tuple[str, str]:
    path = ws / ISSUE / "transit-fias.md"
    replace_in(path, "des accords de\ntransit", "des [accords](accords.pdf) de\ntransit")
    return (
        f"{ISSUE}/transit-fias.md:{line_of(path, 'accords.pdf')}:",
        "linked file 'accords.pdf' is not in the issue folder",
    )


def break_not_utf8(ws: Path) -> tuple[str, str]:
    path = ws / ISSUE / "transit-fias.md"
    path.write_bytes(path.read_text(encoding="utf-8").encode("cp1252"))
    return f"{ISSUE}/transit-fias.md:", "is not UTF-8 text"


def break_issue_toml_syntax(ws: Path) -> tuple[str, str]:
    replace_in(ws / ISSUE / "issue.toml", "number = 50", "number = = 50")
    return f"{ISSUE}/issue.toml:1:", "is not valid TOML"


def break_issue_toml_value(ws: Path) -> tuple[str, str]:
    replace_in(ws / ISSUE / "issue.toml", "date = 2006-12-15", 'date = "le 15"')
    return f"{ISSUE}/issue.toml:2:", "date: "


def break_subject_field(ws: Path) -> tuple[str, str]:
    replace_in(ws / ISSUE / "issue.toml", "{name} n°{number}", "{name.__class__} n°{number}")
    return f"{ISSUE}/issue.toml:4:", "only {name}, {number} and {date} are available"


def break_hebdo_toml_key(ws: Path) -> tuple[str, str]:
    replace_in(ws / "hebdo.toml", "language = ", "langage = ")
    return (
        f"hebdo.toml:{line_of(ws / 'hebdo.toml', 'langage')}:",
        "unknown key 'langage' in [newsletter]",
    )


def break_hebdo_toml_syntax(ws: Path) -> tuple[str, str]:
    replace_in(ws / "hebdo.toml", 'name = "OTAN Hebdo"', 'name = "OTAN Hebdo')
    return f"hebdo.toml:{line_of(ws / 'hebdo.toml', 'name = ')}:", "is not valid TOML"


def break_hebdo_toml_url(ws: Path) -> tuple[str, str]:
    replace_in(ws / "hebdo.toml", '"https://hebdo.example.org"', '"hebdo.example.org"')
    return f"hebdo.toml:{line_of(ws / 'hebdo.toml', 'base_url')}:", "is not an http(s) URL"


def break_template_variable(ws: Path) -> tuple[str, str]:
    override = ws / "templates" / "partials" / "masthead.html"
    override.parent.mkdir(parents=True)
    override.write_text(
        '<h1 class="masthead-name">{{ newsletter.name }}</h1>\n<p>{{ issue.numero }}</p>\n'
    )
    return f"{override.relative_to(ws)}:2:", "unknown template variable"


def break_template_syntax(ws: Path) -> tuple[str, str]:
    override = ws / "templates" / "email.txt"
    override.parent.mkdir(parents=True)
    override.write_text("{{ newsletter.name }}\n{% if %}\n")
    return "templates/email.txt:2:", "template syntax error"


def break_filtered_subscriber_field(ws: Path) -> tuple[str, str]:
    override = ws / "templates" / "partials" / "footer_email.html"
    override.parent.mkdir(parents=True)
    override.write_text(
        '<p>{{ subscriber.email | lower }}</p><a href="{{ unsubscribe_url }}">x</a>\n'
    )
    return f"{override.relative_to(ws)}:1:", "subscriber.email is passed through a filter"


BREAKERS = [value for name, value in sorted(globals().items()) if name.startswith("break_")]


@pytest.mark.parametrize("breaker", BREAKERS, ids=lambda f: f.__name__.removeprefix("break_"))
def test_bad_input_gives_one_line_and_keeps_the_previous_build(
    workspace: Path, cli: Callable[..., Result], breaker: Callable[[Path], tuple[str, str]]
) -> None:
    assert cli("build", EXAMPLE_ISSUE, cwd=workspace).code == 0
    before = {p: p.read_bytes() for p in (workspace / "build").rglob("*") if p.is_file()}

    location, message = breaker(workspace)
    result = cli("build", EXAMPLE_ISSUE, cwd=workspace)

    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith(f"hebdo-mail: error: {location}"), lines[0]
    assert message in lines[0]
    after = {p: p.read_bytes() for p in (workspace / "build").rglob("*") if p.is_file()}
    assert after == before
    left = {p.name for p in (workspace / "build").iterdir()} - {SETTINGS_COPY}
    assert left == {EXAMPLE_ISSUE}  # no staging folder


def test_no_traceback_from_a_real_process(workspace: Path) -> None:
    break_unknown_section(workspace)
    result = run_process("build", EXAMPLE_ISSUE, cwd=workspace)
    assert result.code == 1
    assert "Traceback" not in result.err
    assert re.fullmatch(r"hebdo-mail: error: \S+\.md:\d+: section .*\n", result.err)


def test_a_failed_write_leaves_the_old_folder_and_no_staging(tmp_path: Path) -> None:
    target = tmp_path / "build" / "issue"
    write_tree(target, {"fr/email.html": b"old"})
    with pytest.raises(BuildError) as caught:
        # "fr" is first written as a file, so "fr/email.txt" cannot be created beneath it.
        write_tree(target, {"fr": b"x", "fr/email.txt": b"new"})
    assert "cannot write the build" in str(caught.value)
    assert (target / "fr" / "email.html").read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["issue"]


def test_french_titles_with_a_colon_need_no_quotes(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    article = workspace / ISSUE / "plans-action.md"
    text = article.read_text(encoding="utf-8")
    title = next(line for line in text.splitlines() if line.startswith("title:"))
    replace_in(
        article,
        title,
        "title: Historique : les plans   # a comment stays a comment\n"
        "summary: Le point : dix ans de plans",
    )
    assert cli("build", EXAMPLE_ISSUE, cwd=workspace).code == 0
    html = (workspace / "build" / EXAMPLE_ISSUE / "fr" / "email.html").read_text()
    assert "Historique\u00a0: les plans</h3>" in html
    assert "Le point\u00a0: dix ans de plans" in html and "a comment" not in html


def test_a_colon_yaml_cannot_read_gets_the_exact_hint(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    # Inside a {flow: mapping} the value cannot be told from the syntax: quoting is the way.
    replace_in(
        workspace / LEAD,
        "image:\n  src: rose-des-vents.png\n  alt: La rose des vents de l'OTAN, blanche sur fond bleu",
        "image: {src: rose-des-vents.png, alt: La rose des vents : emblème}",
    )
    result = cli("build", EXAMPLE_ISSUE, cwd=workspace)
    assert result.code == 1 and result.err.count("\n") == 1
    assert re.search(
        rf"{LEAD}:\d+: front matter is not valid YAML: .*; a value containing ': ' must be "
        r"quoted, as in title: \"Historique : les plans\"",
        result.err,
    )
