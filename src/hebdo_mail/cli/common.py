"""What every command shares: finding the workspace, and how warnings reach the terminal."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..workspace import Workspace


def workspace_from(args: argparse.Namespace, *, settings: bool = True) -> Workspace:
    """The workspace the command runs in; its settings checked at once unless ``settings`` is
    false (a command that reads none of them)."""
    from ..workspace import load_workspace

    folder = getattr(args, "workspace", None)
    return load_workspace(
        Path(folder) if folder else None, explicit=folder is not None, settings=settings
    )


def invocation() -> str:
    """How to run this program again, as the user did: ``hebdo-mail`` when that is what the
    shell finds, else the path they used, else ``python -m hebdo_mail``: hints must work as
    printed."""
    import shlex
    import shutil

    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is None or script.name in ("__main__.py", "-m", "-c") or not script.exists():
        return f"{shlex.quote(sys.executable)} -m hebdo_mail"
    found = shutil.which(script.name)
    if found and Path(found).resolve() == script.resolve():
        return script.name
    return shlex.quote(str(script.resolve()))


def warn(message: str) -> None:
    logging.getLogger("hebdo_mail").warning("%s", message)


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    return f"{size / 1024:.1f} KB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MB"


class TerminalFormatter(logging.Formatter):
    """Warnings as ``warning: …``, notes as they are: one line each, no logger names."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"error: {message}"
        return f"warning: {message}" if record.levelno >= logging.WARNING else message


class StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time (tests capture it by replacing it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(TerminalFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr)
        except Exception:  # a closed stderr must not turn a warning into a crash
            self.handleError(record)


def show_warnings_on_stderr() -> None:
    """The package logs its warnings; on the command line they go to stderr, one line each."""
    package = logging.getLogger("hebdo_mail")
    if not any(isinstance(h, StderrHandler) for h in package.handlers):
        package.addHandler(StderrHandler())
    package.setLevel(logging.INFO)
    package.propagate = False
