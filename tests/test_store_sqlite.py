"""The embedded store is a file: what happens to it when it is damaged, foreign, missing, or when
an import is killed half-way (PostgreSQL's side of the same promises is in test_postgres.py)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .helpers import Result
from .test_subscribers import store_rows


def test_a_corrupt_store_is_reported_and_left_alone(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    garbage = b"this is not a database\n" * 200
    (workspace / "hebdo.db").write_bytes(garbage)
    result = cli("subscribers", "stats", cwd=workspace)
    assert result.code == 1 and "hebdo.db: is not a usable subscriber store" in result.err
    assert (workspace / "hebdo.db").read_bytes() == garbage


def test_a_foreign_sqlite_database_is_not_taken_over(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    with sqlite3.connect(workspace / "hebdo.db") as db:
        db.execute("CREATE TABLE accounts (id INTEGER)")
    result = cli("subscribers", "add", "a@example.org", cwd=workspace)
    assert result.code == 1 and "not a hebdo-mail store" in result.err


def test_read_commands_do_not_create_a_store(workspace: Path, cli: Callable[..., Result]) -> None:
    result = cli("subscribers", "list", cwd=workspace)
    assert result.code == 1 and "no subscriber store here yet" in result.err
    assert not (workspace / "hebdo.db").exists()


@pytest.mark.slow
def test_a_killed_import_leaves_the_store_as_it_was(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    cli("subscribers", "import", "subscribers.example.csv", cwd=workspace)
    before = store_rows(workspace)
    big = workspace / "big.csv"
    with big.open("w") as handle:
        handle.write("email,name,city\n")
        for i in range(300_000):
            handle.write(f"reader{i}@example{i % 97}.org,Reader {i},City {i % 13}\n")
    wal = workspace / "hebdo.db-wal"
    for delay in (0.8, 1.5, 2.5, 4.0, 6.0):
        process = subprocess.Popen(
            [sys.executable, "-m", "hebdo_mail", "subscribers", "import", "big.csv"],
            cwd=workspace,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        base = wal.stat().st_size if wal.exists() else 0
        deadline = time.monotonic() + 60
        # Wait until the import is writing its transaction (the WAL grows), then kill it.
        while time.monotonic() < deadline and process.poll() is None:
            if wal.exists() and wal.stat().st_size > base + 1_000_000:
                break
            time.sleep(0.01)
        time.sleep(delay / 100)
        still_running = process.poll() is None
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)
        if still_running:
            break
        store_file = workspace / "hebdo.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store_file}{suffix}").unlink(missing_ok=True)
        cli("subscribers", "import", "subscribers.example.csv", cwd=workspace)
    else:
        pytest.fail("the import always finished before it could be killed")
    assert store_rows(workspace) == before
    # and a full import afterwards works on the recovered store
    assert cli("subscribers", "import", "subscribers.example.csv", cwd=workspace).out.startswith(
        "added 0,"
    )
