"""The send that stops itself: a relay refusing 30% of recipients, or deferring most of them,
stops the send within the window, with one line saying why; the rest stays pending and a later
run resumes it (a real send against a real SMTP server)."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path

from hebdo_mail.deliver.stoprule import StopLimits, StopRule
from hebdo_mail.deliver.transport import Reply
from hebdo_mail.vocabulary import SmtpStage

from .helpers import EXAMPLE_ISSUE, Result, append_settings
from .smtpserver import Recorder, SmtpServer

LIST_SIZE = 1000


def write_list(ws: Path, size: int = LIST_SIZE) -> None:
    rows = [f"r{n:04d}@example.org" for n in range(size)]
    (ws / "list.csv").write_text("email\n" + "\n".join(rows) + "\n", encoding="utf-8")


def refuses_30_percent(stage: str, rcpt: str, count: int) -> str | None:
    """Three recipients in ten, spread through the list, refused as a block list would."""
    if stage == "rcpt" and int(rcpt[1:5]) % 10 in (2, 5, 8):
        return "550 5.7.1 Service unavailable; client host [192.0.2.9] blocked"
    return None


def status(cli: Callable[..., Result], ws: Path) -> dict[str, int]:
    counts: dict[str, int] = json.loads(cli("status", EXAMPLE_ISSUE, "--json", cwd=ws).out)
    return counts


def send(cli: Callable[..., Result], ws: Path, server: SmtpServer, *args: str) -> Result:
    return cli(
        "send", EXAMPLE_ISSUE, "--subscribers", "list.csv", "--smtp", server.url, "--yes", *args,
        cwd=ws,
    )  # fmt: skip


def test_a_relay_refusing_30_percent_stops_the_send_within_the_window(
    ws: Path, cli: Callable[..., Result]
) -> None:
    write_list(ws)
    recorder = Recorder(hook=refuses_30_percent)
    with SmtpServer(recorder) as server:
        first = send(cli, ws, server)
        counts = status(cli, ws)
        assert first.code == 75, first.err
        stop_lines = [line for line in first.err.splitlines() if "stopped early" in line]
        assert len(stop_lines) == 1
        line = stop_lines[0]
        assert re.search(r"the relay refused (\d+) of the last (\d+) messages, \d+% against", line)
        assert "the 10% allowed" in line
        assert "most common reply: 550 5.7.1 Service unavailable" in line
        assert "--no-stop" in line and "run the same command again to resume" in line
        replied = counts["sent"] + counts["failed"]
        assert replied <= 200  # within the window, messages in flight included
        assert counts["failed"] > 20 and counts["pending"] == LIST_SIZE - replied
        assert counts["unknown"] == counts["deferred"] == 0
        assert len(recorder.received) == counts["sent"]

        # The relay is fixed: the next run resumes where it stopped, refusals not retried.
        recorder.hook = None
        again = send(cli, ws, server)
    assert again.code == 0, again.err
    final = status(cli, ws)
    assert final["pending"] == 0 and final["failed"] == counts["failed"]
    assert final["sent"] == LIST_SIZE - counts["failed"] == len(recorder.received)
    assert len({r.rcpt for r in recorder.received}) == len(recorder.received)  # nobody twice


def test_no_stop_sends_regardless_and_deferrals_have_their_own_limit(
    ws: Path, cli: Callable[..., Result]
) -> None:
    write_list(ws, 300)
    append_settings(ws, '[send]\nattempts = 1\nstop_deferred = "50%"\n')
    with SmtpServer(Recorder(hook=refuses_30_percent)) as server:
        regardless = send(cli, ws, server, "--no-stop")
    assert regardless.code == 0, regardless.err
    assert status(cli, ws)["failed"] == 90 and "stopped early" not in regardless.err

    (ws / "logs" / f"{EXAMPLE_ISSUE}.jsonl").unlink()
    busy = Recorder(hook=lambda stage, rcpt, n: "451 4.3.2 Too busy" if stage == "rcpt" else None)
    with SmtpServer(busy) as server:
        deferred = send(cli, ws, server)
    counts = status(cli, ws)
    assert deferred.code == 75 and "the relay deferred 101 of the last" in deferred.err
    assert counts["deferred"] <= 200 and counts["pending"] == 300 - counts["deferred"]


SERIAL = itertools.count()


def reply(code: int) -> Reply:
    address = f"<r{next(SERIAL)}@example.org>"  # relays name the recipient: each reply differs
    return Reply(code, f"5.1.1 {address}: no such user" if code >= 500 else "ok", SmtpStage.RCPT)


def test_the_rule_counts_the_last_window_only() -> None:
    rule = StopRule(StopLimits(window=200, failed=0.10))
    # A few bad addresses early in a list never stop it: 20 of 200 is not more than 10%.
    assert not any(rule.note(reply(550)) for _ in range(20))
    assert not any(rule.note(reply(250)) for _ in range(180))
    # Older refusals leave the window as new replies come.
    assert not any(rule.note(reply(250)) for _ in range(20))
    assert not any(rule.note(reply(550)) for _ in range(20))
    reason = rule.note(reply(550))
    assert reason is not None and reason.startswith("the relay refused 21 of the last 200")
    assert "most common reply: 550 5.1.1 <address>: no such user;" in reason
    unknown = Reply(None, "connection lost", SmtpStage.CONTENT, content_sent=True)
    assert StopRule(StopLimits(window=10, failed=0.1)).note(unknown) is None
