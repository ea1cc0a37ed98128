"""The error tree. Every error a user can fix is a HebdoError whose str() is one line.

The line names where the problem is (``file:line`` or ``host:port``) and says what to do; the CLI
prints it as is and exits non-zero, without a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(p)


class HebdoError(Exception):
    """Root of every user-facing error."""

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        line: int | None = None,
        where: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line
        self.where = where

    def location(self) -> str:
        if self.where:
            return self.where
        if self.path is None:
            return ""
        loc = display_path(self.path)
        return f"{loc}:{self.line}" if self.line else loc

    def __str__(self) -> str:
        loc = self.location()
        return f"{loc}: {self.message}" if loc else self.message


class ConfigError(HebdoError):
    """hebdo.toml, the workspace or the command line is wrong."""


class IssueError(HebdoError):
    """An issue folder: issue.toml, an article, a media file."""


class TemplateError(HebdoError):
    """A Jinja2 template failed to load or render."""


class BuildError(HebdoError):
    """Writing build output failed."""
