"""The per-issue send log, ``logs/<issue-id>.jsonl``: the checkpoint that makes a send resumable.

One JSON object per line, appended and never rewritten. For each recipient the last event decides:
``sent``, ``failed`` and ``skipped`` are final; ``deferred`` is retried by the next run; an
``attempt`` with nothing after it is ``unknown``: the message data was handed to the relay but its
reply never came back (a crash, a lost connection after the final dot), so it may or may not have
been accepted. Lines are written with one ``write`` each as events happen and fsync'd in batches.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import re
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _quote
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..audience.keytable import KeyTable, KeyTableBuilder
from ..errors import HebdoError
from ..vocabulary import OUTCOMES, STATUS_KEYS, Event, Outcome, SmtpStage

if TYPE_CHECKING:  # bounce processing is the only reader of refusals: imported there
    from asyncio import AbstractEventLoop

    from ..audience.bounces import Refusal
    from .logrecords import RecipientEvent


class LogError(HebdoError):
    """The send log cannot be read or written."""


EVENTS = tuple(Event)
# The lines that give the run's total: a run's start, and its count once it read a CSV list
# through (a CSV file's lines were the total until then).
TOTAL_EVENTS = ("run", "counted")
ATTEMPT_STEP = len(EVENTS) + 1  # a recipient's state is attempts * ATTEMPT_STEP + its event


def _merge_states(before: int, after: int) -> int:
    """The attempts add up; the later event is the last one."""
    return before - before % ATTEMPT_STEP + after


@dataclass
class LogState:
    """What a replayed log says: each recipient's last event and attempts so far, kept in a
    compact table (audience/keytable.py) so that a log of a million readers replays in a few
    tens of megabytes."""

    recipients: KeyTable = field(default_factory=lambda: KeyTableBuilder().build())
    total: int = 0
    transport: str | None = None
    digest: dict[str, dict[str, str]] | None = None  # of the last run that recorded one
    warnings: list[str] = field(default_factory=list)
    last_events: dict[str, int] = field(default_factory=dict)  # event -> recipients it is last of

    @property
    def started(self) -> bool:
        """Whether a message may have reached someone (sent, or handed over with no reply)."""
        return bool(self.last_events.get(Event.SENT) or self.last_events.get(Event.ATTEMPT))

    def attempts_of(self, key: str) -> int:
        state = self.recipients.get(key)
        return state // ATTEMPT_STEP if state is not None else 0

    def status_of(self, key: str) -> str:
        """pending, sent, failed, skipped, deferred or unknown."""
        state = self.recipients.get(key)
        if state is None:
            return "pending"
        event = EVENTS[state % ATTEMPT_STEP]
        return Outcome.UNKNOWN if event == Event.ATTEMPT else event

    def counts(self) -> dict[str, int]:
        return count_outcomes(self.last_events, self.total)


def count_outcomes(last_events: dict[str, int], total: int) -> dict[str, int]:
    """The ``status`` counts, from how many readers each event is the last of."""
    counts = dict.fromkeys(STATUS_KEYS, 0)
    for event, number in last_events.items():
        counts[Outcome.UNKNOWN if event == Event.ATTEMPT else event] += number
    accounted = sum(counts[k] for k in OUTCOMES)
    counts["total"] = max(total, accounted)
    counts["pending"] = counts["total"] - accounted
    return counts


_stamp_second = -1
_stamp_prefix = ""


def now() -> str:
    """UTC time to the millisecond, ISO 8601; the date part is formatted once a second."""
    global _stamp_second, _stamp_prefix
    moment = time.time()
    second = int(moment)
    if second != _stamp_second:
        _stamp_second = second
        _stamp_prefix = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{_stamp_prefix}.{int((moment - second) * 1000):03d}+00:00"


# A recipient line exactly as LogWriter.event writes it, all ASCII: read back by one regular
# expression (about 1 µs a line, against 4 for the checking parser, which a resume of a half-sent
# million would spend seconds on). Anything else, an older writer's line or a damaged one, goes
# through the parser (logrecords.py), which alone decides what is an error.
_PLAIN = rb'[^"\\\x00-\x1f]*'  # a JSON string's characters up to an escape or its end
# The escapes the writer makes (json's encode_basestring): a quote, a backslash, a control
# character; never a surrogate, which the parser may refuse.
_STRING = rb'"' + _PLAIN + rb'(?:\\(?:["\\/bfnrt]|u00[0-9a-fA-F]{2})' + _PLAIN + rb')*"'
_INT = rb"-?(?:0|[1-9][0-9]{0,17})"
# The optional fields, in the order LogWriter.event writes them.
_FIELDS = [
    (b"edition", _STRING), (b"code", _INT), (b"reply", _STRING), (b"message_id", _STRING),
    (b"attempt", _INT), (b"relay", _STRING), (b"stage", b'"(?:%s)"' % "|".join(SmtpStage).encode()),
]  # fmt: skip
_WRITTEN_LINE = re.compile(
    rb'\{"time":%s,"recipient":"(%s)","event":"(%s)"' % (_STRING, _PLAIN, "|".join(Event).encode())
    + b"".join(b'(?:,"%s":%s)?' % field for field in _FIELDS)
    + rb"\}[ \t\r\n]*"
)


def _state_code(event: Event) -> int:
    """What a table of states adds for one event: an attempt counts, and the event is the last."""
    return ATTEMPT_STEP * (event == Event.ATTEMPT) + EVENTS.index(event)


_WRITTEN_CODES = {event.encode(): _state_code(event) for event in EVENTS}


def read_log(path: Path) -> LogState:
    """Replay the log. A line cut short by a crash is skipped with a warning; any other damage is
    an error naming the line, since guessing could mail someone twice."""
    state = LogState()
    if not path.exists():  # nothing sent yet: nothing to replay, nor to load for it
        return state
    table = KeyTableBuilder(_merge_states)
    written_line = _WRITTEN_LINE.fullmatch
    for number, raw in _lines(path):
        if raw.isascii() and (match := written_line(raw)):
            table.add(match[1].decode(), _WRITTEN_CODES[match[2]])
        else:
            _replay_parsed(raw, path, number, state, table)
    state.recipients = table.build()
    last = [0] * len(EVENTS)
    for value in state.recipients.values:
        last[value % ATTEMPT_STEP] += 1
    state.last_events = {
        event: number for event, number in zip(EVENTS, last, strict=True) if number
    }
    return state


def _replay_parsed(
    raw: bytes, path: Path, number: int, state: LogState, table: KeyTableBuilder
) -> None:
    """A line the fast reading does not take: a run's line, or one to check in full."""
    from .logrecords import CountedEvent, RunEvent, parse_record

    event = parse_record(raw, path, number, state.warnings)
    if event is None:
        return
    if isinstance(event, RunEvent):
        state.total, state.transport = event.total, event.transport
        state.digest = event.digest or state.digest
        return
    if isinstance(event, CountedEvent):
        state.total = event.total
        return
    table.add(event.recipient, _state_code(event.event))


def recipient_events(path: Path, warnings: list[str]) -> Iterator[RecipientEvent]:
    """Every recipient event of a log, in order (warnings as read_log gives them)."""
    from .logrecords import RecipientEvent, parse_record

    for number, raw in _lines(path):
        event = parse_record(raw, path, number, warnings)
        if isinstance(event, RecipientEvent):
            yield event


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """The log's lines that are not blank, with their numbers, read one at a time."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise LogError(f"cannot be read ({exc.strerror})", path=path) from None
    with handle:
        try:
            for number, raw in enumerate(handle, start=1):
                if raw.strip():
                    yield number, raw
        except OSError as exc:
            raise LogError(f"cannot be read ({exc.strerror})", path=path) from None


class RecipientStates(Protocol):
    """What the sender asks of a ledger about each recipient: a replayed file log, or the
    claims of a shared ledger."""

    def status_of(self, key: str) -> str: ...

    def attempts_of(self, key: str) -> int: ...


@dataclass(frozen=True)
class Standing:
    """A reader's status in the store (None: not in it) and the store's change marker, as a
    shared ledger read them in the round trip that committed the reader's attempt."""

    status: str | None
    marker: int


class EventLog(Protocol):
    """Where the sender records each event: the log file, the shared ledger, or nowhere for a
    dry run. ``event`` may return what to await before the message content goes out (an
    attempt recorded elsewhere than in this process's file); a log that ``confirms_standing``
    answers an attempt with the reader's ``Standing``, the last word on them, read after the
    attempt is recorded."""

    confirms_standing: bool

    def event(
        self,
        recipient: str,
        event: Event,
        *,
        edition: str | None = None,
        code: int | None = None,
        reply: str | None = None,
        message_id: str | None = None,
        attempt: int | None = None,
        stage: str | None = None,
        relay: str | None = None,
    ) -> Awaitable[Standing | None] | None: ...

    def sync(self) -> None: ...


class NullLog:
    """The dry run's log: it records nothing."""

    confirms_standing = False

    def event(self, recipient: str, event: Event, **details: object) -> None:
        return None

    def sync(self) -> None:
        return None


class LogWriter:
    """Appends records to the log.

    An ``attempt`` line is written at once, with whatever is pending before it: it must be in the
    file before the message content leaves. Outcome lines of the same event-loop turn are grouped
    into one write at the end of that turn, so a killed process loses at most the outcomes of
    replies it had just read (which then show as unknown, never as pending). Every ``sync_every``
    lines the file is fsync'd, in a worker thread when a loop is running.
    """

    confirms_standing = False

    def __init__(self, path: Path, *, sync_every: int = 256) -> None:
        self.path = path
        self.sync_every = sync_every
        self._unsynced = 0
        self._pending: list[str] = []
        self._flush_scheduled = False
        self._syncing = False
        self._loop: AbstractEventLoop | None = None
        self.failed: LogError | None = None  # once a write failed, nothing more is recorded
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            size = os.fstat(self.fd).st_size
            if size:
                with path.open("rb") as handle:
                    handle.seek(size - 1)
                    if handle.read(1) != b"\n":
                        # A crash cut the last line short: end it, so the next record starts clean.
                        os.write(self.fd, b"\n")
        except OSError as exc:
            raise LogError(
                f"cannot be written ({exc.strerror}); nothing was sent", path=path
            ) from None

    def write(self, record: dict[str, Any]) -> None:
        """A record of any shape, written at once."""
        self._pending.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.flush()

    def event(
        self,
        recipient: str,
        event: Event,
        *,
        edition: str | None = None,
        code: int | None = None,
        reply: str | None = None,
        message_id: str | None = None,
        attempt: int | None = None,
        stage: str | None = None,
        relay: str | None = None,
    ) -> None:
        # Written by hand rather than by json.dumps: this runs twice per message.
        line = f'{{"time":"{now()}","recipient":{_quote(recipient)},"event":"{event}"'
        if edition is not None:
            line += f',"edition":{_quote(edition)}'
        if code is not None:
            line += f',"code":{int(code)}'
        if reply is not None:
            line += f',"reply":{_quote(reply)}'
        if message_id is not None:
            line += f',"message_id":{_quote(message_id)}'
        if attempt is not None:
            line += f',"attempt":{int(attempt)}'
        if relay is not None:
            line += f',"relay":{_quote(relay)}'
        if stage is not None:
            line += f',"stage":"{stage}"'
        if self.failed is not None:
            raise self.failed  # an attempt that cannot be recorded must not be made
        self._pending.append(line + "}\n")
        self.counted(recipient, event)
        if event == Event.ATTEMPT:
            self.flush()
        elif not self._flush_scheduled:
            loop = self._running_loop()
            if loop is not None:
                loop.call_soon(self._flush_later)
                self._flush_scheduled = True
            else:  # no loop: write now
                self.flush()

    def _running_loop(self) -> AbstractEventLoop | None:
        self._loop = running_loop(self._loop)
        return self._loop

    def counted(self, recipient: str, event: Event) -> None:
        """What a writer that keeps counts does with an event written (logsummary.py)."""

    def _flush_later(self) -> None:
        with contextlib.suppress(LogError):  # kept in self.failed: the next event raises it
            self.flush()

    def flush(self) -> None:
        self._flush_scheduled = False
        if self.failed is not None:
            raise self.failed
        if not self._pending:
            return
        data = "".join(self._pending).encode()
        count = len(self._pending)
        self._pending = []
        try:
            _write_all(self.fd, data)
        except OSError as exc:
            self.failed = LogError(
                f"cannot be written ({_why(exc)}); the send stopped before any more mail went "
                "out: make room, then run the same command again to resume (a message whose "
                "reply could not be recorded is listed as unknown)",
                path=self.path,
            )
            raise self.failed from None
        self._unsynced += count
        if self._unsynced >= self.sync_every and not self._syncing:
            self._sync_soon()

    def _sync_soon(self) -> None:
        loop = self._running_loop()
        if loop is None:
            self.sync()
            return
        self._syncing = True
        self._unsynced = 0

        def done(_: object) -> None:
            self._syncing = False

        loop.run_in_executor(None, os.fsync, self.fd).add_done_callback(done)

    def sync(self) -> None:
        self.flush()
        os.fsync(self.fd)
        self._unsynced = 0

    def close(self) -> None:
        try:
            if self.failed is None:
                self.sync()
        finally:
            os.close(self.fd)


def running_loop(known: AbstractEventLoop | None) -> AbstractEventLoop | None:
    """``known`` while it is open, else the event loop running now (None outside one). For what
    runs once a message: Python 3.11's get_running_loop() asks the kernel for the process id."""
    if known is not None and not known.is_closed():
        return known
    import asyncio  # here, not at the top: `status` reads logs and has no use for it

    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is out: a write may take only part of the data (a disk filling
    up), and a line left half-written would be read as a torn line, its event lost."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def _why(exc: OSError) -> str:
    """The cause in words, for the causes an operator can act on."""
    reasons = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is used up",
        errno.EFBIG: "the file has reached the largest size this process may write",
    }
    return reasons.get(exc.errno or 0, exc.strerror or str(exc))


class SendLogs:
    """Every send log of a workspace, read for bounce processing (a ``SendRecord``)."""

    def __init__(self, logs_dir: Path) -> None:
        self.logs_dir = logs_dir

    def _events(self) -> Iterator[RecipientEvent]:
        if self.logs_dir.is_dir():
            for log in sorted(self.logs_dir.glob("*.jsonl")):
                yield from recipient_events(log, warnings=[])

    def addresses(self) -> Iterator[str]:
        return (event.recipient for event in self._events())

    def refusals(self) -> Iterator[Refusal]:
        from ..audience.bounces import Refusal

        for event in self._events():
            if event.event == Event.FAILED:
                yield Refusal(
                    address=event.recipient, code=event.code, stage=event.stage,
                    reply=event.reply or "", message_id=event.message_id,
                    day=dt.date.fromisoformat(event.time[:10]),
                )  # fmt: skip
