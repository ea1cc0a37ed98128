"""Commands of the admin's side: the mailing list, returned mail, unsubscribes by mail, DKIM keys."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, display_path
from .common import warn, workspace_from

if TYPE_CHECKING:
    from ..audience.store import SubscriberStore


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
    from ..deliver.ledger import send_record

    workspace = workspace_from(args)
    report = process_bounces(workspace, Path(args.path), send_record(workspace))
    for line in report.ignored:
        print(line, file=sys.stderr)
    for line in report.problems:
        print(line, file=sys.stderr)
    for address in report.became_bounced:
        print(
            f"{address} is now bounced and will not be mailed (`hebdo-mail bounces reset` undoes it)"
        )
    for domain, count, reply in report.our_side_summary():
        print(
            f"problem on our side: {domain} refused {count} message{'s' if count > 1 else ''} "
            f"(not counted against the readers); most common reply: {reply}"
        )
    if report.our_side:
        print("  check the sending IP's reputation and the domain's SPF, DKIM and DMARC records")
    print(
        f"{report.counted} bounces counted ({report.refusals} of them refusals from the send "
        f"logs), {report.duplicates} already counted, {sum(map(len, report.our_side.values()))} "
        f"refusals of our side, {report.complaints} complaints (readers unsubscribed), "
        f"{len(report.ignored)} auto-replies and notices set aside, {len(report.problems)} left "
        "in place to look at"
    )
    return 1 if report.problems else 0


def cmd_bounces_analyse(args: argparse.Namespace) -> int:
    import json

    from ..audience.bounces import verdict_rows
    from ..audience.maildir import read_messages
    from ..config import BounceSettings

    try:  # the workspace's VERP prefix when there is one; the command needs none
        prefix = workspace_from(args).settings.bounces.prefix
    except ConfigError as exc:
        if "no hebdo.toml" not in str(exc):
            raise
        prefix = BounceSettings().prefix
    rows = [
        row
        for _, raw, _, where in read_messages(Path(args.path), any_folder=True)
        for row in verdict_rows(where, raw, prefix)
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    for row in rows:
        recipient = row["recipient"] or "-"
        if row["verdict"] in ("hard", "soft", "complaint"):
            print(
                f"{row['file']}: {recipient}  {row['verdict']}  {row['reason']}  "
                f"{row['status'] or '-'}  {row['diagnostic'] or '-'}"
            )
        else:
            print(f"{row['file']}: {row['verdict']}: {row['why']}")
    return 0


def cmd_bounces_list(args: argparse.Namespace) -> int:
    with store_of(args, create=False) as store:
        rows = store.bounces.report()
    for row in rows:
        print(
            f"{row.email}  score {row.score:g}  {row.status}  last {row.last_day} "
            f"{row.last_kind} {row.last_category or '-'}: {row.last_reason or '-'}"
        )
    print(f"{len(rows)} address{'es' if len(rows) != 1 else ''} with bounces", file=sys.stderr)
    return 0


def cmd_bounces_reset(args: argparse.Namespace) -> int:
    with store_of(args, create=False) as store:
        store.bounces.reset(args.email)
        subscriber = store.get(args.email)
    status = subscriber.status if subscriber else "not in the list"
    print(f"{args.email}: bounces cleared ({status})")
    return 0


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


def store_of(args: argparse.Namespace, *, create: bool = True) -> SubscriberStore:
    from ..audience.store import open_store

    return open_store(workspace_from(args), create=create)


def cmd_subscribers_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    from ..audience.importer import import_list

    with store_of(args) as store:
        report = import_list(
            store, path, update=args.update, dry_run=args.dry_run, check_dns=args.check_dns
        )
    for rejected in report.rejected:
        print(f"{display_path(path)}:{rejected.line}: {rejected.reason}", file=sys.stderr)
    for remark in report.warnings:
        warn(f"{display_path(path)}:{remark.line}: {remark.reason}")
    extras = []
    if report.merged:
        extras.append(f"{report.merged} duplicate row{'s' if report.merged > 1 else ''} merged")
    if report.kept_out:
        extras.append(f"{report.kept_out} unsubscribed or bounced reader(s) left as they were")
    summary = report.summary()
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
    from ..audience.importer import export_list

    with store_of(args, create=False) as store:
        count = export_list(store, target, status=args.status)
    if target is not None:
        print(f"exported {count} subscriber{'s' if count != 1 else ''} to {display_path(target)}")
    return 0


def cmd_subscribers_add(args: argparse.Namespace) -> int:
    with store_of(args) as store:
        subscriber, outcome = store.add(
            args.email, name=args.name or "", lang=args.lang, format=args.format
        )
    words = {"added": "added", "reactivated": "re-activated", "updated": "updated"}
    print(f"{words[outcome]} {subscriber.email} ({subscriber.status})")
    return 0


def cmd_subscribers_remove(args: argparse.Namespace) -> int:
    with store_of(args, create=False) as store:
        store.remove(args.email)
    print(f"removed {args.email} from the list")
    return 0


def cmd_subscribers_unsubscribe(args: argparse.Namespace) -> int:
    with store_of(args, create=False) as store:
        subscriber = store.set_status(args.email, "unsubscribed")
    print(f"{subscriber.email} is unsubscribed")
    return 0


def cmd_subscribers_list(args: argparse.Namespace) -> int:
    with store_of(args, create=False) as store:
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
    with store_of(args, create=False) as store:
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


def cmd_store_migrate(args: argparse.Namespace) -> int:
    from ..audience.store import open_store

    with open_store(workspace_from(args), migrate=True) as store:
        version = store.db.schema_version()
    print(f"{store.db.where}: schema {version}, up to date")
    return 0


def cmd_store_copy(args: argparse.Namespace) -> int:
    from ..audience.transfer import copy_store, open_target

    with store_of(args, create=False) as source, open_target(args.to, source) as target:
        counts = copy_store(source, target)
        where = target.db.where
    copied = ", ".join(f"{count} {table.replace('_', ' ')}" for table, count in counts.items())
    print(f"copied {source.db.where} to {where} in one transaction: {copied}")
    print(
        "point [store] at the copy in hebdo.toml (url = … or path = …) to use it", file=sys.stderr
    )
    return 0
