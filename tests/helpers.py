"""Helpers the test modules share (plain functions; the fixtures are in conftest.py)."""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from starlette.testclient import TestClient

from hebdo_mail.audience.store import SubscriberStore, open_store
from hebdo_mail.deliver.sendlog import read_log, recipient_events
from hebdo_mail.workspace import load_workspace

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_ISSUE = "2006-50"
CHROMIUM = "/usr/bin/chromium"  # Debian's package; `make test` installs it
# Tests that must hold on SQLite and on PostgreSQL alike: each test of a module marked so
# (`pytestmark = BOTH_STORES`) that uses a workspace runs once per store (see conftest.py).
BOTH_STORES = pytest.mark.both_stores
# A test of the embedded store's or the file log's own behaviour, in a module marked both_stores.
SQLITE_ONLY = pytest.mark.sqlite_only
STORE_BACKENDS = ("sqlite", "postgresql")


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_process(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> Result:
    """``python -m hebdo_mail ARGS`` as a real process, the way a user runs it."""
    completed = subprocess.run(
        [sys.executable, "-m", "hebdo_mail", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    return Result(completed.returncode, completed.stdout, completed.stderr)


def wait_until(condition: Callable[[], object], *, timeout: float = 30, what: str) -> None:
    """Poll ``condition`` until it is true; fail, naming ``what``, after ``timeout`` seconds
    (a regression must fail the test, never hang the suite)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(0.005)


def replace_in(path: Path, old: str, new: str) -> None:
    """Edit a file of a test workspace; the text to replace must be there."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def append_settings(workspace: Path, toml: str) -> None:
    """Add sections to a test workspace's hebdo.toml."""
    with (workspace / "hebdo.toml").open("a", encoding="utf-8") as handle:
        handle.write("\n" + toml)


def store_of(workspace: Path) -> SubscriberStore:
    """The test workspace's store, whichever backend it runs on."""
    return open_store(load_workspace(workspace, explicit=True))


SITE = "https://hebdo.example.org"  # base_url of the example workspace


def post_form(
    client: TestClient, path: str, data: dict[str, str], *, origin: str = SITE
) -> httpx2.Response:
    """Post the form of the page at ``path`` as a browser on this site does: with the token the
    page carries, and the site's Origin."""
    page = client.get(path)
    found = re.search(r'name="form_token" value="([^"]+)"', page.text)
    assert found, f"no form token on {path}"
    return client.post(
        path, data={"form_token": found.group(1), **data}, headers={"origin": origin}
    )


def log_file(workspace: Path, issue_id: str = EXAMPLE_ISSUE) -> Path:
    """The issue's send log as JSONL: the file itself, or the shared ledger exported as the file
    ledger writes it (PostgreSQL)."""
    loaded = load_workspace(workspace, explicit=True)
    if loaded.store_url is None:
        return loaded.logs_dir / f"{issue_id}.jsonl"
    from hebdo_mail.cli.send_shared import export_log

    target = workspace / f"exported-{issue_id}.jsonl"
    export_log(loaded.store_url, issue_id, target)
    return target


def log_statuses(path: Path) -> dict[str, str]:
    """Each recipient the log names, with the status its replay gives them."""
    state = read_log(path)
    named = {event.recipient for event in recipient_events(path, warnings=[])}
    return {key: state.status_of(key) for key in sorted(named)}


def nothing_logged(workspace: Path, issue_id: str = EXAMPLE_ISSUE) -> bool:
    """No send of the issue has recorded anything, in whichever ledger the workspace uses."""
    loaded = load_workspace(workspace, explicit=True)
    if loaded.store_url is None:
        return not (loaded.logs_dir / f"{issue_id}.jsonl").exists()
    return log_file(workspace, issue_id).read_text() == ""


def forget_sends(workspace: Path, issue_id: str = EXAMPLE_ISSUE) -> None:
    """Start the issue's sending afresh (a test's shortcut: the log moved aside)."""
    loaded = load_workspace(workspace, explicit=True)
    if loaded.store_url is None:
        (loaded.logs_dir / f"{issue_id}.jsonl").unlink(missing_ok=True)
        return
    with open_store(loaded) as store:
        for table in ("send_events", "send_queue", "send_runs"):
            store.db.execute(f"DELETE FROM {table} WHERE issue_id = ?", (issue_id,))


SERVER_DEADLINE = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(ws: Path, *args: str) -> Iterator[int]:
    """`hebdo-mail serve` on a free port, until the block ends."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "hebdo_mail", "serve", "--port", str(port), *args],
        cwd=ws, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def accepting() -> bool:
        assert process.poll() is None, process.communicate()
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(accepting, what="the server to start")
        yield port
    finally:
        process.terminate()
        process.communicate(timeout=SERVER_DEADLINE)


def request(
    port: int, method: str, path: str, body: str = "", headers: dict[str, str] | None = None
) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=SERVER_DEADLINE)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()
