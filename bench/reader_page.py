"""What a reader's page costs with large send logs: the index of the logs (deliver/delivery_index.py)
against reading every log for one reader.

    .venv/bin/python bench/reader_page.py [--readers 100000] [--issues 10] [--runs 3]

Writes ``--issues`` send logs of ``--readers`` recipients each (an attempt and a sent line per
recipient, as a send writes them), then prints, each as a median of ``--runs``:
- the first catch-up of the index (every log read once, after a deploy or a restore);
- a catch-up when one log grew by 1,000 lines (what the dashboard does on each page);
- one reader's deliveries from the index;
- the same answer by reading every log with read_log (what the page would do without the index).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hebdo_mail.audience.store import SubscriberStore
from hebdo_mail.deliver.delivery_index import _catch_up, deliveries_of
from hebdo_mail.deliver.sendlog import read_log

LINE = (
    '{{"time":"2026-11-{day:02d}T04:{minute:02d}:14.120+00:00","recipient":"reader{n}@example{d}.org",'
    '"event":"{event}","edition":"fr/html"{extra},"message_id":"<{issue}.e85b{n}@example.org>",'
    '"attempt":1}}\n'
)


def write_log(path: Path, issue: str, readers: int, day: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write(
            f'{{"time":"2026-11-{day:02d}T04:00:00.000+00:00","event":"run","total":{readers},'
            '"source":"store","transport":"smtp://relay:25"}\n'
        )
        for n in range(readers):
            common = {"day": day, "minute": n % 60, "n": n, "d": n % 300, "issue": issue}
            handle.write(LINE.format(event="attempt", extra="", **common))
            handle.write(
                LINE.format(event="sent", extra=',"code":250,"reply":"2.0.0 Ok: queued"', **common)
            )


def timed(action: Callable[[], object], runs: int) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--issues", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        logs = Path(folder) / "logs"
        logs.mkdir()
        paths = []
        for i in range(args.issues):
            path = logs / f"2026-{i + 1:02d}.jsonl"
            write_log(path, path.stem, args.readers, 1 + i % 28)
            paths.append(path)
        size = sum(p.stat().st_size for p in paths) / 1e6
        print(f"{args.issues} logs of {args.readers:,} recipients: {size:.0f} MB")
        first = []
        for run in range(args.runs):
            with SubscriberStore.at(Path(folder) / f"run{run}.db") as store:
                start = time.perf_counter()
                for path in paths:
                    _catch_up(store.db, path.stem, path)
                first.append(time.perf_counter() - start)
        print(f"first catch-up, every log: {statistics.median(first):.2f} s")
        with SubscriberStore.at(Path(folder) / "run0.db") as store:

            def grow() -> None:
                with paths[-1].open("a", encoding="utf-8") as handle:
                    for n in range(500):
                        common = {"day": 28, "minute": 0, "n": n, "d": 1, "issue": "x"}
                        handle.write(LINE.format(event="attempt", extra="", **common))
                        handle.write(LINE.format(event="sent", extra="", **common))
                for path in paths:
                    _catch_up(store.db, path.stem, path)

            print(f"catch-up after 1,000 new lines: {timed(grow, args.runs) * 1000:.1f} ms")
            key = f"reader{args.readers // 2}@example{(args.readers // 2) % 300}.org"
            found = deliveries_of(store.db, key)
            assert len(found) == args.issues, found
            lookup = timed(lambda: deliveries_of(store.db, key), args.runs)
            print(f"one reader's deliveries from the index: {lookup * 1000:.2f} ms")
        scan = timed(lambda: [read_log(path).status_of(key) for path in paths], 1)
        print(f"the same by reading every log: {scan:.2f} s")


if __name__ == "__main__":
    main()
