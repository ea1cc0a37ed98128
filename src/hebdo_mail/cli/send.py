"""The ``send`` command at the terminal: the confirmation question, the progress bar and the
summary. Everything is read and checked (issue, templates, log, relay settings, the list's file
and header) before the first message leaves; the list's rows as the send reaches them (a bad one
is reported and not mailed); the wiring itself is deliver/setup.py's. An issue already built is sent
as its build left it (publish/mailcache.py), without loading the renderer.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import signal
import sys
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from ..audience.addresses import InvalidAddress, normalise_address
from ..audience.recipients import (
    CsvRecipients,
    Recipient,
    RecipientBatch,
    RecipientSource,
    StoreRecipients,
)
from ..audience.store import SubscriberStore
from ..audience.tokens import PROOF
from ..deliver.changes import describe_changes, digest_of
from ..deliver.ledger import FileLedger, log_path
from ..deliver.message import MessageFactory
from ..deliver.selection import SendOptions, count_to_send
from ..deliver.send import Sender, SendSummary, deliver_one
from ..deliver.sendlog import EventLog, LogError, LogState, NullLog, now, read_log
from ..deliver.setup import configured_transport, message_factory, recipient_source, token_signer
from ..deliver.stoprule import StopLimits
from ..deliver.transport import NullTransport, Transport
from ..errors import ConfigError, HebdoError, display_path
from ..publish.mailcache import mail_editions
from ..publish.rendered import RenderedEdition, web_url
from ..vocabulary import OUTCOMES, Format, Outcome
from ..workspace import Workspace
from .common import warn, workspace_from

EX_TEMPFAIL = 75  # some messages are still to be sent: run the command again
EX_DATAERR = 65  # bad rows of a CSV list were not mailed: fix them and run it again


TEST_PREFIX = "[TEST] "


def cmd_send(args: argparse.Namespace) -> int:
    workspace = workspace_from(args)
    if args.due:
        from .schedule import send_due

        if args.issue or args.test:
            raise ConfigError("--due sends every issue that is due; give no issue nor --test")
        return send_due(args, workspace)
    if not args.issue:
        raise ConfigError("give the issue to send (e.g. issues/2006-50), or --due")
    return send_issue(args, workspace, workspace.issue_folder(args.issue))


def send_issue(args: argparse.Namespace, workspace: Workspace, folder: Path) -> int:
    """The ordinary send of one issue (also what --due runs for each issue that is due)."""
    issue, editions = mail_editions(folder, workspace)
    for warning in issue.warnings:
        warn(warning)
    if args.test:
        return _send_test(args, workspace, issue.id, editions, issue.default_language)
    factory = message_factory(workspace, issue.id, editions, issue.default_language)
    transport = _transport(args, workspace, f"outbox/{issue.id}")
    source, store = recipient_source(
        workspace, Path(args.subscribers) if args.subscribers else None
    )
    try:
        return _send(args, workspace, folder, factory, transport, source, store, editions)
    finally:
        source.close()
        if store is not None:
            store.close()


def _transport(args: argparse.Namespace, workspace: Workspace, outbox: str) -> Transport:
    ask = getpass.getpass if sys.stdin.isatty() else None
    return configured_transport(
        workspace, url=args.smtp, outbox=outbox, ask_password=ask,
        allow_plain_auth=args.allow_plain_auth,
    )  # fmt: skip


def _send_test(
    args: argparse.Namespace,
    workspace: Workspace,
    issue_id: str,
    editions: dict[str, RenderedEdition],
    default_lang: str,
) -> int:
    """Proof copies: exactly what a reader of that edition and format gets, under a subject
    marked [TEST]; not a delivery, so nothing is logged and nobody's state changes."""
    addresses = []
    for address in args.test.split(","):
        try:
            addresses.append(normalise_address(address.strip()))
        except InvalidAddress as exc:
            raise ConfigError(f"--test: {exc}") from None
    lang = args.edition or default_lang
    if lang not in editions:
        raise ConfigError(
            f"--edition {lang}: the issue has no such edition; it has {', '.join(editions)}"
        )
    # The "read online" link carries a proof token: the page shows before the issue is sent.
    proof = token_signer(workspace).token(issue_id, PROOF)
    marked = {}
    for code, edition in editions.items():
        online = web_url(workspace, issue_id, code)
        marked[code] = replace(
            edition,
            subject=TEST_PREFIX + edition.subject,
            html=edition.html.replace(online, f"{online}?proof={proof}"),
            text=edition.text.replace(online, f"{online}?proof={proof}"),
        )
    factory = message_factory(workspace, issue_id, marked, default_lang)
    transport = _transport(args, workspace, "outbox/test")
    for email in addresses:
        recipient = Recipient(email=email, lang=lang, format=args.format or Format.HTML)
        sender = factory.envelope_sender(recipient)
        reply = asyncio.run(deliver_one(transport, sender, email, factory.wire(recipient)))
        if reply.outcome != Outcome.SENT:
            raise HebdoError(
                f"the test copy to {email} was not accepted: {reply.code} {reply.text}",
                where=transport.description,
            )
        print(
            f"sent a test copy of {issue_id} ({factory.edition_label(recipient)}) to {email} "
            f"through {transport.description}"
        )
    return 0


def _send(
    args: argparse.Namespace,
    workspace: Workspace,
    folder: Path,
    factory: MessageFactory,
    transport: Transport,
    source: RecipientSource,
    store: SubscriberStore | None,
    editions: dict[str, RenderedEdition],
) -> int:
    issue_id = folder.name
    settings = workspace.settings.send
    options = SendOptions(
        concurrency=args.concurrency or settings.concurrency,
        rate=args.rate if args.rate is not None else settings.rate,
        attempts=settings.attempts,
        retry_delay=settings.retry_delay,
        limit=args.limit,
        resend_unknown=args.resend_unknown,
        stop=None
        if args.no_stop
        else StopLimits(settings.stop_window, settings.stop_failed, settings.stop_deferred),
    )
    if options.concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    if workspace.store_url is not None and not args.dry_run:
        from .send_shared import send_shared

        return send_shared(
            args, workspace, folder, factory, transport, source, store, editions, options
        )
    path = log_path(workspace, issue_id)
    ledger = FileLedger(path)
    # A run that writes the log holds the issue for its whole length: a second one stops here.
    state = read_log(path) if args.dry_run else ledger.claim()
    try:
        for warning in state.warnings:
            warn(warning)
        _check_transport(state, transport, path, dry_run=args.dry_run)

        def sender(transport: Transport, log: EventLog) -> Sender:
            return Sender(
                factory=factory, transport=transport, log=log, state=state, store=store,
                store_is_source=isinstance(source, StoreRecipients), options=options,
                store_marker=source.marker if isinstance(source, StoreRecipients) else None,
                count_rest=source.rest_cheap_to_count,
            )  # fmt: skip

        if args.dry_run:
            return _dry_run(sender(NullTransport(), NullLog()), source)

        # Counted before the first message only when it must be said: the question, or an
        # issue changed since a run recorded it (does anyone get the new text?). Otherwise the
        # list is read as the send goes: a CSV file, or a resume's walk past those done.
        asks = transport.needs_confirmation and not args.yes
        to_send = count_to_send(state, source, options) if asks else None
        digest = digest_of(editions)
        if state.digest and digest != state.digest:
            if to_send is None:
                to_send = count_to_send(state, source, options)
            if not to_send:
                digest = state.digest  # a run that mails nobody keeps the previous one
        changes = describe_changes(state.digest, digest) if state.started and state.digest else None
        if changes and not args.allow_changes:
            raise HebdoError(
                f"the issue changed since its first messages went out ({changes}); run again "
                "with --allow-changes to send the new text to the other readers, or restore the "
                "old text",
                path=folder,
            )

        if asks and to_send:
            confirm(issue_id, to_send, transport.description, bad_rows_phrase(source))
        log = ledger.writer()
        total = source.expected_total()
        log.write({
            "time": now(), "event": "run", "total": total, "source": source.description,
            "transport": transport.description, "digest": digest,
        })  # fmt: skip
        try:
            summary = asyncio.run(
                run_with_progress(
                    sender(transport, log), source.batches(),
                    to_send if to_send is not None else expected_to_send(state, total, options),
                )
            )  # fmt: skip
        except LogError:
            raise  # it says itself what was recorded and how to resume
        except HebdoError as exc:
            raise resumable(exc, display_path(path)) from None
        counted = source.read_total()
        if counted is not None and counted != total:  # the file's lines were not its readers
            log.write({"time": now(), "event": "counted", "total": counted})
    finally:
        ledger.close()
    print_summary(summary, f"log: {display_path(path)}")
    return exit_code(source, incomplete=summary.incomplete)


def expected_to_send(state: LogState, total: int, options: SendOptions) -> int:
    """What the progress bar counts to when nothing was counted first: the list, less the
    readers the log knows (an estimate: some of those are still to be mailed)."""
    left = max(total - len(state.recipients), 0)
    return left if options.limit is None else min(left, options.limit)


def exit_code(source: RecipientSource, *, incomplete: bool) -> int:
    """0 when the send is complete; 75 while running it again would mail more (what a retrying
    wrapper waits for); 65 when only bad rows of the list are left, which need a hand first."""
    if bad_rows := bad_rows_phrase(source):
        them = "it" if bad_rows.startswith("1 ") else "them"
        print(
            f"{bad_rows} not mailed: fix {them} (listed above), then run the same command "
            "again to mail their readers",
            file=sys.stderr,
        )
    if incomplete:
        return EX_TEMPFAIL
    return EX_DATAERR if bad_rows else 0


def bad_rows_phrase(source: RecipientSource) -> str | None:
    """The bad rows of a CSV list met so far, as the send says them ("2 bad rows of list.csv");
    None when there are none."""
    if not isinstance(source, CsvRecipients) or not source.bad_rows:
        return None
    count = source.bad_rows
    return f"{count} bad row{'s' if count != 1 else ''} of {display_path(source.path)}"


def _check_transport(state: LogState, transport: Transport, path: Path, *, dry_run: bool) -> None:
    """Resuming through another relay is fine (a failover); mixing the outbox, which mails
    nobody, with a relay, which mails people, would make the log lie about who got the issue."""
    if (
        state.transport
        and transport_kind(state.transport) != transport_kind(transport.description)
        and not dry_run
    ):
        raise HebdoError(
            f"this issue was already sent through {state.transport}; to send it through "
            f"{transport.description} as well, move the log aside first "
            f"(mv {display_path(path)} {display_path(path.with_suffix('.old.jsonl'))})",
            path=path,
        )


def _dry_run(sender: Sender, source: RecipientSource) -> int:
    """The real sender over a transport and a log that keep nothing."""
    summary = asyncio.run(sender.run(source.batches()))
    transport = sender.transport
    assert isinstance(transport, NullTransport)
    rendered = transport.messages
    print(
        f"dry run: {rendered} message{'s' if rendered != 1 else ''} rendered "
        f"({transport.bytes / 1024:.0f} KB in all), {summary.counts[Outcome.SKIPPED]} would be "
        f"skipped, {summary.already_done} already done, {summary.unknown_left} unknown; "
        "nothing was written or sent"
    )
    if bad_rows := bad_rows_phrase(source):
        print(f"{bad_rows} would not be mailed (listed above)", file=sys.stderr)
        return EX_DATAERR
    return 0


def transport_kind(description: str) -> str:
    return "outbox" if description.startswith("outbox") else "relay"


def confirm(issue_id: str, count: int, where: str, bad_rows: str | None = None) -> None:
    plural = "s" if count != 1 else ""
    left_out = f" ({bad_rows}, listed above, not mailed)" if bad_rows else ""
    question = (
        f"Send issue {issue_id} to {count} recipient{plural} through {where}{left_out}? [y/N] "
    )
    if not sys.stdin.isatty():
        raise HebdoError(
            f"refusing to mail {count} recipients through {where} without confirmation; "
            "run it on a terminal or pass --yes"
        )
    if input(question).strip().lower() not in ("y", "yes", "o", "oui"):
        raise HebdoError("nothing was sent")


async def run_with_progress(
    sender: Sender, batches: Iterable[RecipientBatch], to_send: int
) -> SendSummary:
    loop = asyncio.get_running_loop()

    def interrupt() -> None:
        if sender.stopping:
            # A second Ctrl-C: stop waiting; in-flight messages stay "unknown" in the log.
            for task in asyncio.all_tasks(loop):
                task.cancel()
        print(
            "\nstopping: letting the messages in flight finish (Ctrl-C again to stop now)",
            file=sys.stderr,
        )
        sender.stop("interrupted")

    loop.add_signal_handler(signal.SIGINT, interrupt)
    loop.add_signal_handler(signal.SIGTERM, interrupt)
    try:
        if not sys.stderr.isatty():
            return await sender.run(batches)
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>6.0f} msg/s"),
            TimeRemainingColumn(),
            transient=True,
        ) as progress:
            task = progress.add_task("send", total=to_send, rate=0.0)
            started = loop.time()
            done = 0

            def advance(outcome: Outcome) -> None:
                nonlocal done
                done += 1
                elapsed = max(loop.time() - started, 1e-6)
                progress.update(task, advance=1, rate=done / elapsed)

            sender.on_event = advance
            return await sender.run(batches)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)


def resumable(exc: HebdoError, where: str) -> HebdoError:
    """A send's error, with where its record is and how to go on."""
    return HebdoError(
        f"{exc.message}; every message so far is in {where}: run the same command again to resume",
        where=exc.location() or None,
    )


def print_summary(summary: SendSummary, where: str) -> None:
    counts = summary.counts
    line = ", ".join(f"{counts[k]} {k}" for k in OUTCOMES)
    extras = []
    if summary.already_done:
        extras.append(f"{summary.already_done} already done before")
    if summary.not_reached:
        extras.append(f"{summary.not_reached} not reached")
    if summary.rest_unread:
        extras.append("the rest of the list not read")
    timing = ""
    if summary.handled and summary.elapsed > 0:
        timing = f"; {summary.elapsed:.1f} s, {summary.handled / summary.elapsed:,.0f} msg/s"
    print(f"{line}{' (' + '; '.join(extras) + ')' if extras else ''}; {where}{timing}")
    if summary.stopped:
        print(
            f"stopped early ({summary.stopped}); run the same command again to resume",
            file=sys.stderr,
        )
    elif counts[Outcome.DEFERRED] or summary.not_reached or summary.rest_unread:
        print(
            "some messages are still to be sent: run the same command again to resume",
            file=sys.stderr,
        )
    unknown = counts[Outcome.UNKNOWN] + summary.unknown_left
    if unknown:
        print(
            f"{unknown} message{'s' if unknown != 1 else ''} may or may not have been accepted "
            "(the relay's reply was lost); `status` lists them as unknown, --resend-unknown sends "
            "them again",
            file=sys.stderr,
        )
