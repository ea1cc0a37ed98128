"""What the dashboard's pages cost on the shared ledger (deliver/pgdeliveries.py), and what the
indexes by recipient they need cost a send.

    .venv/bin/python bench/shared_dashboard.py [--readers 100000] [--issues 10] [--runs 3]

Starts a throwaway PostgreSQL server (Debian's binaries, as the tests do), fills the shared ledger
with ``--issues`` issues of ``--readers`` recipients (a queue row, an attempt and a sent event
each, as a send leaves them), then prints medians of ``--runs``:
- one reader's deliveries (the reader page), with the indexes by recipient and without them;
- an issue's progress, the list of issues and the running-send check (the overview);
- an issue's messages per minute and its failures (the issue page);
- the overview's five reports (deliver/report.py), read afresh, then again unchanged;
- a send's event writes (batches of 64 through the ledger's trigger, as EventWriter writes
  them), with both indexes by recipient, the queue's only, and neither.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests/pgserver.py: the tests' throwaway server

from reader_page import timed  # noqa: E402  (this folder: the benchmarks' own helpers)

from hebdo_mail.audience.postgres import PostgresDatabase, close_pools  # noqa: E402
from hebdo_mail.audience.schema import MIGRATIONS  # noqa: E402
from hebdo_mail.deliver.pgdeliveries import SharedDeliveryRecords  # noqa: E402
from hebdo_mail.deliver.pgevents import EVENT_COLUMNS  # noqa: E402
from hebdo_mail.deliver.report import issue_report  # noqa: E402
from hebdo_mail.workspace import load_workspace  # noqa: E402
from tests.pgserver import PostgresServer  # noqa: E402

INDEXES = {  # the indexes by recipient (schema.py), and their tables
    "send_queue_by_recipient": "send_queue (recipient)",
    "send_events_by_recipient": "send_events (recipient)",
}
LAYOUTS = {
    "with both indexes by recipient": tuple(INDEXES),
    "with the queue's only": ("send_queue_by_recipient",),
    "with neither": (),
}
WRITES = 20_000  # events of the write test
BATCH = 64


def fill(db: PostgresDatabase, issues: int, readers: int) -> None:
    """The ledger as sends leave it, written in bulk (the trigger's work done in the insert)."""
    db.execute("ALTER TABLE send_events DISABLE TRIGGER send_events_follow")
    for i in range(issues):
        issue = f"2026-{i + 1:02d}"
        day = f"2026-11-{1 + i % 28:02d}"
        db.execute(
            "INSERT INTO send_runs (issue_id, time, sender, total, source, transport)"
            " VALUES (?, ?, 'bench', ?, 'store', 'smtp://relay:25')",
            (issue, f"{day}T04:00:00.000+00:00", readers),
        )
        db.execute(
            "INSERT INTO send_queue (issue_id, recipient, position, email, state, last_event,"
            " attempts) SELECT ?, 'reader' || n || '@example' || n % 300 || '.org', n,"
            " 'reader' || n || '@example' || n % 300 || '.org', 'done', 'sent', 1"
            " FROM generate_series(0, ? - 1) AS n",
            (issue, readers),
        )
        for event, extra in (("attempt", "NULL"), ("sent", "'2.0.0 Ok: queued'")):
            db.execute(
                "INSERT INTO send_events (issue_id, time, recipient, event, edition, code, reply,"
                " message_id, attempt) SELECT ?, ? || lpad((n % 60)::text, 2, '0') || ':14.120+00:00',"
                " 'reader' || n || '@example' || n % 300 || '.org', ?, 'fr/html',"
                f" {'250' if event == 'sent' else 'NULL'}, {extra}, '<' || n || '@example.org>', 1"
                " FROM generate_series(0, ? - 1) AS n",
                (issue, f"{day}T04:", event, readers),
            )
    db.execute("ALTER TABLE send_events ENABLE TRIGGER send_events_follow")
    db.execute("ANALYZE")


def write_events(db: PostgresDatabase, issue: str) -> float:
    """Events per second for a send of WRITES // 2 readers: an attempt and a sent each."""
    db.execute("DELETE FROM send_events WHERE issue_id = ?", (issue,))
    db.execute("DELETE FROM send_queue WHERE issue_id = ?", (issue,))
    db.execute(
        "INSERT INTO send_queue (issue_id, recipient, position, email) SELECT ?,"
        " 'w' || n || '@example.org', n, 'w' || n || '@example.org'"
        " FROM generate_series(0, ? - 1) AS n",
        (issue, WRITES // 2),
    )
    rows = [
        [
            {
                "issue_id": issue, "time": "2026-11-30T04:00:00.000+00:00",
                "recipient": f"w{n}@example.org", "event": event, "edition": "fr/html",
                "code": 250 if event == "sent" else None,
                "reply": "2.0.0 Ok" if event == "sent" else None,
                "message_id": f"<{n}@example.org>", "attempt": 1,
            }.get(column)
            for column in EVENT_COLUMNS
        ]
        for n in range(WRITES // 2)
        for event in ("attempt", "sent")
    ]  # fmt: skip
    marks = "(" + ", ".join("?" * len(EVENT_COLUMNS)) + ")"
    start = time.perf_counter()
    for first in range(0, len(rows), BATCH):
        batch = rows[first : first + BATCH]
        db.execute(
            f"INSERT INTO send_events ({', '.join(EVENT_COLUMNS)}) VALUES "
            + ", ".join([marks] * len(batch)),
            [value for row in batch for value in row],
        )
    return len(rows) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--issues", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    server = PostgresServer().start()
    try:
        db = PostgresDatabase(server.url(), migrations=MIGRATIONS, migrate=True)
        start = time.perf_counter()
        fill(db, args.issues, args.readers)
        events = 2 * args.issues * args.readers
        print(
            f"{args.issues} issues of {args.readers:,} readers ({events:,} events) "
            f"written in {time.perf_counter() - start:.0f} s"
        )
        records = SharedDeliveryRecords(db)
        reader = f"reader{args.readers // 2}@example{(args.readers // 2) % 300}.org"
        assert len(records.of_reader(reader)) == args.issues
        issue = f"2026-{args.issues:02d}"
        print(
            f"one reader's deliveries: {timed(lambda: records.of_reader(reader), args.runs) * 1000:.1f} ms"
        )
        print(
            f"an issue's progress: {timed(lambda: records.progress(issue), args.runs) * 1000:.1f} ms"
        )
        print(f"the list of issues: {timed(records.issues, args.runs) * 1000:.1f} ms")
        print(f"the running-send check: {timed(records.running, args.runs) * 1000:.1f} ms")
        print(
            f"an issue's messages per minute: {timed(lambda: records.per_minute(issue), args.runs) * 1000:.1f} ms"
        )
        print(
            f"an issue's failures: {timed(lambda: records.final_failures(issue), args.runs) * 1000:.1f} ms"
        )
        with tempfile.TemporaryDirectory() as folder:
            shutil.copy(REPO / "hebdo.toml", Path(folder) / "hebdo.toml")
            with (Path(folder) / "hebdo.toml").open("a", encoding="utf-8") as handle:
                handle.write(f'\n[store]\nurl = "{server.url()}"\n')
            workspace = load_workspace(Path(folder), explicit=True)
            last = [row.issue for row in records.issues()[:5]]

            def overview() -> None:
                for issue in last:
                    issue_report(workspace, issue)

            print(f"the overview's {len(last)} reports, read afresh: {timed(overview, 1):.1f} s")
            again = timed(overview, args.runs)
            print(f"the same, the ledger unchanged: {again * 1000:.0f} ms")
        # What the indexes cost a send: each layout in turn, --runs times, alternating.
        rates: dict[str, list[float]] = {name: [] for name in LAYOUTS}
        for _ in range(args.runs):
            for name, indexes in LAYOUTS.items():
                for index, table in INDEXES.items():
                    db.execute(f"DROP INDEX IF EXISTS {index}")
                    if index in indexes:
                        db.execute(f"CREATE INDEX {index} ON {table}")
                rates[name].append(write_events(db, "writes"))
        db.execute("ANALYZE")
        print(
            f"one reader's deliveries without the indexes: {timed(lambda: records.of_reader(reader), 1) * 1000:.0f} ms"
        )
        print(
            "a send's event writes, events/s: "
            + ", ".join(f"{statistics.median(r):,.0f} {name}" for name, r in rates.items())
        )
        db.close()
    finally:
        close_pools()
        server.stop()


if __name__ == "__main__":
    main()
