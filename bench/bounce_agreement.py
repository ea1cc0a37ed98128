"""Agreement of the bounce analysis with a reference analyser's answers (Sisimai's, say).

    .venv/bin/python bench/bounce_agreement.py DIR ANSWERS.json [--runs 3] [--show]

DIR holds the messages (one file each); ANSWERS.json maps each message's file name (or a path
ending in it) to the reference's answers, one per recipient: ``{"recipient": ..., "reason": ...,
"hard": 0 or 1}`` (bench/sisimai_answers.pl writes it from Sisimai). Only the messages the JSON
names are read. The reference's reasons ``delivered``, ``feedback`` and ``vacation`` are not
bounces. Prints, for the messages the reference calls bounces: how many we find with the right
reader (a recipient the reference names among ours), how often we agree on hard or soft and on
the reason, the same per reference reason; for the others, any we count as a bounce; and the
median time of ``--runs`` passes over all the messages. ``--show`` lists every disagreement.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hebdo_mail.audience.failures import Failure
from hebdo_mail.audience.returned_mail import Bounce, Complaint, Verdict, analyse

NOT_BOUNCES = {"delivered", "feedback", "vacation"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the messages, one file each")
    parser.add_argument("answers", type=Path, help="the reference's answers (JSON)")
    parser.add_argument("--runs", type=int, default=3, help="timed passes (median printed)")
    parser.add_argument("--show", action="store_true", help="list every disagreement")
    args = parser.parse_args()

    answers = _answers(json.loads(args.answers.read_text(encoding="utf-8")))
    raw = {name: (args.folder / name).read_bytes() for name in answers}
    times = []
    for _ in range(max(1, args.runs)):
        start = time.perf_counter()
        verdicts = {name: analyse(data, "bounces") for name, data in raw.items()}
        times.append(time.perf_counter() - start)

    tally, per_reason, lines = _compare(answers, verdicts)
    if args.show:
        print("\n".join(lines))
    _report(tally, per_reason, statistics.median(times), len(raw))


def _answers(data: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The answers by file name (the JSON may name files by a longer path)."""
    return {Path(key).name: value for key, value in sorted(data.items())}


def _compare(
    answers: dict[str, list[dict[str, Any]]], verdicts: dict[str, Verdict]
) -> tuple[Counter[str], dict[str, Counter[str]], list[str]]:
    tally: Counter[str] = Counter()
    per_reason: dict[str, Counter[str]] = {}
    lines: list[str] = []
    for name, reference in answers.items():
        verdict = verdicts[name]
        ours: dict[str, Failure] = {}
        if isinstance(verdict, Bounce):
            ours = {f.recipient.lower(): f for f in verdict.failures}
        bounced = [a for a in reference if a["reason"] not in NOT_BOUNCES]
        if not bounced:
            _not_a_bounce(name, reference, verdict, tally, lines)
            continue
        tally["bounces"] += 1
        tally["recipients"] += len(bounced)
        tally["recipients found"] += sum(a["recipient"].lower() in ours for a in bounced)
        found = [a for a in bounced if a["recipient"].lower() in ours]
        if not found:
            lines.append(f"MISSED  {name}: {[a['recipient'] for a in bounced]}, we read {verdict}")
            per_reason.setdefault(bounced[0]["reason"], Counter())["bounces"] += 1
            continue
        answer, failure = found[0], ours[found[0]["recipient"].lower()]
        counts = per_reason.setdefault(answer["reason"], Counter())
        counts["bounces"] += 1
        tally["found"] += 1
        counts["found"] += 1
        if bool(answer["hard"]) == (failure.kind == "hard"):
            tally["hard/soft"] += 1
            counts["hard/soft"] += 1
        else:
            lines.append(
                f"KIND    {name}: {answer['reason']} ({'hard' if answer['hard'] else 'soft'})"
                f", we {failure.reason} ({failure.kind}) {failure.status}: "
                f"{failure.diagnostic[:100]}"
            )
        if answer["reason"] == failure.reason:
            tally["reason"] += 1
            counts["reason"] += 1
    return tally, per_reason, lines


def _not_a_bounce(
    name: str,
    reference: list[dict[str, Any]],
    verdict: Verdict,
    tally: Counter[str],
    lines: list[str],
) -> None:
    said = {a["reason"] for a in reference}
    kind = "unread" if not said else "/".join(sorted(said))
    tally[f"not a bounce: {kind}"] += 1
    if "feedback" in said and isinstance(verdict, Complaint):
        tally["complaints found"] += 1
    if isinstance(verdict, Bounce):
        tally[f"counted as bounces: {kind}"] += 1
        lines.append(f"EXTRA   {name}: the reference reads {kind}, we a bounce")


def _report(
    tally: Counter[str], per_reason: dict[str, Counter[str]], seconds: float, messages: int
) -> None:
    bounces, found = tally["bounces"], tally["found"]
    print(f"bounces (the reference's)  {bounces}")
    print(f"  right reader             {found} = {_share(found, bounces)}")
    print(f"  recipients found         {tally['recipients found']} of {tally['recipients']}")
    print(f"  hard/soft agree          {tally['hard/soft']} of {found} = "
          f"{_share(tally['hard/soft'], found)}")  # fmt: skip
    print(f"  same reason              {tally['reason']} of {found} = "
          f"{_share(tally['reason'], found)}")  # fmt: skip
    for key in sorted(k for k in tally if k.startswith(("not a bounce", "counted as", "compl"))):
        print(f"{key:27}{tally[key]}")
    print(f"{'reason':16}{'bounces':>8}{'found':>7}{'hard/soft':>11}{'reason':>8}")
    for reason, counts in sorted(per_reason.items(), key=lambda item: -item[1]["bounces"]):
        print(
            f"{reason:16}{counts['bounces']:8}{counts['found']:7}"
            f"{_share(counts['hard/soft'], counts['found']):>11}"
            f"{_share(counts['reason'], counts['found']):>8}"
        )
    print(f"time (median)              {seconds:.3f} s for {messages} messages, "
          f"{messages / seconds:.0f} messages/s")  # fmt: skip


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


if __name__ == "__main__":
    main()
