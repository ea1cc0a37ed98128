"""Values that end up in a header, a link or a line of the text part: refused with one line naming
the file and line when they are loaded (never a traceback at send time), or made to fit."""

from __future__ import annotations

import re
from collections.abc import Callable
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from pathlib import Path

import pytest

from hebdo_mail.audience.recipients import Recipient
from hebdo_mail.deliver.message import MessageFactory
from hebdo_mail.deliver.wireformat import from_wire

from .helpers import EXAMPLE_ISSUE, Result, replace_in

ISSUE = Path("issues") / EXAMPLE_ISSUE
LEAD = ISSUE / "visite-kazakhstan.md"


def line_of(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, 1) if needle in line)


def one_error(result: Result) -> str:
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    return lines[0]


@pytest.mark.parametrize(
    ("front_matter", "value"),
    [
        ("media:\n  - url: \"javascript:alert('x')\"\n    label: Vidéo", "javascript:alert('x')"),
        ('media:\n  - url: "  javascript:alert(1)"\n    label: Vidéo', "  javascript:alert(1)"),
        ('media:\n  - url: "data:text/html,<script>alert(1)</script>"\n    label: Vidéo', "data:text/html"),
        ('media:\n  - url: "//evil.example/clip"\n    label: Vidéo', "//evil.example/clip"),
        ('media:\n  - url: "clip.mp4"\n    label: Vidéo', "clip.mp4"),
        ('image: {src: "javascript:alert(1)", alt: Une image}', "javascript:alert(1)"),
        ('image: {src: "data:image/svg+xml,<svg onload=alert(1)>", alt: Une image}', "data:image/svg+xml"),
    ],
    ids=["javascript", "spaced", "data-url", "scheme-relative", "relative-url", "image-javascript", "image-data"],
)  # fmt: skip
def test_front_matter_links_lead_to_the_web_a_mailbox_or_the_issue_folder_only(
    workspace: Path, cli: Callable[..., Result], front_matter: str, value: str
) -> None:
    text = (workspace / LEAD).read_text(encoding="utf-8")
    start, end = text.index("image:\n"), text.index("---", 4)
    (workspace / LEAD).write_text(text[:start] + front_matter + "\n" + text[end:], encoding="utf-8")
    line = line_of(workspace / LEAD, "url:" if "url:" in front_matter else "image:")
    error = one_error(cli("build", EXAMPLE_ISSUE, cwd=workspace))
    assert error.startswith(f"hebdo-mail: error: {LEAD}:{line}: "), error
    assert value in error and "use http:// or https://" in error


def test_web_and_mail_links_in_front_matter_are_fine(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    replace_in(
        workspace / LEAD,
        "media:\n",
        "media:\n  - url: https://video.example.org/clip\n    label: Vidéo\n"
        "  - url: mailto:presse@example.org\n    label: Écrire au service de presse\n",
    )
    assert cli("build", EXAMPLE_ISSUE, cwd=workspace).code == 0


HEADER_VALUES = [
    ("hebdo.toml", 'name = "OTAN Hebdo"', 'name = "OTAN\\u2028Hebdo"', "newsletter.name"),
    ("hebdo.toml", 'en = "NATO Update"', 'en = "NATO\\u0085Update"', "newsletter.names"),
    ("hebdo.toml", 'from = "OTAN Hebdo', 'list_id = "hebdo\\u000b.example.org"\nfrom = "OTAN Hebdo', "newsletter.list_id"),
    ("hebdo.toml", 'from = "OTAN Hebdo <', 'from = "OTAN\\u000cHebdo <', "newsletter.from"),
    ("hebdo.toml", 'reply_to = "redaction', 'reply_to = "\\u001credaction', "newsletter.reply_to"),
    (str(ISSUE / "issue.toml"), 'fr = "{name} n°', 'fr = "{name}\\u2029n°', "subject"),
    (str(ISSUE / "issue.toml"), 'fr = "{name} n°', 'fr = "{name}\\tn°', "subject"),
]  # fmt: skip


@pytest.mark.parametrize(("file", "old", "new", "key"), HEADER_VALUES)
def test_control_characters_in_header_values_are_refused_when_loaded(
    workspace: Path, cli: Callable[..., Result], file: str, old: str, new: str, key: str
) -> None:
    replace_in(workspace / file, old, new)
    for command in [("build",), ("send", "--subscribers", "subscribers.example.csv", "--dry-run")]:
        error = one_error(cli(command[0], EXAMPLE_ISSUE, *command[1:], cwd=workspace))
        # The line of the key, or of the [table] it is in.
        assert re.match(rf"hebdo-mail: error: {re.escape(file)}:\d+: {key}: ", error), error
        assert "must be a single line without control characters" in error


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ('"https://hebdo.example.org"', '"https://hebdo.example.org\\n"', "is not an http(s) URL"),
        ('"OTAN Hebdo <hebdo@example.org>"', '"hebdo@example.org, chef@example.org"', "is not one address"),
        ('"OTAN Hebdo <hebdo@example.org>"', '"OTAN Hebdo <hebdo@example.org> et les autres"', "is not one address"),
        ('"OTAN Hebdo <hebdo@example.org>"', '"Rédaction: hebdo@example.org;"', "is not one address"),
    ],
)  # fmt: skip
def test_base_url_in_full_and_from_exactly_one_mailbox(
    workspace: Path, cli: Callable[..., Result], old: str, new: str, reason: str
) -> None:
    replace_in(workspace / "hebdo.toml", old, new)
    error = one_error(cli("build", EXAMPLE_ISSUE, cwd=workspace))
    assert error.startswith(
        f"hebdo-mail: error: hebdo.toml:{line_of(workspace / 'hebdo.toml', new)}:"
    )
    assert reason in error


def test_a_long_display_name_is_folded_and_no_line_passes_998_octets(
    factory: MessageFactory,
) -> None:
    for name in ["📰" * 200, "Zoé " * 50, "é" * 200]:
        wire = factory.wire(Recipient(email="reader@example.org", name=name.strip()))
        assert max(len(line) for line in wire.split(b"\r\n")) <= 998
        raw_to = message_from_bytes(from_wire(wire), policy=policy.compat32)["To"]
        # Decoded as RFC 2047 says (the space between two encoded words is not part of the text).
        assert str(make_header(decode_header(raw_to))) == f"{name.strip()} <reader@example.org>"


def test_the_text_parts_contents_list_wraps_at_76_columns(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    long_title = (
        "Le président du Kazakhstan reçu au siège de l'OTAN pour un entretien consacré à "
        "l'Afghanistan, au partenariat et à l'ancien site d'essais de Semipalatinsk"
    )
    replace_in(
        workspace / LEAD,
        "title: Le président du Kazakhstan reçu au siège de l'OTAN",
        f"title: {long_title}",
    )
    assert cli("build", EXAMPLE_ISSUE, cwd=workspace).code == 0
    text = (workspace / "build" / EXAMPLE_ISSUE / "fr" / "email.txt").read_text(encoding="utf-8")
    contents = text[: text.index("=" * 76)]
    assert "* Le président du Kazakhstan" in contents and "Semipalatinsk" in contents
    assert max(len(line) for line in contents.splitlines()) <= 76
