"""Pictures: shown at most at their own width, prepared for mail with Pillow, online under
content-hashed names before the first send, and rendering that never changes its input."""

from __future__ import annotations

import email
import hashlib
import itertools
import re
from collections.abc import Callable
from email import policy
from pathlib import Path

import pytest
from lxml import html as lxml_html
from PIL import Image
from starlette.testclient import TestClient

from hebdo_mail.publish.issue import load_issue
from hebdo_mail.publish.render import render_edition, render_web
from hebdo_mail.web.app import create_app
from hebdo_mail.workspace import load_workspace, write_secret

from .helpers import EXAMPLE_ISSUE, Result
from .pictures import GPS_IFD, LONG_URL, illustrate_example, logo, photo, save_jpeg

BUILD_FILE = re.compile(r"^build/\S+/files/(\S+)  ([\d.]+ [KM]?B)  \(from (\S+): (.*)\)$")


@pytest.fixture
def illustrated(workspace: Path) -> Path:
    illustrate_example(workspace)
    return workspace


def built_files(result: Result) -> dict[str, tuple[str, str]]:
    """Source name -> (public name, the build's before/after line) for each picture."""
    found = {}
    for line in result.out.splitlines():
        if match := BUILD_FILE.match(line):
            found[match.group(3)] = (match.group(1), line)
    return found


def folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def test_pictures_are_sized_compressed_and_stripped_for_mail(
    illustrated: Path, cli: Callable[..., Result]
) -> None:
    folder = illustrated / "issues" / EXAMPLE_ISSUE
    before = folder_digest(folder)
    result = cli("build", EXAMPLE_ISSUE, cwd=illustrated)
    assert result.code == 0, result.err
    assert folder_digest(folder) == before, "the source folder is never touched"
    files = built_files(result)
    out = illustrated / "build" / EXAMPLE_ISSUE / "files"

    carte, line = files["carte-polygone.png"]
    assert "3000×2000 px → 1120×747 px" in line
    with Image.open(out / carte) as prepared:
        assert prepared.size == (1120, 747) and prepared.format == "PNG"
    assert (out / carte).stat().st_size * 4 < (folder / "carte-polygone.png").stat().st_size

    steppe, line = files["steppe.jpg"]
    assert "1600×1067 px → 1120×747 px" in line
    data = (out / steppe).read_bytes()
    with Image.open(out / steppe) as prepared:
        assert prepared.size == (1120, 747) and prepared.format == "JPEG"
        assert GPS_IFD not in prepared.getexif() and not prepared.getexif()
    assert b"Exif" not in data and b"Camera Maker" not in data and b"press office" not in data
    assert len(data) < (folder / "steppe.jpg").stat().st_size

    small, line = files["laboratoire.jpg"]
    logo_name, line = files["logo-partenariat.png"]
    with Image.open(out / small) as a, Image.open(out / logo_name) as b:
        assert (a.size, b.size, b.mode) == ((400, 300), (120, 60), "RGBA")


def test_each_picture_is_shown_at_most_at_its_own_width_in_every_edition(
    illustrated: Path, cli: Callable[..., Result]
) -> None:
    result = cli("build", EXAMPLE_ISSUE, cwd=illustrated)
    assert result.code == 0
    assert "laboratoire.md: no en translation" in result.err  # the fallback article, with a photo
    expected = {"rose-des-vents": 560, "steppe": 560, "laboratoire": 400, "logo-partenariat": 120}
    expected["carte-polygone"] = 560
    for lang, page in itertools.product(("fr", "en"), ("email.html", "index.html")):
        document = lxml_html.fromstring(
            (illustrated / "build" / EXAMPLE_ISSUE / lang / page).read_bytes()
        )
        shown = {}
        for img in document.xpath("//img"):
            stem = img.get("src").rsplit("/", 1)[1].split(".")[0]
            shown[stem] = int(img.get("width"))
            assert img.get("height") is None  # never height="auto"
            assert f"max-width:{img.get('width')}px" in img.get("style").replace(" ", "")
            if page == "index.html":
                assert img.get("src").startswith("../files/"), "the web page's links are relative"
        assert shown == expected, (lang, page)


def test_rendering_never_changes_what_the_next_render_sees(illustrated: Path) -> None:
    workspace = load_workspace(illustrated, explicit=True)
    folder = illustrated / "issues" / EXAMPLE_ISSUE
    renders: dict[str, Callable[[object], str]] = {
        "fr email": lambda issue: render_edition(issue, "fr", workspace).html,  # type: ignore[arg-type]
        "fr page": lambda issue: render_web(issue, "fr", workspace),  # type: ignore[arg-type]
        "en email": lambda issue: render_edition(issue, "en", workspace).html,  # type: ignore[arg-type]
    }
    alone = {name: render(load_issue(folder, workspace)) for name, render in renders.items()}
    for order in itertools.permutations(renders):
        issue = load_issue(folder, workspace)
        for name in order:
            assert renders[name](issue) == alone[name], f"{name} after {order}"


def test_text_part_names_each_picture_where_it_stands(
    illustrated: Path, cli: Callable[..., Result]
) -> None:
    assert cli("build", EXAMPLE_ISSUE, cwd=illustrated).code == 0
    text = (illustrated / "build" / EXAMPLE_ISSUE / "en" / "email.txt").read_text()
    lead = text.index("Kazakhstan's President welcomed at NATO Headquarters\n====")
    picture = text.index("[Image: The NATO compass rose, white on a blue background]")
    assert lead < picture < text.index("Nursultan Nazarbayev and Jaap de Hoop Scheffer")
    assert "[Image: Partnership for Peace logo]" in text
    assert LONG_URL in text


@pytest.mark.parametrize(
    ("name", "content", "hint"),
    [
        ("logo.svg", b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "is SVG"),
        ("photo.webp", b"RIFF\x00\x00\x00\x00WEBPVP8 ", "is WebP"),
        ("scan.tif", b"II*\x00" + bytes(64), "is TIFF"),
        ("photo.jpg", b"not a picture at all", "is not a picture"),
    ],
)
def test_a_picture_mail_cannot_show_is_one_line_naming_the_article(
    workspace: Path, cli: Callable[..., Result], name: str, content: bytes, hint: str
) -> None:
    folder = workspace / "issues" / EXAMPLE_ISSUE
    (folder / name).write_bytes(content)
    article = folder / "transit-fias.md"
    article.write_text(article.read_text() + f"\n![Un schéma]({name})\n")
    line = len(article.read_text().splitlines())
    result = cli("build", EXAMPLE_ISSUE, cwd=workspace)
    assert result.code == 1
    assert result.err.count("\n") == 1
    assert f"transit-fias.md:{line}: picture '{name}' {hint}" in result.err
    assert "PNG" in result.err and ("JPEG" in result.err or "SVG" in result.err)


def test_an_animated_gif_is_kept_as_is_and_a_heavy_picture_is_named(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    folder = workspace / "issues" / EXAMPLE_ISSUE
    frames = [Image.effect_noise((480, 480), 80 + i).convert("P") for i in range(8)]
    frames[0].save(folder / "anime.gif", save_all=True, append_images=frames[1:], duration=100)
    Image.effect_noise((1100, 1100), 120).convert("RGB").save(folder / "bruit.png")
    article = folder / "transit-fias.md"
    article.write_text(article.read_text() + "\n![Animation](anime.gif)\n\n![Bruit](bruit.png)\n")
    result = cli("build", EXAMPLE_ISSUE, cwd=workspace)
    assert result.code == 0, result.err
    files = built_files(result)
    built = workspace / "build" / EXAMPLE_ISSUE / "files"
    assert (built / files["anime.gif"][0]).read_bytes() == (folder / "anime.gif").read_bytes()
    warnings = [line for line in result.err.splitlines() if line.startswith("warning: ")]
    assert any(w.startswith("warning: anime.gif: the animation is") for w in warnings)
    assert any(
        w.startswith("warning: bruit.png: ") and "MB even once prepared" in w for w in warnings
    )


def test_a_turned_photo_is_set_upright(workspace: Path, cli: Callable[..., Result]) -> None:
    folder = workspace / "issues" / EXAMPLE_ISSUE
    save_jpeg(folder / "portrait.jpg", photo(600, 400), orientation=6)  # shot with the phone turned
    article = folder / "transit-fias.md"
    article.write_text(article.read_text() + "\n![Portrait](portrait.jpg)\n")
    result = cli("build", EXAMPLE_ISSUE, cwd=workspace)
    public, line = built_files(result)["portrait.jpg"]
    assert "400×600 px → 400×600 px" in line
    with Image.open(workspace / "build" / EXAMPLE_ISSUE / "files" / public) as prepared:
        assert prepared.size == (400, 600) and not prepared.getexif()
    html = (workspace / "build" / EXAMPLE_ISSUE / "fr" / "email.html").read_text()
    assert re.search(rf'src="[^"]+/{re.escape(public)}"[^>]* width="400"', html)


def test_a_proof_copy_before_any_send_has_every_picture_online(
    illustrated: Path, cli: Callable[..., Result]
) -> None:
    write_secret(illustrated / ".hebdo-secret")
    result = cli("send", EXAMPLE_ISSUE, "--test", "editor@example.org", cwd=illustrated)
    assert result.code == 0, result.err
    assert not (illustrated / "logs" / f"{EXAMPLE_ISSUE}.jsonl").exists()
    (copy,) = (illustrated / "outbox" / "test" / "new").iterdir()
    message = email.message_from_bytes(copy.read_bytes(), policy=policy.default)
    html = message.get_body(("html",)).get_content()
    base = "https://hebdo.example.org"
    urls = set(re.findall(rf'(?:src|href)="{base}(/issues/{EXAMPLE_ISSUE}/files/[^"]+)"', html))
    assert len(urls) == 6  # five pictures and the recording
    client = TestClient(create_app(load_workspace(illustrated, explicit=True)))
    for url in urls:
        answer = client.get(url)
        assert answer.status_code == 200, url
        assert answer.headers["cache-control"].endswith("immutable")
    assert client.get(f"/issues/{EXAMPLE_ISSUE}/fr/").status_code == 404  # the page waits...
    # ...but the proof copy's "read online" link opens it, pictures and all.
    (online,) = set(re.findall(rf'href="{base}(/issues/{EXAMPLE_ISSUE}/fr/\?proof=[^"]+)"', html))
    page = client.get(online)
    assert page.status_code == 200 and page.headers["x-robots-tag"] == "noindex"
    assert "Le président du Kazakhstan reçu au siège" in page.text
    forged = online.replace("proof=", "proof=x")
    assert client.get(forged).status_code == 404
    text = message.get_body(("plain",)).get_content()
    assert f"{base}{online}" in text


def test_a_changed_picture_gets_a_new_name(illustrated: Path, cli: Callable[..., Result]) -> None:
    first = built_files(cli("build", EXAMPLE_ISSUE, cwd=illustrated))["logo-partenariat.png"][0]
    logo(illustrated / "issues" / EXAMPLE_ISSUE / "logo-partenariat.png", 100, 50)
    second = built_files(cli("build", EXAMPLE_ISSUE, cwd=illustrated))["logo-partenariat.png"][0]
    assert first != second and first.split(".")[0] == second.split(".")[0] == "logo-partenariat"
    client = TestClient(create_app(load_workspace(illustrated, explicit=True)))
    assert client.get(f"/issues/{EXAMPLE_ISSUE}/files/{second}").status_code == 200
    assert client.get(f"/issues/{EXAMPLE_ISSUE}/files/{first}").status_code == 404


def test_build_site_publishes_an_unsent_issues_files_but_not_its_page(
    illustrated: Path, cli: Callable[..., Result], tmp_path: Path
) -> None:
    files = built_files(cli("build", EXAMPLE_ISSUE, cwd=illustrated))
    result = cli("build", "--site", str(tmp_path / "site"), cwd=illustrated)
    assert result.code == 0, result.err
    issue = tmp_path / "site" / "issues" / EXAMPLE_ISSUE
    assert not (issue / "fr").exists()
    built = illustrated / "build" / EXAMPLE_ISSUE / "files"
    for public, _ in files.values():
        assert (issue / "files" / public).read_bytes() == (built / public).read_bytes()
