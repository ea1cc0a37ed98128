"""``send --due``: what cron or a systemd timer runs every few minutes. Every issue whose
``send_at`` has passed and whose send is not complete is sent (an interrupted one resumed) by
the ordinary send path, one issue after the other; everything else is left alone, silently.

An issue more than ``[send] send_window`` late is not sent but reported, so a machine that was
off all weekend does not mail Friday's issue on Monday without a human deciding.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from copy import copy
from pathlib import Path

from ..config import validate_model
from ..deliver.ledger import log_path
from ..deliver.sendlog import read_log
from ..errors import HebdoError, IssueError
from ..publish.issue import ISSUE_FILE, IssueConfig
from ..tomlfile import read_toml
from ..vocabulary import Outcome
from ..workspace import Workspace


def send_due(args: argparse.Namespace, workspace: Workspace) -> int:
    from .send import send_issue

    now = dt.datetime.now(dt.UTC)
    window = workspace.settings.send.send_window
    status = 0
    for folder, send_at in _scheduled(workspace):
        try:
            if send_at > now or _complete(workspace, folder.name):
                continue
            late = now - send_at
            if late > window:
                raise HebdoError(
                    f"was due at {send_at:%Y-%m-%d %H:%M %z}, {_duration(late)} ago, more than "
                    f"send_window ({_duration(window)}): not sent; send it with "
                    f"`hebdo-mail send {folder.name}`, or give it a new send_at",
                    path=folder,
                )
            print(f"issue {folder.name} is due (send_at {send_at:%Y-%m-%d %H:%M %z}): sending")
            scheduled = copy(args)
            scheduled.issue, scheduled.yes = str(folder), True  # scheduling it was the decision
            code = send_issue(scheduled, workspace, folder)
        except HebdoError as exc:
            print(f"hebdo-mail: error: {exc}", file=sys.stderr)
            code = 1
        status = code if code == 1 or status == 0 else status
    return status


def _scheduled(workspace: Workspace) -> list[tuple[Path, dt.datetime]]:
    """Issues with a send_at, read from issue.toml alone: a draft's half-written article must
    not keep another issue from going out. A broken issue.toml is reported and skipped."""
    found = []
    folders = sorted(workspace.issues_dir.iterdir()) if workspace.issues_dir.is_dir() else []
    for folder in folders:
        path = folder / ISSUE_FILE
        if not path.is_file():
            continue
        try:
            data, text = read_toml(path, IssueError)
            config = validate_model(IssueConfig, data, path=path, text=text, error=IssueError)
        except HebdoError as exc:
            print(f"hebdo-mail: error: {exc}", file=sys.stderr)
            continue
        if config.send_at is not None:
            found.append((folder, config.send_at.astimezone()))
    return found


def _complete(workspace: Workspace, issue_id: str) -> bool:
    """Sent to everyone of its last run's list: nothing pending or deferred (a message of unknown
    outcome waits for a human: --resend-unknown)."""
    state = read_log(log_path(workspace, issue_id))
    counts = state.counts()
    return state.transport is not None and not counts["pending"] and not counts[Outcome.DEFERRED]


def _duration(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    if hours >= 48:
        return f"{hours / 24:.0f} days"
    return f"{hours:.0f} h" if hours >= 1 else f"{delta.total_seconds() / 60:.0f} min"
