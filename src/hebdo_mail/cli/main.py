"""The command line: parses arguments, wires the stages together, prints results and errors.

A HebdoError is printed as one line on stderr with a non-zero exit, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import HebdoError, display_path
from ..vocabulary import FORMATS, STATUSES

if TYPE_CHECKING:
    from ..audience.store import SubscriberStore
    from ..workspace import Workspace

# Each command imports what it needs when it runs: `build` should not pay for SMTP and SQLite,
# nor `status` for premailer (start-up time is most of a small command's time).


def _human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    return f"{size / 1024:.1f} KB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MB"


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def workspace_from(args: argparse.Namespace) -> Workspace:
    from ..workspace import load_workspace

    folder = getattr(args, "workspace", None)
    return load_workspace(Path(folder) if folder else None, explicit=folder is not None)


def cmd_init(args: argparse.Namespace) -> int:
    from ..workspace import init_workspace

    created = init_workspace(Path(args.folder), args.name)
    for path in created:
        print(f"created {display_path(path)}")
    print(f"next: cd {args.folder} && hebdo-mail build issues/2006-50")
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
        print(f"{display_path(output.path)}  {_human_size(output.size)}")
    for message in report.warnings:
        warn(message)
    editions = ", ".join(report.editions)
    print(f"built issue {report.issue.id} ({editions})")
    return 0


def build_site(workspace: Workspace, target: Path, issue: str | None) -> int:
    from ..publish.archive import write_site

    if issue:
        raise HebdoError("--site writes the whole archive; give no issue with it")
    written = write_site(workspace, target)
    pages = sum(1 for p in written if p.name == "index.html")
    print(
        f"wrote the archive to {display_path(target)}: {pages} pages, {len(written) - pages} files"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ..web.app import create_app

    workspace = workspace_from(args)
    app = create_app(workspace)
    print(
        f"serving {workspace.settings.newsletter.name} on http://{args.host}:{args.port}/ (Ctrl-C to stop)"
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", proxy_headers=True)
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


def cmd_unsubscribes_process(args: argparse.Namespace) -> int:
    from ..audience.unsubscribes import process_unsubscribes

    workspace = workspace_from(args)
    report = process_unsubscribes(workspace, Path(args.maildir))
    for line in report.problems:
        print(line, file=sys.stderr)
    print(
        f"{report.unsubscribed} unsubscribed, {report.already} already were, "
        f"{len(report.problems)} left in place (no valid token)"
    )
    return 0


def cmd_bounces_process(args: argparse.Namespace) -> int:
    from ..audience.bounces import process_bounces

    report = process_bounces(workspace_from(args), Path(args.path))
    for line in report.ignored:
        print(line, file=sys.stderr)
    for line in report.problems:
        print(line, file=sys.stderr)
    for address in report.became_bounced:
        print(
            f"{address} is now bounced and will not be mailed (`hebdo-mail bounces reset` undoes it)"
        )
    print(
        f"{report.counted} bounces counted ({report.refusals} of them refusals from the send "
        f"logs), {report.duplicates} already counted, {len(report.ignored)} auto-replies and "
        f"challenges set aside, {len(report.problems)} left in place to look at"
    )
    return 1 if report.problems else 0


def cmd_bounces_list(args: argparse.Namespace) -> int:
    with bounce_store(args) as store:
        rows = store.bounce_report()
    for row in rows:
        print(
            f"{row['email']}  score {row['score']:g}  {row['status']}  last {row['last_day']} "
            f"{row['last_kind']}: {row['last_reason'] or '-'}"
        )
    print(f"{len(rows)} address{'es' if len(rows) != 1 else ''} with bounces", file=sys.stderr)
    return 0


def cmd_bounces_reset(args: argparse.Namespace) -> int:
    with bounce_store(args) as store:
        subscriber = store.reset_bounces(args.email)
    status = subscriber.status if subscriber else "not in the list"
    print(f"{args.email}: bounces cleared ({status})")
    return 0


def bounce_store(args: argparse.Namespace) -> SubscriberStore:
    from ..audience.store import SubscriberStore

    workspace = workspace_from(args)
    return SubscriberStore(workspace.store_path, create=False, bounces=workspace.settings.bounces)


def cmd_dkim_keygen(args: argparse.Namespace) -> int:
    from ..deliver.dkim import dns_record, generate_key, txt_strings

    workspace = workspace_from(args)
    configured = workspace.settings.dkim
    algorithm = args.algorithm or (configured.algorithm if configured else "rsa-sha256")
    selector = args.selector or (configured.selector if configured else "hebdo")
    domain = args.domain or (
        configured.domain if configured else workspace.settings.newsletter.sender_domain
    )
    key_file = configured.key_file if configured else f"dkim/{selector}.pem"
    path = workspace.root / key_file
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key(path, algorithm)
    print(
        f"wrote {display_path(path)} (private: keep it out of version control and backups you share)"
    )
    print("publish this DNS TXT record, then send a --test copy and check its DKIM result:\n")
    print(f"{selector}._domainkey.{domain}. IN TXT {txt_strings(dns_record(key))}\n")
    if configured is None:
        print("and add to hebdo.toml:\n")
        print(f'[dkim]\ndomain = "{domain}"\nselector = "{selector}"\nkey_file = "{key_file}"')
        print(f'algorithm = "{algorithm}"')
    return 0


def cmd_catalogue(args: argparse.Namespace) -> int:
    from ..config import check_language
    from ..publish.i18n import extract_messages, write_catalogue
    from ..publish.templating import package_templates_dir

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


def open_store(args: argparse.Namespace, *, create: bool = True) -> SubscriberStore:
    from ..audience.store import SubscriberStore

    return SubscriberStore(workspace_from(args).store_path, create=create)


def cmd_subscribers_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    with open_store(args) as store:
        report = store.import_csv(
            path, update=args.update, dry_run=args.dry_run, check_dns=args.check_dns
        )
    for rejected in report.rejected:
        print(f"{display_path(path)}:{rejected.line}: {rejected.reason}", file=sys.stderr)
    extras = []
    if report.merged:
        extras.append(f"{report.merged} duplicate row{'s' if report.merged > 1 else ''} merged")
    if report.kept_out:
        extras.append(f"{report.kept_out} unsubscribed or bounced reader(s) left as they were")
    summary = (
        f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
        f"rejected {len(report.rejected)}"
    )
    if extras:
        summary += f" ({'; '.join(extras)})"
    if args.dry_run:
        summary = f"dry run, nothing written: would have {summary}"
    elif report.unchanged and not args.update:
        summary += "; pass --update to refresh names, languages and formats of known readers"
    print(summary)
    return 0


def cmd_subscribers_export(args: argparse.Namespace) -> int:
    target = None if args.file in (None, "-") else Path(args.file)
    with open_store(args, create=False) as store:
        count = store.export_csv(target, status=args.status)
    if target is not None:
        print(f"exported {count} subscriber{'s' if count != 1 else ''} to {display_path(target)}")
    return 0


def cmd_subscribers_add(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        subscriber, outcome = store.add(
            args.email, name=args.name or "", lang=args.lang, format=args.format
        )
    words = {"added": "added", "reactivated": "re-activated", "updated": "updated"}
    print(f"{words[outcome]} {subscriber.email} ({subscriber.status})")
    return 0


def cmd_subscribers_remove(args: argparse.Namespace) -> int:
    with open_store(args, create=False) as store:
        store.remove(args.email)
    print(f"removed {args.email} from the list")
    return 0


def cmd_subscribers_unsubscribe(args: argparse.Namespace) -> int:
    with open_store(args, create=False) as store:
        subscriber = store.set_status(args.email, "unsubscribed")
    print(f"{subscriber.email} is unsubscribed")
    return 0


def cmd_subscribers_list(args: argparse.Namespace) -> int:
    with open_store(args, create=False) as store:
        rows = [
            (s.email, s.name, s.lang or "-", s.format, s.status)
            for s in store.iter_subscribers(status=args.status, search=args.search)
        ]
    if rows:
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for row in rows:
            print(
                "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True))
                + "  "
                + row[4]
            )
    print(f"{len(rows)} subscriber{'s' if len(rows) != 1 else ''}", file=sys.stderr)
    return 0


def cmd_subscribers_stats(args: argparse.Namespace) -> int:
    with open_store(args, create=False) as store:
        stats = store.stats()
        total = store.count()
    print(f"total: {total}")
    for title, counts in (
        ("status", stats["status"]),
        ("language", stats["lang"]),
        ("format", stats["format"]),
    ):
        print(f"by {title}: " + ", ".join(f"{key} {value}" for key, value in counts.items()))
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from .send import cmd_send as send

    return send(args)


def cmd_status(args: argparse.Namespace) -> int:
    from .send import cmd_status as status

    return status(args)


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
    build.add_argument(
        "issue", metavar="ISSUE", nargs="?", help="the issue folder, or its id under issues/"
    )
    build.add_argument(
        "--site", metavar="DIR", help="write the archive of published issues as static files"
    )
    build.set_defaults(handler=cmd_build)

    serve = commands.add_parser(
        "serve", help="the web app: unsubscribe, subscribe, archive", parents=[common]
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(handler=cmd_serve)

    preview = commands.add_parser(
        "preview", help="an editor's live preview of an issue", parents=[common]
    )
    preview.add_argument("issue", metavar="ISSUE")
    preview.add_argument("--host", default="127.0.0.1")
    preview.add_argument("--port", type=int, default=8001)
    preview.set_defaults(handler=cmd_preview)

    unsubscribes = commands.add_parser(
        "unsubscribes", help="unsubscribe requests sent by mail", parents=[common]
    )
    unsub = unsubscribes.add_subparsers(dest="subcommand", required=True, metavar="ACTION")
    process = unsub.add_parser(
        "process", help="honour the mailto: unsubscribes of a Maildir", parents=[common]
    )
    process.add_argument("maildir", metavar="MAILDIR")
    process.set_defaults(handler=cmd_unsubscribes_process)

    bounces = commands.add_parser(
        "bounces", help="returned mail: score failing addresses", parents=[common]
    )
    bnc = bounces.add_subparsers(dest="subcommand", required=True, metavar="ACTION")
    bproc = bnc.add_parser(
        "process",
        help="count the bounces of a Maildir or mbox, and the refusals in the send logs",
        parents=[common],
    )
    bproc.add_argument("path", metavar="MAILDIR_OR_MBOX")
    bproc.set_defaults(handler=cmd_bounces_process)
    blist = bnc.add_parser("list", help="addresses with bounces, their scores", parents=[common])
    blist.set_defaults(handler=cmd_bounces_list)
    breset = bnc.add_parser(
        "reset",
        help="clear an address's bounces (a bounced reader is active again)",
        parents=[common],
    )
    breset.add_argument("email", metavar="EMAIL")
    breset.set_defaults(handler=cmd_bounces_reset)

    dkim = commands.add_parser("dkim", help="DKIM signing keys", parents=[common])
    dk = dkim.add_subparsers(dest="subcommand", required=True, metavar="ACTION")
    keygen = dk.add_parser(
        "keygen", help="write a key pair and print the DNS record to publish", parents=[common]
    )
    keygen.add_argument("--algorithm", choices=("rsa-sha256", "ed25519-sha256"))
    keygen.add_argument("--selector", help="default: [dkim] selector, else hebdo")
    keygen.add_argument("--domain", help="default: [dkim] domain, else the sender's domain")
    keygen.set_defaults(handler=cmd_dkim_keygen)

    catalogue = commands.add_parser(
        "catalogue",
        help="create or update a language's catalogue of template strings",
        parents=[common],
    )
    catalogue.add_argument("lang", metavar="LANG", help="a language code: de, es, pt-BR…")
    catalogue.set_defaults(handler=cmd_catalogue)

    send = commands.add_parser(
        "send", help="mail the issue to every recipient (resumable)", parents=[common]
    )
    send.add_argument("issue", metavar="ISSUE", help="the issue folder, or its id under issues/")
    send.add_argument(
        "--subscribers", metavar="FILE.csv", help="mail the rows of this CSV instead of the store"
    )
    send.add_argument(
        "--smtp", metavar="URL", help="relay, e.g. smtp+starttls://user@mail.example.org:587"
    )
    send.add_argument(
        "--concurrency", type=int, metavar="N", help="SMTP connections in parallel (default 10)"
    )
    send.add_argument(
        "--rate", type=float, metavar="PER_SECOND", help="at most this many messages a second"
    )
    send.add_argument("--limit", type=int, metavar="N", help="send at most N messages in this run")
    send.add_argument(
        "--dry-run", action="store_true", help="render every message, write and send nothing"
    )
    send.add_argument("--test", metavar="ADDRESS", help="send one copy to ADDRESS; not a delivery")
    send.add_argument(
        "--resend-unknown",
        action="store_true",
        help="also resend messages whose outcome is unknown",
    )
    send.add_argument(
        "--yes", action="store_true", help="do not ask before mailing through a relay"
    )
    send.set_defaults(handler=cmd_send)

    status = commands.add_parser(
        "status", help="where the sending of an issue stands", parents=[common]
    )
    status.add_argument("issue", metavar="ISSUE")
    status.add_argument("--json", action="store_true", help="print the counts as JSON")
    status.set_defaults(handler=cmd_status)

    subscribers = commands.add_parser("subscribers", help="keep the mailing list", parents=[common])
    sub = subscribers.add_subparsers(dest="subcommand", required=True, metavar="ACTION")
    imp = sub.add_parser("import", help="import a CSV list (all or nothing)", parents=[common])
    imp.add_argument("file", metavar="FILE")
    imp.add_argument(
        "--dry-run", action="store_true", help="report what would change, write nothing"
    )
    imp.add_argument(
        "--update", action="store_true", help="refresh known readers' names, languages, formats"
    )
    imp.add_argument(
        "--check-dns", action="store_true", help="also check that each domain accepts mail"
    )
    imp.set_defaults(handler=cmd_subscribers_import)
    exp = sub.add_parser("export", help="write the list as CSV (to FILE or -)", parents=[common])
    exp.add_argument("file", metavar="FILE", nargs="?")
    exp.add_argument("--status", choices=STATUSES)
    exp.set_defaults(handler=cmd_subscribers_export)
    add = sub.add_parser("add", help="add a reader, or re-activate one who left", parents=[common])
    add.add_argument("email", metavar="EMAIL")
    add.add_argument("--name")
    add.add_argument("--lang")
    add.add_argument("--format", choices=FORMATS, default="html")
    add.set_defaults(handler=cmd_subscribers_add)
    rem = sub.add_parser("remove", help="forget a reader entirely", parents=[common])
    rem.add_argument("email", metavar="EMAIL")
    rem.set_defaults(handler=cmd_subscribers_remove)
    uns = sub.add_parser("unsubscribe", help="keep a reader, marked unsubscribed", parents=[common])
    uns.add_argument("email", metavar="EMAIL")
    uns.set_defaults(handler=cmd_subscribers_unsubscribe)
    lst = sub.add_parser("list", help="show readers", parents=[common])
    lst.add_argument("--status", choices=STATUSES)
    lst.add_argument("--search", metavar="TEXT", help="part of an address or name")
    lst.set_defaults(handler=cmd_subscribers_list)
    sts = sub.add_parser("stats", help="counts by status, language and format", parents=[common])
    sts.set_defaults(handler=cmd_subscribers_stats)
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
