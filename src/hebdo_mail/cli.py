"""The command line: parses arguments, wires the stages together, prints results and errors.

A HebdoError is printed as one line on stderr with a non-zero exit, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .build import build_issue
from .config import Workspace, load_workspace
from .errors import HebdoError, display_path
from .workspace_init import init_workspace


def _human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    return f"{size / 1024:.1f} KB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MB"


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def workspace_from(args: argparse.Namespace) -> Workspace:
    folder = getattr(args, "workspace", None)
    return load_workspace(Path(folder) if folder else None, explicit=folder is not None)


def cmd_init(args: argparse.Namespace) -> int:
    created = init_workspace(Path(args.folder), args.name)
    for path in created:
        print(f"created {display_path(path)}")
    print(f"next: cd {args.folder} && hebdo-mail build issues/2006-50")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    workspace = workspace_from(args)
    report = build_issue(workspace.issue_folder(args.issue), workspace)
    for output in report.outputs:
        print(f"{display_path(output.path)}  {_human_size(output.size)}")
    for message in report.warnings:
        warn(message)
    editions = ", ".join(report.editions)
    print(f"built issue {report.issue.id} ({editions})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--workspace",
        "-w",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="the workspace folder (default: the current folder or the nearest one above with hebdo.toml)",
    )
    parser = argparse.ArgumentParser(
        prog="hebdo-mail", description="Weekly newsletter publisher.", parents=[common]
    )
    parser.add_argument("--version", action="version", version=f"hebdo-mail {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = commands.add_parser(
        "init", help="create a workspace with an example issue", parents=[common]
    )
    init.add_argument("folder", metavar="DIR")
    init.add_argument("--name", help="the newsletter's name (default: from the folder name)")
    init.set_defaults(handler=cmd_init)

    build = commands.add_parser(
        "build", help="render an issue into build/<issue-id>/", parents=[common]
    )
    build.add_argument("issue", metavar="ISSUE", help="the issue folder, or its id under issues/")
    build.set_defaults(handler=cmd_build)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except HebdoError as exc:
        print(f"hebdo-mail: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hebdo-mail: interrupted", file=sys.stderr)
        return 130
