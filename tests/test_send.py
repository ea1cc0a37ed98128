"""Delivery against a real SMTP server (aiosmtpd on a free port) and through the outbox."""

from __future__ import annotations

import email
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from email import policy
from email.headerregistry import Address
from pathlib import Path

import pytest

from hebdo_mail.deliver.logsummary import summary_path
from hebdo_mail.deliver.sendlog import read_log
from hebdo_mail.workspace import load_workspace

from .helpers import (
    BOTH_STORES,
    EXAMPLE_ISSUE,
    SQLITE_ONLY,
    Result,
    log_file,
    log_statuses,
    nothing_logged,
    run_process,
    store_of,
    wait_until,
)
from .smtpserver import Recorder, SmtpServer

pytestmark = BOTH_STORES

FAST_RETRIES = "\n[send]\nretry_delay = 0.01\nattempts = 3\n"


@pytest.fixture
def ws(ws: Path) -> Path:
    """The example workspace, its secret, and quick retries."""
    with (ws / "hebdo.toml").open("a") as handle:
        handle.write(FAST_RETRIES)
    return ws


def write_list(path: Path, rows: list[tuple[str, str, str, str]], extra: str = "") -> Path:
    lines = ["email,name,lang,format" + ("," + extra if extra else "")]
    for row in rows:
        lines.append(",".join('"' + cell.replace('"', '""') + '"' for cell in row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def many(n: int) -> list[tuple[str, str, str, str]]:
    return [(f"reader{i:03d}@example.org", f"Reader {i}", "fr", "html") for i in range(n)]


def send(cli: Callable[..., Result], ws: Path, *args: str) -> Result:
    return cli("send", EXAMPLE_ISSUE, *args, cwd=ws)


def start_send(ws: Path, *args: str) -> subprocess.Popen[str]:
    """``send`` as a separate process, to be interrupted or killed while it works."""
    return subprocess.Popen(
        [sys.executable, "-m", "hebdo_mail", "send", EXAMPLE_ISSUE, *args],
        cwd=ws,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def status(cli: Callable[..., Result], ws: Path) -> dict[str, int]:
    result = cli("status", EXAMPLE_ISSUE, "--json", cwd=ws)
    assert result.code == 0, result.err
    counts: dict[str, int] = json.loads(result.out)
    if load_workspace(ws, explicit=True).store_url is None:
        # What status read from the summary the last run left is what a replay of the log says.
        assert counts == read_log(ws / "logs" / f"{EXAMPLE_ISSUE}.jsonl").counts()
    return counts


def events(ws: Path) -> list[dict[str, object]]:
    lines = log_file(ws).read_text().splitlines()
    return [json.loads(line) for line in lines]


NAMES = {
    "helene@example.org": "Hélène Lefèvre",
    "comma@example.org": "Kowalski, Anna",
    "quote@example.org": 'Jack "the reader" O\'Connor',
    "emoji@example.org": "Zoé 📰 Nguyễn",
    "inject@example.org": "{{ 7*7 }} <b>x</b>",
}


def test_each_recipient_gets_one_well_formed_personalised_message(
    ws: Path, cli: Callable[..., Result]
) -> None:
    footer = ws / "templates" / "partials" / "footer_email.html"
    footer.parent.mkdir(parents=True)
    footer.write_text(
        '<p>Pour {{ subscriber.name }} ({{ subscriber.city }}) · <a href="{{ unsubscribe_url }}">Se désabonner</a></p>\n'
    )
    text_footer = ws / "templates" / "email.txt"
    text_footer.write_text(
        (Path(__file__).parents[1] / "templates" / "email.txt").read_text()
        + "Pour {{ subscriber.name }} ({{ subscriber.city }})\n"
    )
    rows = [(addr, name, "fr", "html") for addr, name in NAMES.items()]
    listing = write_list(ws / "list.csv", [(*r[:4],) for r in rows], extra="city")
    listing.write_text(
        listing.read_text().replace('"html"\n', '"html","Liège"\n'), encoding="utf-8"
    )
    recorder = Recorder()
    with SmtpServer(recorder) as server:
        result = send(cli, ws, "--subscribers", "list.csv", "--smtp", server.url, "--yes")
    assert result.code == 0, result.err
    assert result.out.startswith("5 sent, 0 deferred, 0 failed, 0 skipped, 0 unknown; log: ")

    received = recorder.by_recipient()
    assert sorted(received) == sorted(NAMES)
    message_ids = set()
    for address, copies in received.items():
        assert len(copies) == 1
        copy = copies[0]
        assert copy.mail_from == "hebdo@example.org"
        message = copy.message
        for header in (
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "MIME-Version",
            "Reply-To",
            "List-Id",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
        ):
            assert message[header], header
        to = message["To"].addresses[0]
        assert isinstance(to, Address)
        assert (to.display_name, to.addr_spec) == (NAMES[address], address)
        assert str(message["Subject"]) == "OTAN Hebdo n°50 — 15 décembre 2006"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        unsubscribe = str(message["List-Unsubscribe"])
        assert (
            unsubscribe.startswith("<https://hebdo.example.org/unsubscribe/")
            and ", <mailto:hebdo@example.org?subject=unsubscribe%20" in unsubscribe
        )
        assert str(message["Message-ID"]).endswith("@example.org>")
        message_ids.add(str(message["Message-ID"]))
        assert message.get_content_type() == "multipart/alternative"
        text_part, html_part = message.get_payload()
        assert (
            text_part.get_content_type() == "text/plain"
            and html_part.get_content_type() == "text/html"
        )
        assert {p["Content-Transfer-Encoding"] for p in (text_part, html_part)} == {
            "quoted-printable"
        }
        text = text_part.get_content()
        html = html_part.get_content()
        assert f"Pour {NAMES[address]} (Liège)" in text
        token_url = unsubscribe.split(">")[0][1:]
        assert token_url in html and token_url in text
        assert all(len(line) <= 998 for line in copy.data.split(b"\r\n"))
    assert len(message_ids) == 5

    injected = received["inject@example.org"][0].message.get_payload()
    assert "Pour {{ 7*7 }} <b>x</b> (Liège)" in injected[0].get_content()
    assert "Pour {{ 7*7 }} &lt;b&gt;x&lt;/b&gt; (Liège)" in injected[1].get_content()
    assert "49" not in injected[0].get_content().split("Pour ")[-1]


def test_text_format_readers_get_a_single_text_part(ws: Path, cli: Callable[..., Result]) -> None:
    write_list(ws / "list.csv", [("plain@example.org", "Marc", "fr", "text")])
    recorder = Recorder()
    with SmtpServer(recorder) as server:
        assert send(cli, ws, "--subscribers", "list.csv", "--smtp", server.url, "--yes").code == 0
    message = recorder.received[0].message
    assert message.get_content_type() == "text/plain" and not message.is_multipart()
    assert events(ws)[-1]["edition"] == "fr/text"


def test_outbox_default_writes_parseable_eml_and_a_rerun_sends_nothing(
    ws: Path, cli: Callable[..., Result]
) -> None:
    result = send(cli, ws, "--subscribers", "subscribers.example.csv")
    assert result.code == 0, result.err
    files = sorted((ws / "outbox" / EXAMPLE_ISSUE / "new").glob("*.eml"))
    assert len(files) == 5
    delivered = {}
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        delivered[message["Delivered-To"]] = message["Subject"]
        assert message["Return-Path"] == "<hebdo@example.org>"
    # French readers get the French edition, English readers the English one.
    assert delivered["helene.lefevre@example.org"] == "OTAN Hebdo n°50 — 15 décembre 2006"
    assert delivered["j.oconnor@example.org"] == "NATO Update No. 50 — December 15, 2006"
    assert len(delivered) == 5
    again = send(cli, ws, "--subscribers", "subscribers.example.csv")
    assert again.out.startswith(
        "0 sent, 0 deferred, 0 failed, 0 skipped, 0 unknown (5 already done before)"
    )
    assert len(list((ws / "outbox" / EXAMPLE_ISSUE / "new").glob("*.eml"))) == 5
    assert status(cli, ws) == {
        "total": 5,
        "sent": 5,
        "deferred": 0,
        "failed": 0,
        "skipped": 0,
        "unknown": 0,
        "pending": 0,
    }


def test_4xx_is_retried_within_the_run(ws: Path, cli: Callable[..., Result]) -> None:
    write_list(ws / "list.csv", many(3))
    recorder = Recorder(
        hook=lambda stage, rcpt, n: (
            "451 4.7.1 greylisted, try again"
            if stage == "rcpt" and rcpt == "reader001@example.org" and n == 1
            else None
        )
    )
    with SmtpServer(recorder) as server:
        result = send(cli, ws, "--subscribers", "list.csv", "--smtp", server.url, "--yes")
    assert result.out.startswith("3 sent, 0 deferred")
    assert len(recorder.received) == 3
    trail = [
        (e["event"], e.get("code"))
        for e in events(ws)
        if e.get("recipient") == "reader001@example.org"
    ]
    assert trail == [("deferred", 451), ("attempt", None), ("sent", 250)]


def test_a_lasting_4xx_is_left_deferred_for_the_next_run(
    ws: Path, cli: Callable[..., Result]
) -> None:
    write_list(ws / "list.csv", many(3))
    refusing = True
    recorder = Recorder(
        hook=lambda stage, rcpt, n: (
            "452 4.2.2 mailbox full"
            if refusing and stage == "data" and rcpt == "reader002@example.org"
            else None
        )
    )
    with SmtpServer(recorder) as server:
        first = send(cli, ws, "--subscribers", "list.csv", "--smtp", server.url, "--yes")
        assert first.code == 75 and first.out.startswith("2 sent, 1 deferred")
        assert "run the same command again" in first.err
        assert status(cli, ws)["deferred"] == 1
        refusing = False
        second = send(cli, ws, "--subscribers", "list.csv", "--smtp", server.url, "--yes")
    assert second.code == 0 and second.out.startswith(
        "1 sent, 0 deferred, 0 failed, 0 skipped, 0 unknown (2 already done before)"
    )
    assert {r: len(c) for r, c in recorder.by_recipient().items()} == {r[0]: 1 for r in many(3)}
    attempts = [
        e["attempt"]
        for e in events(ws)
        if e.get("recipient") == "reader002@example.org" and e["event"] == "deferred"
    ]
    assert attempts == [1, 2, 3]


def test_5xx_fails_once_and_never_stops_the_others(ws: Path, cli: Callable[..., Result]) -> None:
    cli("subscribers", "import", "subscribers.example.csv", cwd=ws)
    recorder = Recorder(
        hook=lambda stage, rcpt, n: (
            "550 5.1.1 no such user" if stage == "rcpt" and rcpt.startswith("marc") else None
        )
    )
    with SmtpServer(recorder) as server:
        first = send(cli, ws, "--smtp", server.url, "--yes")
        again = send(cli, ws, "--smtp", server.url, "--yes")
    assert first.code == 0 and first.out.startswith("4 sent, 0 deferred, 1 failed")
    assert again.out.startswith(
        "0 sent, 0 deferred, 0 failed, 0 skipped, 0 unknown (5 already done before)"
    )
    assert recorder.seen[("rcpt", "marc.dubois@example.net")] == 1
    failed = [e for e in events(ws) if e["event"] == "failed"]
    assert failed[0]["code"] == 550 and failed[0]["reply"] == "5.1.1 no such user"
    with store_of(ws) as store:
        marc = store.get("marc.dubois@example.net")
        assert marc is not None and marc.bounce_score == 1


def test_a_reply_with_control_characters_is_kept_without_them(
    ws: Path, cli: Callable[..., Result]
) -> None:
    """A relay's odd bytes must not stop a send: PostgreSQL refuses NUL in text, and a terminal
    would obey an escape sequence shown by `report`."""
    cli("subscribers", "import", "subscribers.example.csv", cwd=ws)
    recorder = Recorder(
        hook=lambda stage, rcpt, n: (
            "550 5.1.1 no\x00 such\x1b[2J user" if rcpt.startswith("marc") else None
        )
    )
    with SmtpServer(recorder) as server:
        first = send(cli, ws, "--smtp", server.url, "--yes")
    assert first.code == 0 and first.out.startswith("4 sent, 0 deferred, 1 failed"), first
    failed = [e for e in events(ws) if e["event"] == "failed"]
    assert failed[0]["reply"] == "5.1.1 no such[2J user"
    with store_of(ws) as store:
        marc = store.get("marc.dubois@example.net")
        assert marc is not None and marc.bounce_score == 1


def test_421_and_a_drop_before_data_reconnect_and_deliver(
    ws: Path, cli: Callable[..., Result]
) -> None:
    write_list(ws / "list.csv", many(6))

    def hook(stage: str, rcpt: str, n: int) -> object:
        if stage == "rcpt" and rcpt == "reader001@example.org" and n == 1:
            return "421 4.3.2 shutting down"
        if stage == "rcpt" and rcpt == "reader004@example.org" and n == 1:
            return "drop"
        return None

    recorder = Recorder(hook=hook)
    with SmtpServer(recorder) as server:
        result = send(
            cli,
            ws,
            "--subscribers",
            "list.csv",
            "--smtp",
            server.url,
            "--yes",
            "--concurrency",
            "2",
        )
    assert result.code == 0, result.err
    assert result.out.startswith("6 sent, 0 deferred")
    assert {r: len(c) for r, c in recorder.by_recipient().items()} == {r[0]: 1 for r in many(6)}


def test_a_reply_lost_after_the_final_dot_is_unknown_until_resent_on_request(
    ws: Path, cli: Callable[..., Result]
) -> None:
    write_list(ws / "list.csv", many(4))
    recorder = Recorder(
        hook=lambda stage, rcpt, n: (
            "drop" if stage == "data" and rcpt == "reader002@example.org" and n == 1 else None
        )
    )
    with SmtpServer(recorder) as server:
        first = send(cli, ws, "--subscribers", "list.csv", "--smtp", server.url, "--yes")
        assert first.code == 75 and first.out.startswith(
            "3 sent, 0 deferred, 0 failed, 0 skipped, 1 unknown"
        )
        assert "--resend-unknown" in first.err
        assert status(cli, ws) == {
            "total": 4,
            "sent": 3,
            "deferred": 0,
            "failed": 0,
            "skipped": 0,
            "unknown": 1,
            "pending": 0,
        }
        plain = send(cli, ws, "--subscribers", "list.csv", "--smtp", server.url, "--yes")
        assert plain.out.startswith("0 sent") and len(recorder.received) == 3
        resent = send(
            cli, ws, "--subscribers", "list.csv", "--smtp", server.url, "--yes", "--resend-unknown"
        )
    assert resent.code == 0 and resent.out.startswith("1 sent")
    assert {r: len(c) for r, c in recorder.by_recipient().items()} == {r[0]: 1 for r in many(4)}


def test_an_unreachable_relay_stops_with_one_line_and_everything_resumable(
    ws: Path, cli: Callable[..., Result]
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = send(
        cli,
        ws,
        "--subscribers",
        "subscribers.example.csv",
        "--smtp",
        f"smtp://127.0.0.1:{port}",
        "--yes",
    )
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"hebdo-mail: error: 127.0.0.1:{port}: cannot connect")
    assert "run the same command again to resume" in lines[0]
    assert status(cli, ws)["pending"] == 5


def test_sending_through_a_relay_asks_first(ws: Path) -> None:
    recorder = Recorder()
    with SmtpServer(recorder) as server:
        result = run_process(
            "send",
            EXAMPLE_ISSUE,
            "--subscribers",
            "subscribers.example.csv",
            "--smtp",
            server.url,
            cwd=ws,
        )
    assert result.code == 1
    assert result.err.strip() == (
        f"hebdo-mail: error: refusing to mail 5 recipients through smtp://127.0.0.1:{server.port} "
        "without confirmation; run it on a terminal or pass --yes"
    )
    assert recorder.received == [] and nothing_logged(ws)


def test_dry_run_limit_and_test_copy(ws: Path, cli: Callable[..., Result]) -> None:
    dry = send(cli, ws, "--subscribers", "subscribers.example.csv", "--dry-run")
    assert dry.out.startswith("dry run: 5 messages rendered")
    assert nothing_logged(ws) and not (ws / "outbox").exists()

    recorder = Recorder()
    with SmtpServer(recorder) as server:
        test = send(
            cli,
            ws,
            "--subscribers",
            "subscribers.example.csv",
            "--smtp",
            server.url,
            "--test",
            "editor@example.org",
        )
        assert test.code == 0 and test.out.startswith(
            "sent a test copy of 2006-50 (fr/html) to editor@example.org"
        )
        assert [r.rcpt for r in recorder.received] == ["editor@example.org"]
        assert nothing_logged(ws)
        limited = send(
            cli,
            ws,
            "--subscribers",
            "subscribers.example.csv",
            "--smtp",
            server.url,
            "--yes",
            "--limit",
            "2",
        )
        assert limited.code == 75 and limited.out.startswith(
            "2 sent, 0 deferred, 0 failed, 0 skipped, 0 unknown (3 not reached)"
        )
        rest = send(
            cli, ws, "--subscribers", "subscribers.example.csv", "--smtp", server.url, "--yes"
        )
        assert rest.out.startswith("3 sent")
    assert len(recorder.received) == 6


def test_a_bad_row_is_reported_and_not_mailed_the_others_are_and_its_fix_is_mailed_alone(
    ws: Path, cli: Callable[..., Result], store_backend: str
) -> None:
    rows = [f"reader{i}@example.org,Reader {i}" for i in range(6)]
    rows[3] = 'bad@example.org,"two\nlines\tand a tab"'  # a control character
    rows.insert(1, "READER0@example.org,Again")  # a repeated address: mailed once, not bad
    # The bad row starts at line 6 (header, reader0, READER0, reader1, reader2).
    (ws / "list.csv").write_text("email,name\n" + "\n".join(rows) + "\n", encoding="utf-8")
    result = send(cli, ws, "--subscribers", "list.csv")
    assert result.code == 65, result.err
    assert result.out.startswith("5 sent, 0 deferred")
    assert "list.csv:6: not mailed: bad@example.org: the name holds a control" in result.err
    assert "1 bad row of list.csv not mailed: fix it" in result.err
    # From the file ledger, the reader on the bad row is still to be mailed (the shared ledger
    # queues readers by address, which a bad row lacks).
    assert status(cli, ws)["pending"] == (store_backend == "sqlite")
    (ws / "list.csv").write_text(
        (ws / "list.csv").read_text(encoding="utf-8").replace("two\nlines\tand a tab", "Fixed"),
        encoding="utf-8",
    )
    again = send(cli, ws, "--subscribers", "list.csv")
    assert again.code == 0, again.err
    assert again.out.startswith("1 sent, 0 deferred, 0 failed, 0 skipped, 0 unknown (5 already")
    assert status(cli, ws)["sent"] == 6 and status(cli, ws)["pending"] == 0
    if store_backend == "sqlite":
        sent = [e["recipient"] for e in events(ws) if e.get("event") == "sent"]
        assert sent[-1] == "bad@example.org" and len(sent) == len(set(sent)) == 6


def test_a_list_the_send_cannot_read_on_stops_it_where_it_is_and_resumes_after_the_fix(
    ws: Path, cli: Callable[..., Result], store_backend: str
) -> None:
    """From the file ledger the send reads the list as it goes, so it stops where the file
    breaks; the shared ledger queues every reader first, so nothing goes."""
    good = [f"reader{i}@example.org,Reader {i}" for i in range(300)]
    broken = [*good[:200], 'x@example.org,"Unclosed', *good[200:]]  # the row at line 202
    (ws / "list.csv").write_text("email,name\n" + "\n".join(broken) + "\n", encoding="utf-8")
    result = send(cli, ws, "--subscribers", "list.csv")
    assert result.code == 1
    assert result.err.startswith("hebdo-mail: error: list.csv:202: is not valid CSV"), result.err
    assert len(result.err.strip().splitlines()) == 1
    sent = 0
    if store_backend == "sqlite":
        assert "run the same command again to resume" in result.err
        mailed = [e["recipient"] for e in events(ws) if e.get("event") == "sent"]
        assert mailed == [f"reader{i}@example.org" for i in range(len(mailed))]
        sent = len(mailed)
        assert 0 < sent <= 200 and status(cli, ws)["sent"] == sent
    (ws / "list.csv").write_text("email,name\n" + "\n".join(good) + "\n", encoding="utf-8")
    again = send(cli, ws, "--subscribers", "list.csv")
    assert again.code == 0, again.err
    assert again.out.startswith(f"{300 - sent} sent")
    counts = status(cli, ws)
    assert (counts["total"], counts["sent"], counts["pending"]) == (300, 300, 0)


def test_store_marks_win_over_the_csv_and_are_logged_skipped(
    ws: Path, cli: Callable[..., Result]
) -> None:
    cli("subscribers", "import", "subscribers.example.csv", cwd=ws)
    cli("subscribers", "unsubscribe", "zoe.nguyen@example.fr", cwd=ws)
    result = send(cli, ws, "--subscribers", "subscribers.example.csv")
    assert result.out.startswith("4 sent, 0 deferred, 0 failed, 1 skipped")
    skipped = [e for e in events(ws) if e["event"] == "skipped"]
    assert (
        skipped[0]["recipient"] == "zoe.nguyen@example.fr" and skipped[0]["reply"] == "unsubscribed"
    )


def test_an_unsubscribe_during_the_send_is_honoured(ws: Path, cli: Callable[..., Result]) -> None:
    for address, *_ in many(30):
        cli("subscribers", "add", address, cwd=ws)
    recorder = Recorder(delay=0.05)
    with SmtpServer(recorder) as server:
        process = start_send(ws, "--smtp", server.url, "--yes", "--concurrency", "1")
        wait_until(lambda: len(recorder.received) >= 3, what="3 messages at the relay")
        with store_of(ws) as store:
            store.set_status("reader029@example.org", "unsubscribed")
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "reader029@example.org" not in {r.rcpt for r in recorder.received}
    assert out.startswith("29 sent, 0 deferred, 0 failed, 1 skipped")


def test_a_killed_send_resumes_without_losing_or_doubling(
    ws: Path, cli: Callable[..., Result]
) -> None:
    write_list(ws / "list.csv", many(40))
    recorder = Recorder(delay=0.02)
    with SmtpServer(recorder) as server:
        process = start_send(
            ws, "--subscribers", "list.csv", "--smtp", server.url, "--yes", "--concurrency", "4"
        )
        wait_until(lambda: len(recorder.received) >= 12, what="12 messages at the relay")
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)
        time.sleep(0.2)  # let the server finish what it was handed
        after_kill = status(cli, ws)
        assert after_kill["unknown"] <= 4
        unknown = {k for k, s in log_statuses(log_file(ws)).items() if s == "unknown"}
        resumed = send(cli, ws, "--subscribers", "list.csv", "--smtp", server.url, "--yes")
        assert resumed.code == (75 if unknown else 0), resumed.err
        final = send(
            cli, ws, "--subscribers", "list.csv", "--smtp", server.url, "--yes", "--resend-unknown"
        )
        assert final.code == 0
    counts = {r: len(c) for r, c in recorder.by_recipient().items()}
    assert set(counts) == {r[0] for r in many(40)}, "no recipient lost"
    doubled = {r for r, n in counts.items() if n > 1}
    assert doubled <= unknown and all(n <= 2 for n in counts.values())


@SQLITE_ONLY  # the file log's own: the shared ledger's status is one query
def test_status_reads_the_summary_a_run_leaves_while_the_log_is_as_it_left_it(
    ws: Path, cli: Callable[..., Result]
) -> None:
    write_list(ws / "list.csv", many(5))
    recorder = Recorder(
        hook=lambda stage, rcpt, n: (
            "550 5.1.1 no such user"
            if stage == "rcpt" and rcpt == "reader003@example.org"
            else None
        )
    )
    with SmtpServer(recorder) as server:
        send(cli, ws, "--subscribers", "list.csv", "--smtp", server.url, "--yes", "--limit", "3")
        send(cli, ws, "--subscribers", "list.csv", "--smtp", server.url, "--yes")
    log = ws / "logs" / f"{EXAMPLE_ISSUE}.jsonl"
    left = json.loads(summary_path(log).read_text())
    assert left["last_events"] == {"sent": 4, "failed": 1} and left["total"] == 5
    assert status(cli, ws) == {
        "total": 5, "sent": 4, "deferred": 0, "failed": 1, "skipped": 0, "unknown": 0,
        "pending": 0,
    }  # fmt: skip
    # Read, not recomputed: a summary that says otherwise (the log untouched) is what is shown...
    left["last_events"] = {"sent": 5}
    summary_path(log).write_text(json.dumps(left))
    os.utime(log, ns=(left["log"][2], left["log"][2]))
    shown = json.loads(cli("status", EXAMPLE_ISSUE, "--json", cwd=ws).out)
    assert (shown["sent"], shown["failed"]) == (5, 0)
    # ...until anything else writes to the log: then it is replayed.
    with log.open("a") as handle:
        handle.write('{"time":"2026-11-29T10:00:00.000+00:00","recipient":"reader005@example.org",'
                     '"event":"attempt","attempt":2}\n')  # fmt: skip
    assert status(cli, ws)["unknown"] == 1


def test_status_json_has_exactly_the_documented_keys(ws: Path, cli: Callable[..., Result]) -> None:
    assert list(status(cli, ws)) == [
        "total",
        "sent",
        "deferred",
        "failed",
        "skipped",
        "unknown",
        "pending",
    ]


def test_password_comes_from_the_environment_and_is_never_printed(ws: Path) -> None:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    secret = "s3cret-pass-phrase"
    accepted: list[str] = []

    def authenticator(
        server: object, session: object, envelope: object, mechanism: str, data: object
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == b"editor"
            and data.password == secret.encode()
        )
        if ok:
            accepted.append("editor")
        return AuthResult(success=ok, handled=False)

    recorder = Recorder()
    with SmtpServer(recorder, authenticator=authenticator, auth_require_tls=False) as server:
        url = f"smtp://editor@127.0.0.1:{server.port}"
        good = run_process(
            "send",
            EXAMPLE_ISSUE,
            "--subscribers",
            "subscribers.example.csv",
            "--smtp",
            url,
            "--yes",
            cwd=ws,
            env={"HEBDO_SMTP_PASSWORD": secret},
        )
        bad = run_process(
            "send",
            EXAMPLE_ISSUE,
            "--subscribers",
            "subscribers.example.csv",
            "--smtp",
            url,
            "--yes",
            cwd=ws,
            env={"HEBDO_SMTP_PASSWORD": "wrong-" + secret},
        )
    assert good.code == 0, good.err
    assert accepted and len(recorder.received) == 5
    assert bad.code == 0  # already sent: the second run had nothing to do and never logged in
    everything = good.out + good.err + bad.out + bad.err + log_file(ws).read_text()
    assert secret not in everything
    no_password = run_process(
        "send",
        EXAMPLE_ISSUE,
        "--subscribers",
        "subscribers.example.csv",
        "--smtp",
        url,
        "--yes",
        cwd=ws,
        env={"HEBDO_SMTP_PASSWORD": ""},
    )
    assert no_password.code == 0


def this_machine_off_loopback() -> str | None:
    """An address of this machine that is not a loopback one, if it has any."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


def test_a_login_over_plain_smtp_off_this_machine_needs_allow_plain_auth(ws: Path) -> None:
    from aiosmtpd.smtp import AuthResult

    host = this_machine_off_loopback()
    if host is None:
        pytest.skip("this machine has no address but loopback ones")
    recorder = Recorder()
    with SmtpServer(
        recorder, host=host, auth_require_tls=False,
        authenticator=lambda *a: AuthResult(success=True, handled=False),
    ) as server:  # fmt: skip
        url = f"smtp://editor@{host}:{server.port}"
        args = ("send", EXAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--smtp", url)
        env = {"HEBDO_SMTP_PASSWORD": "a-password"}
        refused = run_process(*args, "--yes", cwd=ws, env=env)
        assert refused.code == 1 and recorder.received == []
        assert refused.err.strip().splitlines() == [
            f"hebdo-mail: error: refusing to log in to {host}:{server.port} over plain smtp://: "
            "the password would cross the network in clear; use smtp+starttls:// or smtps://, "
            "or pass --allow-plain-auth if the network between you and the relay is private"
        ]
        allowed = run_process(*args, "--yes", "--allow-plain-auth", cwd=ws, env=env)
    assert allowed.code == 0, allowed.err
    assert len(recorder.received) == 5


def test_a_wrong_password_is_one_line_naming_the_relay(ws: Path) -> None:
    from aiosmtpd.smtp import AuthResult

    with SmtpServer(
        Recorder(),
        authenticator=lambda *a: AuthResult(success=False, handled=False),
        auth_require_tls=False,
    ) as server:
        url = f"smtp://editor@127.0.0.1:{server.port}"
        result = run_process(
            "send",
            EXAMPLE_ISSUE,
            "--subscribers",
            "subscribers.example.csv",
            "--smtp",
            url,
            "--yes",
            cwd=ws,
            env={"HEBDO_SMTP_PASSWORD": "nope-nope"},
        )
    assert result.code == 1
    assert result.err.startswith(
        f"hebdo-mail: error: 127.0.0.1:{server.port}: the relay refused the login of 'editor'"
    )
    assert "nope-nope" not in result.err


def test_starttls_required_but_not_offered_stops_instead_of_sending_in_clear(
    ws: Path, cli: Callable[..., Result]
) -> None:
    recorder = Recorder()
    with SmtpServer(recorder) as server:
        result = send(
            cli,
            ws,
            "--subscribers",
            "subscribers.example.csv",
            "--smtp",
            f"smtp+starttls://127.0.0.1:{server.port}",
            "--yes",
        )
    assert result.code == 1 and "does not offer STARTTLS" in result.err
    assert recorder.received == []


def test_a_log_of_another_transport_is_not_mixed(
    ws: Path, cli: Callable[..., Result], store_backend: str
) -> None:
    assert send(cli, ws, "--subscribers", "subscribers.example.csv").code == 0
    recorder = Recorder()
    with SmtpServer(recorder) as server:
        result = send(
            cli, ws, "--subscribers", "subscribers.example.csv", "--smtp", server.url, "--yes"
        )
    assert result.code == 1 and "already sent through outbox outbox/2006-50" in result.err
    what_to_do = "move the log aside" if store_backend == "sqlite" else "cannot share"
    assert what_to_do in result.err and len(recorder.received) == 0


def test_ctrl_c_finishes_the_messages_in_flight_and_says_how_to_resume(
    ws: Path, cli: Callable[..., Result]
) -> None:
    write_list(ws / "list.csv", many(40))
    recorder = Recorder(delay=0.05)
    with SmtpServer(recorder) as server:
        process = start_send(
            ws, "--subscribers", "list.csv", "--smtp", server.url, "--yes", "--concurrency", "3"
        )
        wait_until(lambda: len(recorder.received) >= 6, what="6 messages at the relay")
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 75, err
        assert "stopped early (interrupted); run the same command again to resume" in err
        assert "Traceback" not in err
        interrupted = status(cli, ws)
        assert interrupted["unknown"] == 0 and interrupted["sent"] == len(recorder.received) < 40
        resumed = send(cli, ws, "--subscribers", "list.csv", "--smtp", server.url, "--yes")
    assert resumed.code == 0
    assert {r: len(c) for r, c in recorder.by_recipient().items()} == {r[0]: 1 for r in many(40)}


def test_the_rate_limit_spaces_messages_out(ws: Path, cli: Callable[..., Result]) -> None:
    write_list(ws / "list.csv", many(6))
    arrivals: list[float] = []
    recorder = Recorder(
        hook=lambda stage, rcpt, n: arrivals.append(time.monotonic()) if stage == "data" else None
    )
    with SmtpServer(recorder) as server:
        result = send(
            cli, ws, "--subscribers", "list.csv", "--smtp", server.url, "--yes", "--rate", "20"
        )
    assert result.code == 0
    # A lower bound only: six messages at 20 a second cannot arrive in less than five intervals.
    assert arrivals[-1] - arrivals[0] >= 5 / 20 * 0.9


def test_a_terminal_shows_a_progress_bar(ws: Path) -> None:
    import pty

    write_list(ws / "list.csv", many(20))
    command = [
        sys.executable,
        "-m",
        "hebdo_mail",
        "send",
        EXAMPLE_ISSUE,
        "--subscribers",
        "list.csv",
    ]
    output = bytearray()

    def read(fd: int) -> bytes:
        data = os.read(fd, 1024)
        output.extend(data)
        return data

    previous = os.getcwd()
    os.chdir(ws)
    try:
        status_code = pty.spawn(command, read)
    finally:
        os.chdir(previous)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status_code) == 0
    assert "sending" in text and "msg/s" in text
    assert "20 sent, 0 deferred, 0 failed, 0 skipped, 0 unknown" in text
