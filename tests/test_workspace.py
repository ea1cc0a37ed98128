"""init makes a working workspace; build handles issue folders unlike the example."""

from __future__ import annotations

import datetime as dt
import re
import stat
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

from lxml import html as lxml_html

from .helpers import Result, run_process


def test_init_creates_a_workspace_whose_hints_work_as_printed(tmp_path: Path) -> None:
    result = run_process("init", "Le Petit Hebdo", cwd=tmp_path)
    assert result.code == 0, result.err
    root = tmp_path / "Le Petit Hebdo"
    assert (root / "hebdo.toml").read_text().count('name = "Le Petit Hebdo"') == 1
    assert stat.S_IMODE((root / ".hebdo-secret").stat().st_mode) == 0o600
    assert len((root / ".hebdo-secret").read_text().strip()) >= 40
    assert (root / "issues" / "example" / "issue.toml").is_file()
    # Every hint runs as printed, from where init ran (the live preview only gets its issue
    # checked: it would serve until stopped).
    hints = [line.split("#")[0].strip() for line in result.out.split("next:")[1].splitlines()]
    cd, *commands = [hint for hint in hints if hint]
    assert cd == "cd 'Le Petit Hebdo'" and len(commands) == 3
    for command in commands:
        if " preview " in command:
            command = command.replace(" preview ", " build ")
        done = subprocess.run(
            f"{cd} && {command}", shell=True, cwd=tmp_path, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, (command, done.stderr)
    assert (root / "build" / "example" / "fr" / "email.html").is_file()
    assert (root / "issues" / dt.date.today().isoformat() / "article-1.md").is_file()


def test_new_starts_the_next_issue_that_builds_once_written(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    result = cli("new", cwd=workspace)
    assert result.code == 0, result.err
    folder = workspace / "issues" / "2006-51"  # the example's id is its year and week
    assert result.out.splitlines()[0] == "issues/2006-51"
    config = tomllib.loads((folder / "issue.toml").read_text())
    assert (config["number"], config["date"]) == (51, dt.date(2006, 12, 22))
    assert config["sections"]["en"]["history"] == "History"
    assert config["subject"]["en"] == "{name} No. {number} — {date}"  # a pattern: kept
    assert "preheader" not in config  # last week's, commented out for the editor to rewrite
    toml = (folder / "issue.toml").read_text()
    assert '# fr = "Le président du Kazakhstan au siège' in toml
    assert "# send_at = 2006-12-22T08:00:00" in toml
    starter = folder / "article-1.md"
    assert "section: Nouvelles" in starter.read_text()
    starter.write_text(
        "---\ntitle: Le Conseil de l'Atlantique Nord en réunion\nsection: Nouvelles\n---\n"
        "Les ministres se sont réunis à Bruxelles.\n",
        encoding="utf-8",
    )
    built = cli("build", "2006-51", cwd=workspace)
    assert built.code == 0, built.err
    html = (workspace / "build" / "2006-51" / "fr" / "email.html").read_text()
    assert "OTAN Hebdo n°51 — 22 décembre 2006" in html
    again = cli("new", "--date", "2007-01-05", cwd=workspace)
    assert again.out.startswith("issues/2007-01\n")  # ISO week 1 of 2007
    taken = cli("new", "2006-51", cwd=workspace)
    assert taken.code == 1 and "already exists" in taken.err


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
    # The downloads come with their article, between it and the next one.
    downloads = text.index(
        "Downloads\n- Video of the briefing\n  https://video.example.net/clip\n- Brochure"
    )
    assert text.index("First: the opening item\n") < downloads < text.index("Second item\n=")
    assert "Ministry: Defence" in text  # too wide for columns: one record per row
    document = lxml_html.fromstring((out / "email.html").read_bytes())
    assert document.get("lang") == "en-GB"
    assert document.xpath("//title/text()") == ["NATO Update, issue 3 — 19-Jan-2007"]
    assert document.xpath("//img[@alt='External chart']/@src") == [
        "https://cdn.example.net/chart.png"
    ]
    brochure = [
        href
        for href in document.xpath("//a/@href")
        if re.fullmatch(
            r"https://update\.example\.net/issues/2007-03/files/brochure\.[0-9a-f]{8}\.pdf", href
        )
    ]
    assert len(brochure) == 2  # in the body and in the downloads
    assert (root / "build" / "2007-03" / "files" / brochure[0].rsplit("/", 1)[1]).is_file()


def test_status_loads_no_settings_model_yet_refuses_a_store_url_with_a_password(
    ws: Path, cli: Callable[..., Result]
) -> None:
    """`status` reads only where the log is and the store's URL: it answers without loading
    the settings' models (pydantic, a fifth of a second of start-up), and still checks the URL."""
    import sys

    probe = (
        "import sys; from hebdo_mail.cli.main import main; code = main(['status', '2006-50']);"
        " print(code, 'pydantic' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ws, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.splitlines()[-1] == "0 False", (done.stdout, done.stderr)
    with (ws / "hebdo.toml").open("a") as handle:
        handle.write('\n[store]\nurl = "postgresql://hebdo:secret@db.example.org/hebdo"\n')
    result = cli("status", "2006-50", cwd=ws)
    assert result.code == 1 and "hebdo.toml" in result.err
    assert "must not hold a password" in result.err and "secret" not in result.err
