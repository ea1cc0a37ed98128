"""DKIM: keys made by `dkim keygen`, every message signed on the fast path, each signature checked
by dkimpy against the record keygen printed (looked up through a DNS function of the test)."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable
from pathlib import Path

import dkim
import pytest
from starlette.testclient import TestClient

from hebdo_mail.web.app import create_app
from hebdo_mail.workspace import load_workspace

from .helpers import EXAMPLE_ISSUE, Result, post_form
from .smtpserver import Recorder, SmtpServer

ALGORITHMS = ["rsa-sha256", "ed25519-sha256"]
COVERED = (
    "from:to:subject:date:message-id:mime-version:content-type:list-id:list-unsubscribe:"
    "list-unsubscribe-post"
)
READERS = (
    "email,name,lang,format\n"
    "helene.lefevre@example.org,Hélène Lefèvre,fr,html\n"
    "marc.dubois@example.net,Marc Dubois,fr,text\n"
    "j.oconnor@example.org,Jack O'Connor,en,html\n"
)


@pytest.fixture
def ws(ws: Path) -> Path:
    (ws / "readers.csv").write_text(READERS, encoding="utf-8")
    # A paragraph opening with a dot: SMTP doubles it on the wire, the signature must not see it.
    (ws / "issues" / EXAMPLE_ISSUE / "points.md").write_text(
        "---\ntitle: Points de suspension\nsection: Multimédia\n---\n"
        ".NET et .org : deux suffixes en tête de ligne.\n",
        encoding="utf-8",
    )
    return ws


def keygen(cli: Callable[..., Result], ws: Path, algorithm: str) -> str:
    """Make a key, add the [dkim] section keygen suggests; returns the published TXT record."""
    result = cli("dkim", "keygen", "--algorithm", algorithm, cwd=ws)
    assert result.code == 0, result.err
    record_line = next(line for line in result.out.splitlines() if "._domainkey." in line)
    assert record_line.startswith("hebdo._domainkey.example.org. IN TXT ")
    strings = re.findall(r'"([^"]*)"', record_line)
    assert all(len(s) <= 255 for s in strings)  # one DNS character-string is at most 255
    section = result.out[result.out.index("[dkim]") :]
    with (ws / "hebdo.toml").open("a") as handle:
        handle.write("\n" + section)
    return "".join(strings)


def dns_answering(record: str, asked: list[bytes]) -> Callable[..., bytes]:
    def lookup(name: bytes, timeout: int = 5) -> bytes:
        asked.append(name)
        return record.encode() if name == b"hebdo._domainkey.example.org." else b""

    return lookup


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_message_verifies_and_any_change_breaks_it(
    ws: Path, cli: Callable[..., Result], algorithm: str
) -> None:
    record = keygen(cli, ws, algorithm)
    assert f"k={'rsa' if algorithm == 'rsa-sha256' else 'ed25519'};" in record
    key_file = ws / "dkim" / "hebdo.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    recorder = Recorder()
    with SmtpServer(recorder) as server:
        result = cli(
            "send", EXAMPLE_ISSUE, "--subscribers", "readers.csv", "--smtp", server.url, "--yes",
            cwd=ws,
        )  # fmt: skip
    assert result.code == 0, result.err
    assert len(recorder.received) == 3
    # The text edition carries the dotted line as is: the wire had it doubled.
    assert any(b"\r\n.NET et .org" in r.data for r in recorder.received)

    asked: list[bytes] = []
    lookup = dns_answering(record, asked)
    for item in recorder.received:
        data = item.data
        signature = item.message["DKIM-Signature"]
        tags = dict(
            tag.strip().split("=", 1) for tag in re.sub(r"\s+", "", signature).split(";") if tag
        )
        assert tags["a"] == algorithm and tags["d"] == "example.org" and tags["s"] == "hebdo"
        assert tags["h"].startswith(COVERED)
        assert dkim.verify(data, dnsfunc=lookup), item.rcpt
        # A relay adding its trace header does not break it; a change to a signed part does.
        assert dkim.verify(b"Received: from relay.test by mx.test\r\n" + data, dnsfunc=lookup)
        body_changed = data.replace(b"OTAN", b"0TAN", 2)
        assert body_changed != data and not dkim.verify(body_changed, dnsfunc=lookup)
        subject_changed = re.sub(rb"(?m)^Subject: ", b"Subject: Re: ", data, count=1)
        assert not dkim.verify(subject_changed, dnsfunc=lookup)
        unsubscribe_changed = data.replace(
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            b"List-Unsubscribe-Post: List-Unsubscribe=Two-Clicks",
        )
        assert not dkim.verify(unsubscribe_changed, dnsfunc=lookup)
    assert set(asked) == {b"hebdo._domainkey.example.org."}


def test_the_outbox_and_the_test_copy_are_signed_too(ws: Path, cli: Callable[..., Result]) -> None:
    record = keygen(cli, ws, "ed25519-sha256")
    assert cli("send", EXAMPLE_ISSUE, "--test", "editor@example.org", cwd=ws).code == 0
    copies = list((ws / "outbox").rglob("*.eml"))
    assert len(copies) == 1
    assert dkim.verify(copies[0].read_bytes(), dnsfunc=dns_answering(record, []))


def test_keygen_never_overwrites_a_key(ws: Path, cli: Callable[..., Result]) -> None:
    keygen(cli, ws, "rsa-sha256")
    key = (ws / "dkim" / "hebdo.pem").read_bytes()
    again = cli("dkim", "keygen", cwd=ws)
    assert again.code == 1
    assert again.err == (
        "hebdo-mail: error: dkim/hebdo.pem: already exists; move it aside to make a new key\n"
    )
    assert (ws / "dkim" / "hebdo.pem").read_bytes() == key


def test_a_missing_or_wrong_key_stops_before_sending(ws: Path, cli: Callable[..., Result]) -> None:
    with (ws / "hebdo.toml").open("a") as handle:
        handle.write(
            '\n[dkim]\ndomain = "example.org"\nselector = "s1"\nkey_file = "keys/s1.pem"\n'
            'algorithm = "ed25519-sha256"\n'
        )
    missing = cli("send", EXAMPLE_ISSUE, "--subscribers", "readers.csv", cwd=ws)
    errors = [line for line in missing.err.splitlines() if line.startswith("hebdo-mail: error")]
    assert missing.code == 1 and len(errors) == 1
    assert "keys/s1.pem: the DKIM key cannot be read" in missing.err
    assert "hebdo-mail dkim keygen" in missing.err
    assert not (ws / "outbox").exists() and not (ws / "logs").exists()

    (ws / "keys").mkdir()
    assert cli("dkim", "keygen", "--algorithm", "rsa-sha256", cwd=ws).code == 0
    wrong = cli("send", EXAMPLE_ISSUE, "--subscribers", "readers.csv", cwd=ws)
    assert wrong.code == 1
    assert "keys/s1.pem: does not hold a key for ed25519-sha256" in wrong.err

    (ws / "keys" / "s1.pem").write_text("not a key\n")
    garbage = cli("send", EXAMPLE_ISSUE, "--subscribers", "readers.csv", cwd=ws)
    assert "keys/s1.pem: is not a PEM private key" in garbage.err


def test_a_domain_that_does_not_align_with_from_is_warned(
    ws: Path, cli: Callable[..., Result]
) -> None:
    assert cli("dkim", "keygen", cwd=ws).code == 0
    settings = ws / "hebdo.toml"
    base = settings.read_text()
    section = '\n[dkim]\ndomain = "{}"\nselector = "hebdo"\nkey_file = "dkim/hebdo.pem"\n'
    settings.write_text(base + section.format("mailer.example.net"))
    result = cli("send", EXAMPLE_ISSUE, "--subscribers", "readers.csv", "--dry-run", cwd=ws)
    assert result.code == 0
    assert (
        "warning: [dkim] domain mailer.example.net is not the From domain example.org nor a "
        "parent of it" in result.err
    )
    settings.write_text(base + section.format("example.org"))
    aligned = cli("send", EXAMPLE_ISSUE, "--subscribers", "readers.csv", "--dry-run", cwd=ws)
    assert aligned.code == 0 and "[dkim] domain" not in aligned.err


def test_subscription_confirmations_are_signed_too(ws: Path, cli: Callable[..., Result]) -> None:
    record = keygen(cli, ws, "rsa-sha256")
    client = TestClient(create_app(load_workspace(ws, explicit=True)), base_url="http://testserver")
    response = post_form(client, "/subscribe", {"email": "new.reader@example.org", "lang": "fr"})
    assert response.status_code == 200
    (confirmation,) = (ws / "outbox" / "confirmations" / "new").iterdir()
    assert dkim.verify(confirmation.read_bytes(), dnsfunc=dns_answering(record, []))
