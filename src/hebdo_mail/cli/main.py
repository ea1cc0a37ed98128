"""The command line: parses arguments and hands each command to its module (publish, audience,
send). A HebdoError is printed as one line on stderr with a non-zero exit, never as a traceback.

Each command imports what it needs when it runs: `build` should not pay for SMTP and SQLite, nor
`status` for premailer (start-up time is most of a small command's time).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any

from .. import __version__
from ..errors import HebdoError
from ..vocabulary import FORMATS, STATUSES
from .common import show_warnings_on_stderr

# pydantic looks for plugins among the entry points of every installed distribution when it
# builds its first model: some 70 ms of every command, for observability plugins a command-line
# tool has no use for. A user who sets the variable keeps their choice.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


def command(name: str) -> Callable[[argparse.Namespace], int]:
    """``module:function`` of this package, imported only when the command runs."""
    module, function = name.split(":")

    def run(args: argparse.Namespace) -> int:
        handler: Any = getattr(import_module(f"{__package__}.{module}"), function)
        return int(handler(args))

    return run


def _iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2006-12-22") from None


PLAIN_AUTH_HELP = "log in to a relay over plain smtp:// even when it is not on this machine"


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
    init.set_defaults(handler=command("publish:cmd_init"))

    new = commands.add_parser(
        "new", help="start the next issue from the latest one (number + 1, date + 7 days)",
        parents=[common],
    )  # fmt: skip
    new.add_argument(
        "id", metavar="ID", nargs="?", help="the folder name (default: after the latest's pattern)"
    )
    new.add_argument(
        "--date", type=_iso_date, metavar="YYYY-MM-DD", help="default: the latest issue's + 7 days"
    )
    new.set_defaults(handler=command("publish:cmd_new"))

    build = commands.add_parser(
        "build", help="render an issue into build/<issue-id>/", parents=[common]
    )
    build.add_argument(
        "issue", metavar="ISSUE", nargs="?", help="the issue folder, or its id under issues/"
    )
    build.add_argument(
        "--site", metavar="DIR", help="write the archive of published issues as static files"
    )
    build.set_defaults(handler=command("publish:cmd_build"))

    serve = commands.add_parser(
        "serve",
        help="the web app: unsubscribe, subscribe, archive, the dashboard",
        parents=[common],
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers", type=int, default=1, metavar="N", help="processes serving requests (default 1)"
    )
    serve.add_argument("--allow-plain-auth", action="store_true", help=PLAIN_AUTH_HELP)
    serve.set_defaults(handler=command("publish:cmd_serve"))

    preview = commands.add_parser(
        "preview", help="an editor's live preview of an issue", parents=[common]
    )
    preview.add_argument("issue", metavar="ISSUE")
    preview.add_argument("--host", default="127.0.0.1")
    preview.add_argument("--port", type=int, default=8001)
    preview.set_defaults(handler=command("publish:cmd_preview"))

    unsubscribes = commands.add_parser(
        "unsubscribes", help="unsubscribe requests sent by mail", parents=[common]
    )
    unsub = unsubscribes.add_subparsers(dest="subcommand", required=True, metavar="ACTION")
    process = unsub.add_parser(
        "process", help="honour the mailto: unsubscribes of a Maildir", parents=[common]
    )
    process.add_argument("maildir", metavar="MAILDIR")
    process.set_defaults(handler=command("audience:cmd_unsubscribes_process"))

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
    bproc.set_defaults(handler=command("audience:cmd_bounces_process"))
    banalyse = bnc.add_parser(
        "analyse",
        help="print what each returned message says (recipients, reason, hard/soft); changes nothing",
        parents=[common],
    )
    banalyse.add_argument("path", metavar="FILE_MAILDIR_OR_MBOX")
    banalyse.add_argument("--json", action="store_true", help="one JSON object per recipient")
    banalyse.set_defaults(handler=command("audience:cmd_bounces_analyse"))
    blist = bnc.add_parser("list", help="addresses with bounces, their scores", parents=[common])
    blist.set_defaults(handler=command("audience:cmd_bounces_list"))
    breset = bnc.add_parser(
        "reset",
        help="clear an address's bounces (a bounced reader is active again)",
        parents=[common],
    )
    breset.add_argument("email", metavar="EMAIL")
    breset.set_defaults(handler=command("audience:cmd_bounces_reset"))

    dkim = commands.add_parser("dkim", help="DKIM signing keys", parents=[common])
    dk = dkim.add_subparsers(dest="subcommand", required=True, metavar="ACTION")
    keygen = dk.add_parser(
        "keygen", help="write a key pair and print the DNS record to publish", parents=[common]
    )
    keygen.add_argument("--algorithm", choices=("rsa-sha256", "ed25519-sha256"))
    keygen.add_argument("--selector", help="default: [dkim] selector, else hebdo")
    keygen.add_argument("--domain", help="default: [dkim] domain, else the sender's domain")
    keygen.set_defaults(handler=command("audience:cmd_dkim_keygen"))

    catalogue = commands.add_parser(
        "catalogue",
        help="create or update a language's catalogue of template strings",
        parents=[common],
    )
    catalogue.add_argument("lang", metavar="LANG", help="a language code: de, es, pt-BR…")
    catalogue.set_defaults(handler=command("publish:cmd_catalogue"))

    send = commands.add_parser(
        "send", help="mail the issue to every recipient (resumable)", parents=[common]
    )
    send.add_argument(
        "issue", metavar="ISSUE", nargs="?", help="the issue folder, or its id under issues/"
    )
    send.add_argument(
        "--due",
        action="store_true",
        help="send every issue whose send_at has passed and is not complete (for cron)",
    )
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
    send.add_argument(
        "--test",
        metavar="ADDRESS[,ADDRESS…]",
        help="send a proof copy, subject marked [TEST], to each address; not a delivery",
    )
    send.add_argument(
        "--edition", metavar="LANG", help="with --test: the edition to send (default: the default)"
    )
    send.add_argument(
        "--format", choices=FORMATS, help="with --test: html (default) or text, as readers get it"
    )
    send.add_argument(
        "--allow-changes",
        action="store_true",
        help="resume a send although the issue changed since its first messages went out",
    )
    send.add_argument(
        "--resend-unknown",
        action="store_true",
        help="also resend messages whose outcome is unknown",
    )
    send.add_argument(
        "--yes", action="store_true", help="do not ask before mailing through a relay"
    )
    send.add_argument("--allow-plain-auth", action="store_true", help=PLAIN_AUTH_HELP)
    send.add_argument(
        "--no-stop",
        action="store_true",
        help="do not stop when the relay refuses or defers too many messages ([send] stop_*)",
    )
    send.set_defaults(handler=command("send:cmd_send"))

    status = commands.add_parser(
        "status", help="where the sending of an issue stands", parents=[common]
    )
    status.add_argument("issue", metavar="ISSUE")
    status.add_argument("--json", action="store_true", help="print the counts as JSON")
    status.set_defaults(handler=command("status:cmd_status"))

    ledger = commands.add_parser("log", help="an issue's send log", parents=[common])
    lg = ledger.add_subparsers(dest="subcommand", required=True, metavar="ACTION")
    export = lg.add_parser(
        "export", help="write an issue's log as JSONL (the shared ledger too)", parents=[common]
    )
    export.add_argument("issue", metavar="ISSUE")
    export.add_argument("file", metavar="FILE", nargs="?", help="default: standard output")
    export.set_defaults(handler=command("status:cmd_log_export"))

    report = commands.add_parser(
        "report", help="what an issue did: delivery, bounces, unsubscribes, clicks",
        parents=[common],
    )  # fmt: skip
    report.add_argument("issue", metavar="ISSUE")
    report.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    report.set_defaults(handler=command("report:cmd_report"))

    store = commands.add_parser(
        "store", help="the store itself: schema migrations, moving it", parents=[common]
    )
    st = store.add_subparsers(dest="subcommand", required=True, metavar="ACTION")
    migrate = st.add_parser(
        "migrate", help="bring the store's schema up to date (PostgreSQL)", parents=[common]
    )
    migrate.set_defaults(handler=command("audience:cmd_store_migrate"))
    copy = st.add_parser(
        "copy", help="copy the whole store to another, in one transaction", parents=[common]
    )
    copy.add_argument(
        "--to", required=True, metavar="URL_OR_FILE",
        help="postgresql://user@host:5432/db, or an SQLite file such as hebdo.db",
    )  # fmt: skip
    copy.set_defaults(handler=command("audience:cmd_store_copy"))

    admin = commands.add_parser(
        "admin", help="the accounts of the dashboard (/admin/ of serve)", parents=[common]
    )
    adm = admin.add_subparsers(dest="subcommand", required=True, metavar="ACTION")
    for action, text in (
        ("add", "add an admin; their password is asked twice"),
        ("passwd", "change an admin's password (their sessions end)"),
        ("remove", "remove an admin (their sessions end)"),
    ):
        parser_ = adm.add_parser(action, help=text, parents=[common])
        parser_.add_argument("name", metavar="NAME")
        if action != "remove":
            parser_.add_argument(
                "--password-stdin", action="store_true",
                help="read the password as one line from standard input",
            )  # fmt: skip
        parser_.set_defaults(handler=command(f"admin:cmd_admin_{action}"))
    adm.add_parser("list", help="the admins", parents=[common]).set_defaults(
        handler=command("admin:cmd_admin_list")
    )

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
    imp.set_defaults(handler=command("audience:cmd_subscribers_import"))
    exp = sub.add_parser("export", help="write the list as CSV (to FILE or -)", parents=[common])
    exp.add_argument("file", metavar="FILE", nargs="?")
    exp.add_argument("--status", choices=STATUSES)
    exp.set_defaults(handler=command("audience:cmd_subscribers_export"))
    add = sub.add_parser("add", help="add a reader, or re-activate one who left", parents=[common])
    add.add_argument("email", metavar="EMAIL")
    add.add_argument("--name")
    add.add_argument("--lang")
    add.add_argument("--format", choices=FORMATS, default="html")
    add.set_defaults(handler=command("audience:cmd_subscribers_add"))
    rem = sub.add_parser("remove", help="forget a reader entirely", parents=[common])
    rem.add_argument("email", metavar="EMAIL")
    rem.set_defaults(handler=command("audience:cmd_subscribers_remove"))
    uns = sub.add_parser("unsubscribe", help="keep a reader, marked unsubscribed", parents=[common])
    uns.add_argument("email", metavar="EMAIL")
    uns.set_defaults(handler=command("audience:cmd_subscribers_unsubscribe"))
    lst = sub.add_parser("list", help="show readers", parents=[common])
    lst.add_argument("--status", choices=STATUSES)
    lst.add_argument("--search", metavar="TEXT", help="part of an address or name")
    lst.set_defaults(handler=command("audience:cmd_subscribers_list"))
    sts = sub.add_parser("stats", help="counts by status, language and format", parents=[common])
    sts.set_defaults(handler=command("audience:cmd_subscribers_stats"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    show_warnings_on_stderr()
    try:
        return int(args.handler(args))
    except HebdoError as exc:
        print(f"hebdo-mail: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hebdo-mail: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Whoever read the output has gone (`... | head`): stop quietly, as a Unix tool killed by
        # SIGPIPE does, and keep Python from complaining when it flushes stdout on the way out.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
