"""A pool of relays ([[smtp.relays]]): the mail spread by weight, a relay that cannot be reached
or keeps answering 421 set aside while the others take its share, and the log and the report
saying which relay took each message. Real SMTP servers (aiosmtpd) on free ports."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from hebdo_mail.deliver.sendlog import read_log

from .helpers import EXAMPLE_ISSUE, Result, append_settings, log_file
from .pgserver import free_port
from .smtpserver import Recorder, SmtpServer

READERS = [f"reader{i:03d}@example.org" for i in range(160)]


@pytest.fixture
def listed(ws: Path) -> Path:
    (ws / "list.csv").write_text("email\n" + "\n".join(READERS) + "\n")
    append_settings(ws, "[send]\nretry_delay = 0.01\n")
    return ws


def relays(ws: Path, *entries: tuple[str, int, float]) -> None:
    text = "[smtp]\ntimeout = 5\n" + "".join(
        f'[[smtp.relays]]\nurl = "{url}"\nconcurrency = {concurrency}\nweight = {weight}\n'
        for url, concurrency, weight in entries
    )
    append_settings(ws, text)


def send(cli: Callable[..., Result], ws: Path) -> Result:
    return cli("send", EXAMPLE_ISSUE, "--subscribers", "list.csv", "--yes", cwd=ws)


def relay_of_each(ws: Path) -> dict[str, str]:
    lines = [json.loads(line) for line in log_file(ws).read_text().splitlines()]
    return {line["recipient"]: line["relay"] for line in lines if line["event"] == "sent"}


@pytest.mark.parametrize(("weights", "share"), [((1.0, 1.0), 0.5), ((3.0, 1.0), 0.75)])
def test_the_mail_is_spread_by_weight_and_the_log_names_each_relay(
    listed: Path, cli: Callable[..., Result], weights: tuple[float, float], share: float
) -> None:
    first, second = Recorder(delay=0.002), Recorder(delay=0.002)
    with SmtpServer(first) as one, SmtpServer(second) as two:
        relays(listed, (one.url, 2, weights[0]), (two.url, 2, weights[1]))
        result = send(cli, listed)
    assert result.code == 0, result.err
    got = sorted([r.rcpt for r in first.received] + [r.rcpt for r in second.received])
    assert got == READERS  # each reader once, through one relay or the other
    assert abs(len(first.received) / len(READERS) - share) < 0.1, len(first.received)
    carried = relay_of_each(listed)
    assert sorted(carried) == READERS
    assert {r.rcpt for r in first.received} == {k for k, v in carried.items() if v == one.url}
    report = json.loads(cli("report", EXAMPLE_ISSUE, "--json", cwd=listed).out)
    by_relay = {entry["relay"]: entry["sent"] for entry in report["relays"]}
    assert by_relay == {one.url: len(first.received), two.url: len(second.received)}


def test_a_relay_that_cannot_be_reached_leaves_everything_to_the_other(
    listed: Path, cli: Callable[..., Result]
) -> None:
    down = f"smtp://127.0.0.1:{free_port()}"
    recorder = Recorder()
    with SmtpServer(recorder) as up:
        relays(listed, (down, 2, 1.0), (up.url, 2, 1.0))
        result = send(cli, listed)
    assert result.code == 0, result.err
    assert sorted(r.rcpt for r in recorder.received) == READERS
    assert f"relay {down} cannot be reached" in result.err and "set aside" in result.err
    assert set(relay_of_each(listed).values()) == {up.url}
    assert read_log(log_file(listed)).counts()["pending"] == 0


def test_a_relay_answering_421_again_and_again_is_set_aside(
    listed: Path, cli: Callable[..., Result]
) -> None:
    closing = Recorder(
        hook=lambda stage, rcpt, n: "421 4.3.2 too busy" if stage == "mail" else None
    )
    steady = Recorder()
    with SmtpServer(closing) as busy, SmtpServer(steady) as fine:
        relays(listed, (busy.url, 1, 1.0), (fine.url, 2, 1.0))
        result = send(cli, listed)
    assert result.code == 0, result.err
    assert "answered 421 3 times in a row" in result.err
    assert closing.received == [] and sorted(r.rcpt for r in steady.received) == READERS


def test_when_no_relay_can_be_reached_the_send_stops_with_one_line(
    listed: Path, cli: Callable[..., Result]
) -> None:
    ports = [free_port(), free_port()]
    relays(listed, *((f"smtp://127.0.0.1:{port}", 1, 1.0) for port in ports))
    result = send(cli, listed)
    assert result.code == 1
    [line] = [ln for ln in result.err.strip().splitlines() if ln.startswith("hebdo-mail: error")]
    assert "no relay could be reached" in line and all(str(port) in line for port in ports)
    assert "run the same command again to resume" in line
    assert read_log(log_file(listed)).counts()["sent"] == 0


def test_a_url_and_relays_together_are_refused(ws: Path, cli: Callable[..., Result]) -> None:
    append_settings(
        ws, '[smtp]\nurl = "smtp://127.0.0.1:25"\n[[smtp.relays]]\nurl = "smtp://127.0.0.1:26"\n'
    )
    result = cli("send", EXAMPLE_ISSUE, "--dry-run", cwd=ws)
    assert result.code == 1 and "give either url or [[smtp.relays]], not both" in result.err
