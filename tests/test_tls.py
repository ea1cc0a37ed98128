"""TLS: certificates are checked unless the admin turns that off (with a warning every time),
and a required STARTTLS that the relay does not offer stops the send."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .helpers import EXAMPLE_ISSUE, Result
from .smtpserver import Recorder, SmtpServer


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=relay.test", "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


def insecure(ws: Path) -> None:
    with (ws / "hebdo.toml").open("a") as handle:
        handle.write("\n[smtp]\nverify_tls = false\n")


def test_a_self_signed_relay_is_refused_by_default(
    ws: Path, cli: Callable[..., Result], certificate: ssl.SSLContext
) -> None:
    recorder = Recorder()
    with SmtpServer(recorder, implicit_tls=certificate) as server:
        result = cli(
            "send",
            EXAMPLE_ISSUE,
            "--subscribers",
            "subscribers.example.csv",
            "--smtp",
            f"smtps://127.0.0.1:{server.port}",
            "--yes",
            cwd=ws,
        )
    assert result.code == 1
    assert f"127.0.0.1:{server.port}:" in result.err and "certificate" in result.err.lower()
    assert len(result.err.strip().splitlines()) == 1
    assert recorder.received == []


def test_turning_verification_off_works_and_warns(
    ws: Path, cli: Callable[..., Result], certificate: ssl.SSLContext
) -> None:
    insecure(ws)
    recorder = Recorder()
    with SmtpServer(recorder, implicit_tls=certificate) as server:
        result = cli(
            "send",
            EXAMPLE_ISSUE,
            "--subscribers",
            "subscribers.example.csv",
            "--smtp",
            f"smtps://127.0.0.1:{server.port}",
            "--yes",
            cwd=ws,
        )
    assert result.code == 0, result.err
    assert (
        "warning: TLS certificates of 127.0.0.1" in result.err and "are not checked" in result.err
    )
    assert len(recorder.received) == 5


def test_starttls_then_pipelined_sending(
    ws: Path, cli: Callable[..., Result], certificate: ssl.SSLContext
) -> None:
    insecure(ws)
    recorder = Recorder()
    with SmtpServer(recorder, tls_context=certificate, require_starttls=True) as server:
        result = cli(
            "send",
            EXAMPLE_ISSUE,
            "--subscribers",
            "subscribers.example.csv",
            "--smtp",
            f"smtp+starttls://127.0.0.1:{server.port}",
            "--yes",
            cwd=ws,
        )
    assert result.code == 0, result.err
    assert len(recorder.received) == 5
