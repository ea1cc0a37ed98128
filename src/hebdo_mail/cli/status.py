"""The ``status`` and ``log export`` commands: what an issue's send log says, read without
loading anything a send needs (rendering, SMTP, the settings' models), so the answer comes at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..deliver.ledger import log_path
from ..deliver.logsummary import log_summary
from ..errors import display_path
from ..vocabulary import STATUS_KEYS
from .common import warn, workspace_from


def cmd_status(args: argparse.Namespace) -> int:
    workspace = workspace_from(args, settings=False)  # the log's place and the store's URL
    folder = workspace.issue_folder(args.issue)
    if workspace.store_url is not None:
        from .send_shared import shared_status

        shared_status(workspace.store_url, folder.name, args.json)
        return 0
    path = log_path(workspace, folder.name)
    state = log_summary(path)
    for warning in state.warnings:
        warn(warning)
    counts = state.counts()
    if args.json:
        print(json.dumps({key: counts[key] for key in STATUS_KEYS}))
    else:
        where = f" through {state.transport}" if state.transport else ""
        print(f"issue {folder.name}{where}: " + ", ".join(f"{counts[k]} {k}" for k in STATUS_KEYS))
    return 0


def cmd_log_export(args: argparse.Namespace) -> int:
    """An issue's ledger as JSONL: the file itself, or the shared ledger written the same way."""
    workspace = workspace_from(args, settings=False)  # the log's place and the store's URL
    issue_id = workspace.issue_folder(args.issue).name
    target = None if args.file in (None, "-") else Path(args.file)
    if workspace.store_url is not None:
        from .send_shared import export_log

        count = export_log(workspace.store_url, issue_id, target)
    else:
        source = log_path(workspace, issue_id)
        data = source.read_bytes() if source.exists() else b""
        count = data.count(b"\n")
        if target is None:
            sys.stdout.write(data.decode("utf-8", "replace"))
        else:
            target.write_bytes(data)
    if target is not None:
        print(
            f"wrote {count} record{'s' if count != 1 else ''} of {issue_id} to {display_path(target)}"
        )
    return 0
