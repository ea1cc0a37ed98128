"""Import rate of the subscriber store: N rows (default 100,000) into a fresh store.

    .venv/bin/python bench/import_rate.py [--n 100000] [--runs 3]

Prints the time of each run, the median and rows per second. The file has what real lists have:
a few hundred domains, accents, 1% duplicate addresses in another case and 0.5% invalid rows.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from hebdo_mail.audience.importer import import_list
from hebdo_mail.audience.store import SubscriberStore

NAMES = [
    "Hélène Lefèvre",
    "Marc Dubois",
    "Anna Kowalski",
    "Jack O'Connor",
    "Zoé Nguyễn",
    "Ana Núñez",
]


def write_list(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("email;name;lang;format;city\n")
        for i in range(n):
            if i % 200 == 199:
                handle.write(f"broken-address-{i};Nobody;fr;html;\n")
            elif i % 100 == 99:
                handle.write(f"READER{i - 1}@EXAMPLE{(i - 1) % 300}.ORG;;;;\n")
            else:
                lang, fmt = ("fr", "html") if i % 3 else ("en", "text")
                handle.write(
                    f"reader{i}@example{i % 300}.org;{NAMES[i % 6]} {i};{lang};{fmt};Ville {i % 40}\n"
                )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    timings = []
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "list.csv"
        write_list(source, args.n)
        for run in range(args.runs):
            store_path = Path(folder) / f"run{run}.db"
            start = time.perf_counter()
            with SubscriberStore.at(store_path) as store:
                report = import_list(store, source)
            elapsed = time.perf_counter() - start
            timings.append(elapsed)
            print(
                f"run {run + 1}: {elapsed:.2f} s  (added {report.added}, merged {report.merged}, "
                f"rejected {len(report.rejected)})"
            )
    median = statistics.median(timings)
    print(
        f"median {median:.2f} s for {args.n:,} rows: {args.n / median:,.0f} rows/s (target: under 5 s)"
    )


if __name__ == "__main__":
    main()
