"""Helpers the test modules share (plain functions; the fixtures are in conftest.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from starlette.testclient import TestClient

from hebdo_mail.audience.store import SubscriberStore, open_store
from hebdo_mail.workspace import load_workspace

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_ISSUE = "2006-50"
CHROMIUM = "/usr/bin/chromium"  # Debian's package; `make test` installs it
# Tests that must hold on SQLite and on PostgreSQL alike: each test of a module marked so
# (`pytestmark = BOTH_STORES`) that uses a workspace runs once per store (see conftest.py).
BOTH_STORES = pytest.mark.both_stores
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
