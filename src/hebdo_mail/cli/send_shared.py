"""``send`` when the store is a PostgreSQL server: the issue's ledger is shared, and every
sender that runs ``send`` for it (on this host or others) cooperates on one queue instead of
waiting for the others (deliver/pgledger.py)."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..audience.recipients import CsvRecipients, RecipientSource, StoreRecipients
from ..deliver.changes import describe_changes, digest_of
from ..deliver.pgledger import SharedLedger
from ..deliver.pgrecords import shared_counts, shared_waiting, write_jsonl
from ..deliver.selection import SendOptions
from ..deliver.send import Sender
from ..errors import HebdoError
from ..vocabulary import STATUS_KEYS

if TYPE_CHECKING:
    import argparse

    from ..audience.store import SubscriberStore
    from ..deliver.message import MessageFactory
    from ..deliver.transport import Transport
    from ..publish.rendered import RenderedEdition
    from ..workspace import Workspace


def send_shared(
    args: argparse.Namespace, workspace: Workspace, folder: Path, factory: MessageFactory,
    transport: Transport, source: RecipientSource, store: SubscriberStore | None,
    editions: dict[str, RenderedEdition], options: SendOptions,
) -> int:  # fmt: skip
    from .send import (
        bad_rows_phrase,
        confirm,
        exit_code,
        print_summary,
        resumable,
        run_with_progress,
        transport_kind,
    )

    url = workspace.store_url
    assert url is not None
    issue_id = folder.name
    ledger = SharedLedger(url, issue_id, lease=workspace.settings.send.lease)
    where = f"the shared ledger at {ledger.db.where}"
    try:
        last = ledger.last_run()
        if last and transport_kind(last["transport"]) != transport_kind(transport.description):
            raise HebdoError(
                f"this issue was already sent through {last['transport']}; the outbox and a "
                "relay cannot share an issue's ledger (the log would lie about who got it)",
                where=ledger.db.where,
            )
        digest = digest_of(editions)
        # A sender with another copy of the issue must not join: readers would get two texts.
        changes = describe_changes(last["digest"], digest) if last and last["digest"] else None
        if changes and ledger.started() and not args.allow_changes:
            raise HebdoError(
                f"the issue changed since its first messages went out ({changes}); this sender's "
                "copy differs from the one the others send. Run again with --allow-changes to "
                "send the new text to the remaining readers, or restore the old text",
                path=folder,
            )
        if isinstance(source, CsvRecipients):
            source.read_through()  # the shared queue holds every reader before anyone sends
        ledger.prepare(source)
        to_send = ledger.pending(resend_unknown=options.resend_unknown)
        if options.limit is not None:
            to_send = min(to_send, options.limit)
        if transport.needs_confirmation and to_send and not args.yes:
            confirm(issue_id, to_send, transport.description, bad_rows_phrase(source))
        found = ledger.join(
            source, transport=transport.description, digest=digest,
            resend_unknown=options.resend_unknown,
        )  # fmt: skip
        sender = Sender(
            factory=factory, transport=transport, log=ledger.writer(), state=ledger.claims,
            store=store, store_is_source=isinstance(source, StoreRecipients), options=options,
        )  # fmt: skip
        # As the file ledger's summary says them: what earlier runs did, what this one left.
        sender.summary.already_done = found["sent"] + found["failed"] + found["skipped"]
        if not options.resend_unknown:
            sender.summary.unknown_left = found["unknown"]
        claims = ledger.recipients(options.limit, batch=max(8, options.concurrency * 8))
        # Once stopped, claim no more: what is left is counted below, from the ledger.
        batches = itertools.takewhile(lambda _: not sender.stopping, claims)
        try:
            summary = asyncio.run(run_with_progress(sender, batches, to_send))
        except HebdoError as exc:
            raise resumable(exc, f"{where} (on any host)") from None
    finally:
        ledger.close()  # hands back what it claimed and never attempted
    left = shared_counts(url, issue_id)
    # Left for a next run: what nobody holds (another live sender's claims are its own).
    summary.not_reached = shared_waiting(url, issue_id)
    print_summary(summary, f"log: {where}")
    print(
        f"issue {issue_id}, all senders: " + ", ".join(f"{left[key]} {key}" for key in STATUS_KEYS)
    )
    return exit_code(source, incomplete=summary.incomplete or bool(left["deferred"]))


def shared_status(url: str, issue_id: str, as_json: bool) -> None:
    counts = shared_counts(url, issue_id)
    if as_json:
        print(json.dumps(counts))
    else:
        print(
            f"issue {issue_id} (shared ledger): "
            + ", ".join(f"{counts[k]} {k}" for k in STATUS_KEYS)
        )


def export_log(url: str, issue_id: str, target: Path | None) -> int:
    """The issue's shared ledger as the JSONL the file ledger keeps; returns the lines written."""
    if target is None:
        return write_jsonl(url, issue_id, sys.stdout)
    with target.open("w", encoding="utf-8") as handle:
        return write_jsonl(url, issue_id, handle)
