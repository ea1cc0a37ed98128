"""Shared fixtures: a copy of the repository's workspace, and the CLI run in or out of process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from hebdo_mail.cli.main import main

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_ISSUE = "2006-50"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A throwaway copy of the repository's ready workspace (settings, example issue and list)."""
    root = tmp_path / "ws"
    root.mkdir()
    shutil.copy(REPO / "hebdo.toml", root / "hebdo.toml")
    shutil.copytree(REPO / "issues", root / "issues")
    shutil.copy(REPO / "subscribers.example.csv", root / "subscribers.example.csv")
    return root


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
