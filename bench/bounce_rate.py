"""Rate of `bounces process`: a Maildir of returned mail against a store of subscribers.

    .venv/bin/python bench/bounce_rate.py [--subscribers 100000] [--bounces 5000] [--runs 3]

The Maildir holds --bounces messages made from the project's corpus (tests/bounces/), each
rewritten to name a different subscriber; one in ten comes back through a VERP address only.
Each run processes a fresh copy into a fresh copy of the store, so every run does the same work.
Prints the time of each run, the median, and messages per second.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
import statistics
import tempfile
import time
from email.utils import format_datetime
from pathlib import Path

from hebdo_mail.audience.bounces import process_bounces
from hebdo_mail.audience.importer import import_list
from hebdo_mail.audience.store import SubscriberStore
from hebdo_mail.audience.tokens import TokenSigner
from hebdo_mail.deliver.sendlog import SendLogs
from hebdo_mail.workspace import init_workspace, load_secret, load_workspace

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "bounces"
# Corpus messages that are bounces, with the address each names.
NAMED = {
    "rfc3464_unknown_user.eml": "ines.moreau@example.net",
    "postfix.eml": "tom.baker@example.co.uk",
    "exim.eml": "lucia.fernandez@example.es",
    "sendmail.eml": "nora.berg@example.no",
    "gmail.eml": "olivier.petit@example.fr",
    "exchange.eml": "yuki.tanaka@example.jp",
    "qmail.eml": "bruno.costa@example.pt",
    "rfc3464_over_quota.eml": "paul.girard@example.com",
    "autoreply_en.eml": "tom.baker@example.co.uk",
}


def prepare(folder: Path, subscribers: int, bounces: int) -> tuple[Path, Path]:
    root = folder / "ws"
    init_workspace(root, "Bench")
    workspace = load_workspace(root, explicit=True)
    with SubscriberStore.at(workspace.store_path) as store:
        rows = "\n".join(f"reader{i}@example{i % 300}.org" for i in range(subscribers))
        (folder / "list.csv").write_text("email\n" + rows + "\n")
        import_list(store, folder / "list.csv")
    secret, _ = load_secret(root, create=False)
    signer = TokenSigner(secret, workspace.settings.newsletter.list_identifier)
    box = folder / "Bounces"
    for sub in ("new", "cur", "tmp"):
        (box / sub).mkdir(parents=True)
    samples = [(CORPUS / name).read_bytes() for name in NAMED]
    today = format_datetime(dt.datetime.now(dt.UTC)).encode()
    for n in range(bounces):
        address = f"reader{n * 7 % subscribers}@example{n * 7 % subscribers % 300}.org"
        name = list(NAMED)[n % len(NAMED)]
        raw = samples[n % len(samples)].replace(NAMED[name].encode(), address.encode())
        raw = re.sub(rb"(?m)^Date: .*$", b"Date: " + today, raw, count=1)
        if n % 10 == 0:  # VERP only: the report names an address the list does not know
            verp = f"To: bounces+{signer.verp_token(address)}@example.org".encode()
            raw = raw.replace(address.encode(), b"old-" + address.encode())
            raw = re.sub(rb"(?m)^To: .*$", verp, raw, count=1)
        (box / "new" / f"{n}.M{n}P1.bench").write_bytes(raw)
    return root, box


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--bounces", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    timings = []
    with tempfile.TemporaryDirectory() as folder:
        root, box = prepare(Path(folder), args.subscribers, args.bounces)
        for run in range(args.runs):
            run_root, run_box = Path(folder) / f"ws{run}", Path(folder) / f"box{run}"
            shutil.copytree(root, run_root)
            shutil.copytree(box, run_box)
            start = time.perf_counter()
            workspace = load_workspace(run_root, explicit=True)
            report = process_bounces(workspace, run_box, SendLogs(workspace.logs_dir))
            elapsed = time.perf_counter() - start
            timings.append(elapsed)
            print(
                f"run {run + 1}: {elapsed:.2f} s; {report.counted} counted, {len(report.ignored)} "
                f"set aside, {len(report.problems)} left, {len(report.became_bounced)} now bounced"
            )
    median = statistics.median(timings)
    print(
        f"median {median:.2f} s for {args.bounces:,} bounces against {args.subscribers:,} "
        f"subscribers: {args.bounces / median:,.0f} messages/s"
    )


if __name__ == "__main__":
    main()
