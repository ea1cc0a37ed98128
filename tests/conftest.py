"""Shared fixtures: a copy of the repository's workspace (with or without its secret), the CLI
run in this process, and a message factory for the example issue."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hebdo_mail.audience.postgres import close_pools
from hebdo_mail.audience.store import open_store
from hebdo_mail.audience.tokens import TokenSigner
from hebdo_mail.cli.main import main
from hebdo_mail.deliver.message import MessageFactory
from hebdo_mail.publish.build import render_issue
from hebdo_mail.workspace import load_workspace, write_secret

from .helpers import EXAMPLE_ISSUE, REPO, STORE_BACKENDS, Result, append_settings
from .pgserver import PostgresServer

# Templates that print personal fields in both parts, so message tests cover the slots.
FOOTER_HTML = (
    "<p>Pour {{ subscriber.name }} ({{ subscriber.city }}) · "
    '<a href="{{ unsubscribe_url }}">Se désabonner</a></p>\n'
)
FOOTER_TEXT = "Pour {{ subscriber.name }} ({{ subscriber.city }})\n{{ unsubscribe_url }}\n"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the tests marked both_stores that use a store once per backend."""
    wanted = metafunc.definition.get_closest_marker("both_stores") is not None
    if wanted and "store_backend" in metafunc.fixturenames:
        only_sqlite = metafunc.definition.get_closest_marker("sqlite_only") is not None
        backends = ("sqlite",) if only_sqlite else STORE_BACKENDS
        metafunc.parametrize("store_backend", backends, indirect=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole run, started the first time a test needs it."""
    server = PostgresServer().start()
    yield server
    close_pools()
    server.stop()


@pytest.fixture
def store_backend(request: pytest.FixtureRequest) -> str:
    """Which store the workspace uses: SQLite unless a test module asks for both
    (``pytestmark = BOTH_STORES``)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def workspace(tmp_path: Path, store_backend: str, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A throwaway copy of the repository's ready workspace (settings, example issue and list),
    its store on the backend the test runs with."""
    root = tmp_path / "ws"
    root.mkdir()
    shutil.copy(REPO / "hebdo.toml", root / "hebdo.toml")
    shutil.copytree(REPO / "issues", root / "issues")
    shutil.copy(REPO / "subscribers.example.csv", root / "subscribers.example.csv")
    if store_backend == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        append_settings(root, f'[store]\nurl = "{server.new_database()}"\n')
        open_store(load_workspace(root, explicit=True), migrate=True).close()
    yield root
    close_pools()  # each test's database has its own pool; end their threads with the test


@pytest.fixture
def ws(workspace: Path) -> Path:
    """The example workspace with its secret, as `init` would have made it."""
    write_secret(workspace / ".hebdo-secret")
    return workspace


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run ``hebdo-mail ARGS`` in this process from ``cwd``; returns exit code, stdout, stderr."""

    def run(*args: str, cwd: Path) -> Result:
        previous = Path.cwd()
        os.chdir(cwd)
        try:
            code = main(list(args))
        finally:
            os.chdir(previous)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def factory(tmp_path_factory: pytest.TempPathFactory) -> MessageFactory:
    """The example issue's message factory, with footers that print personal fields."""
    root = tmp_path_factory.mktemp("factory")
    (root / "hebdo.toml").write_text((REPO / "hebdo.toml").read_text())
    (root / "templates" / "partials").mkdir(parents=True)
    (root / "templates" / "partials" / "footer_email.html").write_text(FOOTER_HTML)
    (root / "templates" / "email.txt").write_text(
        (REPO / "templates" / "email.txt").read_text() + FOOTER_TEXT
    )
    workspace = load_workspace(root, explicit=True)
    issue, editions = render_issue(REPO / "issues" / EXAMPLE_ISSUE, workspace)
    return MessageFactory(
        issue_id=issue.id,
        editions=editions,
        default_lang="fr",
        settings=workspace.settings.newsletter,
        signer=TokenSigner(
            b"a test secret of enough length", workspace.settings.newsletter.list_identifier
        ),
    )
