"""The ``send`` and ``status`` commands: everything is read and checked (issue, templates,
recipients, log, relay settings) before the first message leaves; then the sender runs."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import signal
import sys
from pathlib import Path

from ..audience.recipients import CsvRecipients, Recipient, RecipientSource, StoreRecipients
from ..audience.store import SubscriberStore
from ..audience.tokens import TokenSigner
from ..deliver.dkim import load_signer
from ..deliver.message import MessageFactory
from ..deliver.send import (
    Sender,
    SendOptions,
    SendSummary,
    count_to_send,
    decide,
    deliver_one,
    store_refusal,
)
from ..deliver.sendlog import STATUS_KEYS, LogState, LogWriter, now, read_log
from ..deliver.transport import OutboxTransport, SmtpTransport, Transport, parse_smtp_url
from ..errors import ConfigError, HebdoError, display_path
from ..publish.build import render_issue
from ..workspace import Workspace, load_secret, load_workspace

PASSWORD_ENV = "HEBDO_SMTP_PASSWORD"
EX_TEMPFAIL = 75  # some messages are still to be sent: run the command again


def _workspace(args: argparse.Namespace) -> Workspace:
    folder = getattr(args, "workspace", None)
    return load_workspace(Path(folder) if folder else None, explicit=folder is not None)


def log_path(workspace: Workspace, issue_id: str) -> Path:
    return workspace.logs_dir / f"{issue_id}.jsonl"


def make_transport(args: argparse.Namespace, workspace: Workspace, issue_id: str) -> Transport:
    return configured_transport(
        workspace, url=args.smtp, outbox=f"outbox/{issue_id}", interactive=sys.stdin.isatty()
    )


def configured_transport(
    workspace: Workspace, *, url: str | None, outbox: str, interactive: bool
) -> Transport:
    """The relay of --smtp or [smtp] url, else the outbox folder ``outbox`` of the workspace.
    The password comes from HEBDO_SMTP_PASSWORD, or a prompt when ``interactive``."""
    url = url or workspace.settings.smtp.url
    if not url:
        return OutboxTransport(workspace.root / outbox, outbox)
    target = parse_smtp_url(url)
    password = None
    if target.username:
        password = os.environ.get(PASSWORD_ENV)
        if password is None:
            if not interactive:
                raise ConfigError(
                    f"the relay {target.where} needs the password of {target.username!r}; "
                    f"set {PASSWORD_ENV}"
                )
            password = getpass.getpass(f"SMTP password for {target.username} at {target.where}: ")
    smtp = workspace.settings.smtp
    if not smtp.verify_tls:
        print(
            f"warning: TLS certificates of {target.where} are not checked ([smtp] verify_tls = false); "
            "anyone on the path could read this mail",
            file=sys.stderr,
        )
    return SmtpTransport(
        target, password=password, timeout=smtp.timeout, verify_tls=smtp.verify_tls
    )


def recipient_source(
    args: argparse.Namespace, workspace: Workspace
) -> tuple[RecipientSource, SubscriberStore | None]:
    store_path = workspace.store_path
    if args.subscribers:
        source = CsvRecipients(Path(args.subscribers))
        # The store still has the last word on who left: unsubscribed and bounced are skipped.
        store = (
            SubscriberStore(store_path, create=False, bounces=workspace.settings.bounces)
            if store_path.exists()
            else None
        )
        return source, store
    store = SubscriberStore(store_path, create=False, bounces=workspace.settings.bounces)
    return StoreRecipients(store), store


def cmd_send(args: argparse.Namespace) -> int:
    workspace = _workspace(args)
    folder = workspace.issue_folder(args.issue)
    issue, editions = render_issue(folder, workspace)
    for warning in issue.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    secret, created = load_secret(workspace.root)
    if created:
        print(
            f"created {display_path(workspace.root / '.hebdo-secret')} (the key of unsubscribe links)",
            file=sys.stderr,
        )
    settings = workspace.settings
    factory = MessageFactory(
        issue_id=issue.id,
        editions=editions,
        default_lang=issue.default_language,
        settings=settings.newsletter,
        signer=TokenSigner(secret, settings.newsletter.list_identifier),
        bounces=settings.bounces,
        dkim=load_signer(workspace),
    )
    transport = make_transport(args, workspace, issue.id)
    if args.test:
        return _send_test(args.test, factory, transport, workspace, issue.id)

    source, store = recipient_source(args, workspace)
    try:
        return _send(args, workspace, issue.id, factory, transport, source, store)
    finally:
        if store is not None:
            store.close()


def _send_test(
    address: str,
    factory: MessageFactory,
    transport: Transport,
    workspace: Workspace,
    issue_id: str,
) -> int:
    from ..audience.addresses import InvalidAddress, normalise_address

    try:
        email = normalise_address(address)
    except InvalidAddress as exc:
        raise ConfigError(f"--test: {exc}") from None
    recipient = Recipient(email=email)
    if isinstance(transport, OutboxTransport):
        transport = OutboxTransport(workspace.root / "outbox/test", "outbox/test")
    sender = factory.envelope_sender(recipient)
    reply = asyncio.run(deliver_one(transport, sender, email, factory.wire(recipient)))
    if reply.outcome != "sent":
        raise HebdoError(
            f"the test copy to {email} was not accepted: {reply.code} {reply.text}",
            where=transport.description,
        )
    print(
        f"sent a test copy of {issue_id} ({factory.edition_label(recipient)}) to {email} through {transport.description}"
    )
    return 0


def _send(
    args: argparse.Namespace,
    workspace: Workspace,
    issue_id: str,
    factory: MessageFactory,
    transport: Transport,
    source: RecipientSource,
    store: SubscriberStore | None,
) -> int:
    settings = workspace.settings.send
    options = SendOptions(
        concurrency=args.concurrency or settings.concurrency,
        rate=args.rate if args.rate is not None else settings.rate,
        attempts=settings.attempts,
        retry_delay=settings.retry_delay,
        limit=args.limit,
        resend_unknown=args.resend_unknown,
    )
    if options.concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    path = log_path(workspace, issue_id)
    state = read_log(path)
    for warning in state.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    # Resuming through another relay is fine (a failover); mixing the outbox, which mails nobody,
    # with a relay, which mails people, would make the log lie about who got the issue.
    if (
        state.transport
        and _kind(state.transport) != _kind(transport.description)
        and not args.dry_run
    ):
        raise HebdoError(
            f"this issue was already sent through {state.transport}; to send it through "
            f"{transport.description} as well, move the log aside first "
            f"(mv {display_path(path)} {display_path(path.with_suffix('.old.jsonl'))})",
            path=path,
        )

    store_is_source = isinstance(source, StoreRecipients)
    if args.dry_run:
        return _dry_run(state, source, options, factory, store, store_is_source)

    to_send = count_to_send(state, source, options)
    if transport.needs_confirmation and to_send and not args.yes:
        _confirm(issue_id, to_send, transport.description)

    log = LogWriter(path)
    log.write(
        {
            "time": now(),
            "event": "run",
            "total": len(source),
            "source": source.description,
            "transport": transport.description,
        }
    )
    sender = Sender(
        factory=factory,
        transport=transport,
        log=log,
        state=state,
        store=store,
        store_is_source=store_is_source,
        options=options,
    )
    try:
        summary = asyncio.run(_run_with_progress(sender, source, to_send))
    except HebdoError as exc:
        log.close()
        raise HebdoError(
            f"{exc.message}; every message so far is in {display_path(path)}: run the same command again to resume",
            where=exc.location() or None,
        ) from None
    log.close()
    _print_summary(summary, path)
    return EX_TEMPFAIL if summary.incomplete else 0


def _dry_run(
    state: LogState,
    source: RecipientSource,
    options: SendOptions,
    factory: MessageFactory,
    store: SubscriberStore | None,
    store_is_source: bool,
) -> int:
    """Render every message the run would send; write nothing anywhere."""
    counts = {"send": 0, "done": 0, "unknown": 0, "skip": 0}
    size = 0
    for recipient in source:
        decision = decide(state, recipient, options)
        if decision == "send" and store_refusal(store, recipient, source_is_store=store_is_source):
            decision = "skip"
        if decision == "send":
            if options.limit is not None and counts["send"] >= options.limit:
                break
            size += len(factory.message_bytes(recipient))
        counts[decision] += 1
    print(
        f"dry run: {counts['send']} message{'s' if counts['send'] != 1 else ''} rendered "
        f"({size / 1024:.0f} KB in all), {counts['skip']} would be skipped, {counts['done']} already "
        f"done, {counts['unknown']} unknown; nothing was written or sent"
    )
    return 0


def _kind(description: str) -> str:
    return "outbox" if description.startswith("outbox") else "relay"


def _confirm(issue_id: str, count: int, where: str) -> None:
    question = f"Send issue {issue_id} to {count} recipient{'s' if count != 1 else ''} through {where}? [y/N] "
    if not sys.stdin.isatty():
        raise HebdoError(
            f"refusing to mail {count} recipients through {where} without confirmation; "
            "run it on a terminal or pass --yes"
        )
    if input(question).strip().lower() not in ("y", "yes", "o", "oui"):
        raise HebdoError("nothing was sent")


async def _run_with_progress(sender: Sender, source: RecipientSource, to_send: int) -> SendSummary:
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
            return await sender.run(source)
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

            def advance(outcome: str) -> None:
                nonlocal done
                done += 1
                elapsed = max(loop.time() - started, 1e-6)
                progress.update(task, advance=1, rate=done / elapsed)

            sender.on_event = advance
            return await sender.run(source)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)


def _print_summary(summary: SendSummary, path: Path) -> None:
    counts = summary.counts
    line = ", ".join(
        f"{counts[k]} {k}" for k in ("sent", "deferred", "failed", "skipped", "unknown")
    )
    extras = []
    if summary.already_done:
        extras.append(f"{summary.already_done} already done before")
    if summary.not_reached:
        extras.append(f"{summary.not_reached} not reached")
    timing = ""
    if summary.handled and summary.elapsed > 0:
        timing = f"; {summary.elapsed:.1f} s, {summary.handled / summary.elapsed:,.0f} msg/s"
    print(
        f"{line}{' (' + '; '.join(extras) + ')' if extras else ''}; log: {display_path(path)}{timing}"
    )
    if summary.stopped:
        print(
            f"stopped early ({summary.stopped}); run the same command again to resume",
            file=sys.stderr,
        )
    elif counts["deferred"] or summary.not_reached:
        print(
            "some messages are still to be sent: run the same command again to resume",
            file=sys.stderr,
        )
    unknown = counts["unknown"] + summary.unknown_left
    if unknown:
        print(
            f"{unknown} message{'s' if unknown != 1 else ''} may or may not have been accepted (the relay's "
            "reply was lost); `status` lists them as unknown, --resend-unknown sends them again",
            file=sys.stderr,
        )


def cmd_status(args: argparse.Namespace) -> int:
    workspace = _workspace(args)
    folder = workspace.issue_folder(args.issue)
    path = log_path(workspace, folder.name)
    state = read_log(path)
    for warning in state.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    counts = state.counts()
    if args.json:
        print(json.dumps({key: counts[key] for key in STATUS_KEYS}))
    else:
        where = f" through {state.transport}" if state.transport else ""
        print(f"issue {folder.name}{where}: " + ", ".join(f"{counts[k]} {k}" for k in STATUS_KEYS))
    return 0
