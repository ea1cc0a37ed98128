"""``hebdo-mail report ISSUE``: what an issue did, at the terminal or as JSON (the figures are
deliver/report.py's)."""

from __future__ import annotations

import argparse

from ..deliver.report import DomainReplies, IssueReport, issue_report
from .common import workspace_from


def cmd_report(args: argparse.Namespace) -> int:
    workspace = workspace_from(args)
    folder = workspace.issue_folder(args.issue)
    report = issue_report(workspace, folder.name)
    print(report.to_json() if args.json else "\n".join(report_lines(report)))
    return 0


def report_lines(report: IssueReport) -> list[str]:
    lines = [f"issue {report.issue}: {report.total:,} on the list"]
    for label, count in (
        ("sent", report.sent), ("failed", report.failed), ("deferred", report.deferred),
        ("unknown", report.unknown), ("skipped", report.skipped), ("pending", report.pending),
    ):  # fmt: skip
        lines.append(f"  {label:<9}{count:>8,}")
        if label == "failed":
            lines += _domains(report.failures)
    reasons = ", ".join(f"{reason} {n}" for reason, n in report.bounces.items())
    lines.append(
        f"bounced later  {report.bounced:,}{f' ({reasons})' if reasons else ''}; "
        f"complaints {report.complaints}"
    )
    if report.problems_on_our_side:
        lines.append("refused for reasons of our side (IP, sender, message):")
        lines += _domains(report.problems_on_our_side)
    lines.append(f"unsubscribed from this issue's links  {report.unsubscribed:,}")
    if report.relays:
        lines.append("by relay:")
        lines += [
            f"    {r.relay:<32}{r.sent:>8,} sent {r.failed:>6,} failed {r.deferred:>6,} deferred"
            for r in report.relays
        ]
    if not report.clicks_counted and not report.clicks:
        lines.append("clicks: not counted ([tracking] clicks = true counts them)")
    else:
        lines.append("clicks per link (counted per link, never per reader):")
        lines += [f"  {link.clicks:>8,}  {link.url}" for link in report.clicks]
    lines.append("no open rate: issues carry no tracking pixel (see the README)")
    return lines


def _domains(groups: list[DomainReplies]) -> list[str]:
    return [f"    {g.domain:<24}{g.count:>6,}  {g.reply}" for g in groups[:10]]
