"""Hostile and broken input, generated (hypothesis) and by hand: never a traceback, never an
injected header or a second recipient, never template code run from data, never a secret shown."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from hebdo_mail.audience.addresses import InvalidAddress, check_name
from hebdo_mail.audience.listfile import CsvError, CsvSubscriber, read_subscribers
from hebdo_mail.audience.recipients import Recipient
from hebdo_mail.audience.tokens import TokenSigner
from hebdo_mail.config import load_settings
from hebdo_mail.deliver.message import MessageFactory
from hebdo_mail.deliver.wireformat import from_wire
from hebdo_mail.errors import ConfigError, HebdoError
from hebdo_mail.publish.articles import load_article
from hebdo_mail.publish.issue import load_issue
from hebdo_mail.publish.markdown import parse, render_html
from hebdo_mail.publish.plaintext import PlainTextWriter
from hebdo_mail.web.app import create_app
from hebdo_mail.workspace import load_workspace, write_secret

from .helpers import EXAMPLE_ISSUE, REPO, Result, run_process

FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
text = st.text(max_size=400)


@FUZZ
@given(front=text, body=text)
def test_any_article_file_loads_or_gives_an_issue_error(
    tmp_path: Path, front: str, body: str
) -> None:
    path = tmp_path / "article.md"
    path.write_text(f"---\n{front}\n---\n{body}", encoding="utf-8")
    try:
        article = load_article(path, tmp_path, "fr")
    except HebdoError as exc:
        assert str(exc).startswith("article.md") or "article.md" in str(exc)
        assert "\n" not in str(exc).strip()
    else:
        assert article.title and article.section


@FUZZ
@given(body=st.text(max_size=1500))
def test_any_markdown_body_renders_to_html_and_text(body: str) -> None:
    tokens = parse(body)
    render_html(
        tokens,
        resolve_url=lambda name: f"https://x.example/{name}",
        resolve_picture=lambda name: (f"https://x.example/{name}", 100),
    )
    text_part = PlainTextWriter(resolve_url=lambda name: name, gettext=lambda s: s).render(tokens)
    assert isinstance(text_part, str)
    assert "<script" not in html_of(body), "raw HTML must never pass into the email"


def html_of(body: str) -> str:
    return render_html(parse(body), resolve_url=str, resolve_picture=lambda name: (name, 100))


@pytest.mark.parametrize(
    "body", ["<script>alert(1)</script>", "a <img src=x onerror=alert(1)> b", "<b>bold</b>"]
)
def test_raw_html_is_shown_as_text(body: str) -> None:
    rendered = html_of(body)
    assert "<script" not in rendered and "<img" not in rendered and "<b>" not in rendered
    assert "&lt;" in rendered


@FUZZ
@given(content=text)
def test_any_issue_toml_loads_or_gives_an_issue_error(tmp_path: Path, content: str) -> None:
    workspace = load_workspace(REPO, explicit=True)
    folder = tmp_path / "2006-51"
    folder.mkdir(exist_ok=True)
    (folder / "issue.toml").write_text(content, encoding="utf-8")
    (folder / "a.md").write_text(
        "---\ntitle: A\nsection: Nouvelles\n---\nTexte.\n", encoding="utf-8"
    )
    try:
        load_issue(folder, workspace)
    except HebdoError as exc:
        assert "\n" not in str(exc).strip()


@FUZZ
@given(content=text)
def test_any_hebdo_toml_loads_or_gives_a_config_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "hebdo.toml"
    path.write_text(content, encoding="utf-8")
    try:
        load_settings(path)
    except ConfigError as exc:
        assert str(exc).startswith(str(path).lstrip("/")) or "hebdo.toml" in str(exc)


@FUZZ
@given(
    data=st.binary(max_size=2000)
    | st.text(max_size=1000).map(lambda s: ("email;name\n" + s).encode())
)
def test_any_csv_reads_as_rows_rejections_or_one_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(data)
    try:
        rows = list(read_subscribers(path))
    except CsvError as exc:
        assert "list.csv" in str(exc) and "\n" not in str(exc).strip()
        return
    for row in rows:
        if isinstance(row, CsvSubscriber):
            assert "\r" not in row.name and "\n" not in row.name and "@" in row.email


@FUZZ
@given(
    token=st.text(max_size=300)
    | st.from_regex(r"[A-Za-z0-9_-]{0,80}(\.[A-Za-z0-9_-]{0,60}){0,3}", fullmatch=True)
)
def test_any_token_is_refused_quietly(token: str) -> None:
    signer = TokenSigner(b"a secret for the tests only.....", "list.example.org")
    assert signer.verify(token) is None
    assert signer.verify_timed(token, "confirm", 3600) is None


@FUZZ
@given(name=st.text(max_size=250))
def test_no_name_injects_a_header_or_a_recipient(factory: MessageFactory, name: str) -> None:
    name = name.strip()
    try:
        check_name(name)
    except InvalidAddress:
        control = any(ord(c) < 32 or 127 <= ord(c) < 160 or c in "\u2028\u2029" for c in name)
        assert control or len(name) > 200
        return
    wire = factory.wire(Recipient(email="reader@example.org", name=name))
    message = message_from_bytes(from_wire(wire), policy=policy.default)
    assert [a.addr_spec for a in message["To"].addresses] == ["reader@example.org"]
    assert message["To"].addresses[0].display_name == name
    assert sorted(message.keys()) == sorted(
        ["From", "To", "Subject", "Date", "Message-ID", "Reply-To", "List-Id", "List-Unsubscribe",
         "List-Unsubscribe-Post", "MIME-Version", "Content-Type"]
    )  # fmt: skip


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    root = tmp_path_factory.mktemp("web")
    (root / "hebdo.toml").write_text((REPO / "hebdo.toml").read_text())
    write_secret(root / ".hebdo-secret")
    return TestClient(create_app(load_workspace(root, explicit=True)))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(["/subscribe", "/unsubscribe/", "/confirm/"]),
    token=st.text(
        alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="/?#%"),
        max_size=60,
    ),
    body=st.binary(max_size=3000),
    content_type=st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain",
            "application/json",
            "",
        ]
    ),
)
def test_any_form_body_gets_a_page_never_a_server_error(
    web: TestClient, path: str, token: str, body: bytes, content_type: str
) -> None:
    url = path if path == "/subscribe" else path + (quote(token, safe="") or "x")
    response = web.post(
        url, content=body, headers={"content-type": content_type} if content_type else {}
    )
    assert response.status_code < 500, (url, response.status_code)


def test_secrets_appear_nowhere(workspace: Path, cli: Callable[..., Result]) -> None:
    from aiosmtpd.smtp import AuthResult

    from .smtpserver import Recorder, SmtpServer

    write_secret(workspace / ".hebdo-secret")
    secret = (workspace / ".hebdo-secret").read_text().strip()
    password = "correct-horse-battery-staple"
    outputs = []
    cli("subscribers", "import", "subscribers.example.csv", cwd=workspace)
    recorder = Recorder()
    with SmtpServer(
        recorder,
        authenticator=lambda *a: AuthResult(success=True, handled=False),
        auth_require_tls=False,
    ) as server:
        url = f"smtp://editor@127.0.0.1:{server.port}"
        outputs.append(
            run_process(
                "send",
                EXAMPLE_ISSUE,
                "--smtp",
                url,
                "--yes",
                cwd=workspace,
                env={"HEBDO_SMTP_PASSWORD": password},
            )
        )
        outputs.append(
            run_process(
                "send",
                EXAMPLE_ISSUE,
                "--smtp",
                f"smtp://editor:{password}@127.0.0.1:{server.port}",
                "--yes",
                cwd=workspace,
            )
        )
    outputs.append(cli("status", EXAMPLE_ISSUE, "--json", cwd=workspace))
    outputs.append(cli("subscribers", "export", "-", cwd=workspace))
    client = TestClient(create_app(load_workspace(workspace, explicit=True)))
    pages = [
        client.get(p).text
        for p in ["/", "/subscribe", "/issues/2006-50/fr/", "/unsubscribe/x", "/confirm/x"]
    ]
    seen = "".join(o.out + o.err for o in outputs) + "".join(pages)
    seen += "".join(r.data.decode("utf-8", "replace") for r in recorder.received)
    for path in workspace.rglob("*"):
        if path.is_file() and path.name != ".hebdo-secret":
            seen += path.read_bytes().decode("utf-8", "replace")
    assert len(recorder.received) == 5
    assert secret not in seen and password not in seen
    assert "must not contain a password" in outputs[1].err


def test_a_secret_readable_by_others_is_refused(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    write_secret(workspace / ".hebdo-secret")
    os.chmod(workspace / ".hebdo-secret", 0o644)
    result = cli("send", EXAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", cwd=workspace)
    assert (
        result.code == 1
        and "is readable by other users (mode 644); run `chmod 600 .hebdo-secret`" in result.err
    )
    assert not (workspace / "outbox").exists()
    assert stat.S_IMODE((workspace / ".hebdo-secret").stat().st_mode) == 0o644
