"""The send log read back: the lines the writer writes are read by a regular expression, anything
else by the checking parser; both must agree on every reader's state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hebdo_mail.deliver.sendlog import (
    _WRITTEN_LINE,
    LogError,
    LogWriter,
    read_log,
    recipient_events,
)
from hebdo_mail.vocabulary import FINAL_EVENTS, Event, Outcome, SmtpStage

REPLIES = [
    "2.0.0 Ok: queued as 4Xyz",
    'said "no" \\ twice\ttabbed',  # quotes, a backslash and a tab: escaped in the line
    "boîte pleine, réessayez",  # not ASCII: left to the parser
    "",
]


def parsed_states(path: Path) -> dict[str, tuple[str, int]]:
    """Each reader's (status, attempts), as the checking parser reads the log."""
    states: dict[str, tuple[str, int]] = {}
    for event in recipient_events(path, []):
        _, attempts = states.get(event.recipient, ("pending", 0))
        attempts += event.event == Event.ATTEMPT
        status = Outcome.UNKNOWN if event.event == Event.ATTEMPT else event.event
        states[event.recipient] = (str(status), attempts)
    return states


def test_every_line_the_writer_writes_reads_back_as_the_parser_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "issue.jsonl"
    writer = LogWriter(path)
    writer.write({"time": "2026-11-29T10:00:00.000+00:00", "event": "run", "total": 40,
                  "source": "file list.csv", "transport": "smtp://relay:25"})  # fmt: skip
    readers = [f"reader{i}@example.org" for i in range(30)]
    readers += ["josé@exemple.fr", '"odd\\"one"@example.org', "back\\slash@example.org"]
    for i, reader in enumerate(readers):
        for attempt in range(1 + i % 3):
            writer.event(reader, Event.ATTEMPT, edition="fr/html", message_id=f"<{i}@x>",
                         attempt=attempt + 1, relay="relay-b" if i % 2 else None)  # fmt: skip
            last = list(Event)[1 + (i + attempt) % 4]  # sent, deferred, failed or skipped
            if i % 7 == 6 and attempt == i % 3:
                continue  # no reply: unknown
            writer.event(reader, last, code=250 + i, reply=REPLIES[i % len(REPLIES)],
                         stage=list(SmtpStage)[i % 4] if last == Event.FAILED else None)  # fmt: skip
            if last in FINAL_EVENTS:
                break
    writer.close()
    lines = path.read_bytes().splitlines(keepends=True)
    fast = sum(1 for line in lines if line.isascii() and _WRITTEN_LINE.fullmatch(line))
    assert 0 < fast < len(lines) - 1  # both readings were used

    state = read_log(path)
    expected = parsed_states(path)
    assert {r: (state.status_of(r), state.attempts_of(r)) for r in readers} == expected
    assert (state.total, state.transport) == (40, "smtp://relay:25")
    assert sum(state.counts()[o] for o in Outcome) == len(readers)


@pytest.mark.parametrize(
    "line",
    [
        {"time": "t", "recipient": "a@example.org", "event": "delivered"},
        {"time": "t", "recipient": "a@example.org", "event": "sent", "extra": 1},
        {"time": "t", "recipient": "a@example.org", "event": "sent", "code": "many"},
        {"time": "t", "recipient": "a@example.org", "event": "failed", "stage": "helo"},
    ],
)
def test_a_line_that_is_not_a_record_is_an_error_naming_it(
    tmp_path: Path, line: dict[str, object]
) -> None:
    path = tmp_path / "issue.jsonl"
    writer = LogWriter(path)
    writer.event("b@example.org", Event.SENT, code=250)
    writer.close()
    with path.open("a") as handle:
        handle.write(json.dumps(line, separators=(",", ":")) + "\n")
    with pytest.raises(LogError, match="is not a send log record") as caught:
        read_log(path)
    assert caught.value.line == 2


def test_a_line_in_another_order_is_read_by_the_parser(tmp_path: Path) -> None:
    path = tmp_path / "issue.jsonl"
    path.write_text(
        '{"event":"attempt","recipient":"a@example.org","time":"t"}\n'
        '{"recipient":"a@example.org","time":"t","event":"sent","code":250}\n'
        '{"time":"t","recipient":"b@exa'  # cut short by a crash
    )
    state = read_log(path)
    assert (state.status_of("a@example.org"), state.attempts_of("a@example.org")) == ("sent", 1)
    assert state.status_of("b@example.org") == "pending"
    assert state.warnings and "incomplete line" in state.warnings[0]


@pytest.mark.parametrize(
    "line",
    [
        r'{"time":"\ud800","recipient":"a@example.org","event":"sent"}',
        r'{"time":"t","recipient":"a@example.org","event":"sent","reply":"\udc00x"}',
    ],
)
def test_a_line_the_parser_skips_is_skipped_whoever_reads_it(tmp_path: Path, line: str) -> None:
    """A lone surrogate escape is not JSON the parser takes: the line is skipped with a warning,
    never read as an event by the fast reading."""
    path = tmp_path / "issue.jsonl"
    path.write_text(line + "\n")
    state = read_log(path)
    assert state.status_of("a@example.org") == "pending"
    assert len(state.warnings) == 1
