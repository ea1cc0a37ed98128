"""Commands of the editor's side: init, build (and build --site), preview, serve, catalogue."""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
from pathlib import Path

from ..errors import HebdoError, display_path
from ..workspace import Workspace
from .common import human_size, invocation, warn, workspace_from


def cmd_init(args: argparse.Namespace) -> int:
    from ..workspace import EXAMPLE_NAME, init_workspace

    created = init_workspace(Path(args.folder), args.name)
    for path in created:
        print(f"created {display_path(path)}")
    program = invocation()
    print(f"next: cd {shlex.quote(args.folder)}")
    print(f"      {program} build {EXAMPLE_NAME}      # the example issue, rendered into build/")
    print(f"      {program} preview {EXAMPLE_NAME}    # see it as readers will, live")
    print(f"      {program} new --date {dt.date.today().isoformat()}   # start your first issue")
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    from ..publish.next_issue import STARTER_NAME, create_next_issue

    workspace = workspace_from(args)
    folder = create_next_issue(workspace, args.id, args.date)
    print(display_path(folder))
    program = invocation()
    print(f"next: write {display_path(folder / STARTER_NAME)} (and more articles beside it), then")
    print(f"      {program} preview {folder.name}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from ..publish.build import build_issue

    workspace = workspace_from(args)
    if args.site:
        return build_site(workspace, Path(args.site), args.issue)
    if not args.issue:
        raise HebdoError("give the issue to build (e.g. issues/2006-50), or --site DIR")
    report = build_issue(workspace.issue_folder(args.issue), workspace)
    for output in report.outputs:
        line = f"{display_path(output.path)}  {human_size(output.size)}"
        picture = output.source.picture if output.source else None
        if output.source and picture:
            before = f"{human_size(output.source.source.stat().st_size)}, {picture.width}×{picture.height} px"
            after = "{}×{} px".format(*picture.file_size)
            line += f"  (from {output.source.label}: {before} → {after})"
        print(line)
    for message in report.warnings:
        warn(message)
    editions = ", ".join(report.editions)
    print(f"built issue {report.issue.id} ({editions})")
    return 0


def build_site(workspace: Workspace, target: Path, issue: str | None) -> int:
    from ..publish.archive import write_site

    if issue:
        raise HebdoError("--site writes the whole archive; give no issue with it")
    from ..deliver.ledger import published_check

    written = write_site(workspace, target, published_check(workspace))
    pages = sum(1 for p in written if p.name == "index.html")
    feeds = sum(1 for p in written if p.parent == target and p.suffix == ".xml")
    files = len(written) - pages - feeds
    print(
        f"wrote the archive to {display_path(target)}: {pages} pages, {feeds} feeds, {files} files"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from ..web.server import serve

    if args.workers < 1:
        raise HebdoError("--workers must be at least 1")
    workspace = workspace_from(args)
    print(
        f"serving {workspace.settings.newsletter.name} on http://{args.host}:{args.port}/ "
        f"with {args.workers} worker{'s' if args.workers > 1 else ''} (Ctrl-C to stop)"
    )
    serve(
        workspace, host=args.host, port=args.port, workers=args.workers,
        allow_plain_auth=args.allow_plain_auth,
    )  # fmt: skip
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    import uvicorn

    from ..web.preview import create_preview_app

    workspace = workspace_from(args)
    folder = workspace.issue_folder(args.issue)
    app = create_preview_app(workspace, folder)
    print(
        f"previewing {folder.name} on http://{args.host}:{args.port}/ (rebuilt on every change; Ctrl-C to stop)"
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_catalogue(args: argparse.Namespace) -> int:
    from ..checks import check_language
    from ..publish.i18n import extract_messages, write_catalogue
    from ..workspace import package_templates_dir

    try:
        check_language(args.lang)
    except ValueError as exc:
        raise HebdoError(str(exc)) from None
    workspace = workspace_from(args)
    path = workspace.locale_dir / args.lang / "LC_MESSAGES" / "messages.po"
    existed = path.exists()
    messages = extract_messages([workspace.templates_dir, package_templates_dir()])
    total, missing = write_catalogue(path, args.lang, messages)
    print(
        f"{'updated' if existed else 'created'} {display_path(path)}: {total} strings, {missing} to translate"
    )
    return 0
