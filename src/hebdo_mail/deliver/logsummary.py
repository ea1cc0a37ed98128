"""What ``status`` shows of a file log, kept beside it: a run that ends leaves its counts in
``logs/<issue-id>.summary.json``, stamped with the log's identity, size and time, so that
``status`` answers without replaying a log of a million readers (two million lines). The summary
counts only while the log is exactly as the run left it; once anything else wrote to the log, or
the run was killed before leaving one, ``status`` replays the log as before.

The counts are kept up to date as the run writes: the replay the run started from gives each
reader's last event before it, and the readers whose last event in this run is not final yet
(an attempt, a deferral) are the only ones held in memory.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_output
from ..vocabulary import FINAL_EVENTS, Event
from .sendlog import (
    ATTEMPT_STEP,
    EVENTS,
    TOTAL_EVENTS,
    LogState,
    LogWriter,
    count_outcomes,
    read_log,
)

SUMMARY_FORMAT = 1


def summary_path(log: Path) -> Path:
    return log.with_name(f"{log.stem}.summary.json")


@dataclass
class LogSummary:
    """A log's counts as ``status`` prints them."""

    total: int
    transport: str | None
    last_events: dict[str, int]  # event -> the readers it is the last event of
    warnings: list[str]

    def counts(self) -> dict[str, int]:
        return count_outcomes(self.last_events, self.total)


class CountingLogWriter(LogWriter):
    """The file ledger's writer: the log as ``LogWriter`` writes it, and its counts kept."""

    def __init__(self, path: Path, start: LogState) -> None:
        super().__init__(path)
        self.start = start
        self.summary = LogSummary(
            start.total, start.transport, dict(start.last_events), list(start.warnings)
        )
        self._open: dict[str, str] = {}  # reader -> last event in this run, when not final

    def write(self, record: dict[str, Any]) -> None:
        super().write(record)
        if record.get("event") in TOTAL_EVENTS:
            self.summary.total = record["total"]
        if record.get("event") == "run":
            self.summary.transport = record["transport"]

    def counted(self, recipient: str, event: Event) -> None:
        before = self._open.pop(recipient, None)
        if before is None:
            state = self.start.recipients.get(recipient)
            before = None if state is None else EVENTS[state % ATTEMPT_STEP]
        last = self.summary.last_events
        if before is not None:
            last[before] -= 1
        last[event] = last.get(event, 0) + 1
        if event not in FINAL_EVENTS:
            self._open[recipient] = event

    def close(self) -> None:
        super().close()
        if self.failed is None:
            leave_summary(self.path, self.summary)


def leave_summary(log: Path, summary: LogSummary) -> None:
    """Write the summary, stamped with the log as it is now; a summary that cannot be written
    is no loss (status replays the log)."""
    try:
        found = log.stat()
        record = {
            "format": SUMMARY_FORMAT,
            "log": [found.st_ino, found.st_size, found.st_mtime_ns],
            "total": summary.total,
            "transport": summary.transport,
            "last_events": {event: n for event, n in summary.last_events.items() if n},
            "warnings": summary.warnings,
        }
        with atomic_output(summary_path(log)) as handle:
            handle.write(json.dumps(record, ensure_ascii=False).encode())
    except OSError:
        with contextlib.suppress(OSError):
            summary_path(log).unlink()  # never leave one that could be taken for this log's


def read_summary(log: Path) -> LogSummary | None:
    """The summary the last run left, if the log is still exactly as that run left it."""
    try:
        found = log.stat()
        record = json.loads(summary_path(log).read_bytes())
    except (OSError, ValueError):
        return None
    stamp = [found.st_ino, found.st_size, found.st_mtime_ns]
    if not isinstance(record, dict) or record.get("format") != SUMMARY_FORMAT:
        return None
    if record.get("log") != stamp:
        return None
    try:
        return LogSummary(
            int(record["total"]),
            record["transport"],
            {str(event): int(n) for event, n in record["last_events"].items()},
            [str(warning) for warning in record["warnings"]],
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def log_summary(log: Path) -> LogSummary:
    """What ``status`` shows: the last run's summary while it holds, else a replay."""
    found = read_summary(log)
    if found is not None:
        return found
    state = read_log(log)
    return LogSummary(state.total, state.transport, state.last_events, state.warnings)
