"""The per-issue report: after a real send with refusals, deferrals and a skipped reader, a
bounce that came back later, an unsubscribe through the issue's link and a click, its figures
are the log's and the store's."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from email.utils import format_datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hebdo_mail.deliver import report as report_module
from hebdo_mail.deliver.report import issue_report
from hebdo_mail.deliver.sendlog import LogState, read_log
from hebdo_mail.web.app import create_app
from hebdo_mail.web.clicks import ClickFilter
from hebdo_mail.workspace import load_workspace

from .helpers import BOTH_STORES, EXAMPLE_ISSUE, Result, append_settings, store_of
from .smtpserver import Recorder, SmtpServer

pytestmark = BOTH_STORES

READERS = [f"reader{n}@example.org" for n in range(6)] + [
    "ann@refuse.example.com", "bob@refuse.example.com", "cyd@refuse.example.com",
    "dan@busy.example.net", "eve@example.org",
]  # fmt: skip
REQUIRED_KEYS = {"sent", "failed", "deferred", "unknown", "bounced", "unsubscribed", "clicks"}


def refusing_relay(stage: str, rcpt: str, count: int) -> str | None:
    if stage == "rcpt" and rcpt.endswith("@refuse.example.com"):
        return f"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"
    if stage == "rcpt" and rcpt.endswith("@busy.example.net"):
        return "451 4.7.1 Try again later"
    return None


def returned(reader: str, message_id: str) -> bytes:
    """A relay's bounce of one copy, with the copy's headers (RFC 3464)."""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
        "To: hebdo@example.org\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {format_datetime(dt.datetime.now(dt.UTC))}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n\r\n'
        "--r\r\nContent-Type: text/plain\r\n\r\nThe mailbox is full.\r\n"
        "--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n"
        f"Final-Recipient: rfc822; {reader}\r\nAction: failed\r\nStatus: 5.2.2\r\n"
        "Diagnostic-Code: smtp; 552 5.2.2 Mailbox full\r\n"
        "--r\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: OTAN Hebdo <hebdo@example.org>\r\nTo: {reader}\r\nMessage-ID: {message_id}\r\n"
        "--r--\r\n"
    ).encode()


def test_the_report_is_the_log_and_the_store(ws: Path, cli: Callable[..., Result]) -> None:
    append_settings(ws, "[send]\nattempts = 1\n\n[tracking]\nclicks = true\n")
    (ws / "readers.csv").write_text("email\n" + "\n".join(READERS) + "\n", encoding="utf-8")
    assert cli("subscribers", "import", "readers.csv", cwd=ws).code == 0
    assert cli("subscribers", "unsubscribe", "eve@example.org", cwd=ws).code == 0
    recorder = Recorder(hook=refusing_relay)
    with SmtpServer(recorder) as server:
        sent = cli("send", EXAMPLE_ISSUE, "--smtp", server.url, "--yes", cwd=ws)
    assert sent.code == 75, sent.err  # one reader is deferred
    copies = recorder.by_recipient()

    # A bounce comes back later, by mail.
    box = ws / "Bounces"
    for sub in ("new", "cur", "tmp"):
        (box / sub).mkdir(parents=True)
    message_id = str(copies["reader0@example.org"][0].message["Message-ID"])
    (box / "new" / "1").write_bytes(returned("reader0@example.org", message_id))
    assert cli("bounces", "process", "Bounces", cwd=ws).code == 0

    # A reader leaves through the issue's link (RFC 8058 one-click), another through an old
    # link that does not name the issue; a third clicks a link.
    def unsubscribe_path(reader: str) -> str:
        header = str(copies[reader][0].message["List-Unsubscribe"])
        return header.split(">")[0].lstrip("<").removeprefix("https://hebdo.example.org")

    click = re.search(
        r"https://hebdo\.example\.org(/l/[^\"]+)",
        str(copies["reader2@example.org"][0].message.get_body(("html",)).get_content()),
    )
    assert click is not None
    app = create_app(load_workspace(ws, explicit=True), clicks=ClickFilter(clock=lambda: 0.0))
    with TestClient(app, follow_redirects=False) as client:
        one_click = {"List-Unsubscribe": "One-Click"}
        assert "?issue=2006-50" in unsubscribe_path("reader1@example.org")
        assert client.post(unsubscribe_path("reader1@example.org"), data=one_click).is_success
        assert client.post(unsubscribe_path("reader1@example.org"), data=one_click).is_success
        old_link = unsubscribe_path("reader3@example.org").split("?")[0]
        assert client.post(old_link, data=one_click).is_success
        assert client.get(click.group(1)).status_code == 303

    status = json.loads(cli("status", EXAMPLE_ISSUE, "--json", cwd=ws).out)
    result = cli("report", EXAMPLE_ISSUE, "--json", cwd=ws)
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert set(report) >= REQUIRED_KEYS
    for key in ("total", "sent", "failed", "deferred", "unknown", "skipped", "pending"):
        assert report[key] == status[key], key
    # eve left before the send: the store's list no longer holds her
    assert (report["total"], report["sent"], report["failed"], report["deferred"]) == (10, 6, 3, 1)
    assert report["failures"] == [
        {
            "domain": "refuse.example.com",
            "count": 3,
            "reply": "550 5.1.1 <address>: Recipient address rejected: User unknown",
        }
    ]
    with store_of(ws) as store:
        returned_bounces = store.db.execute(
            "SELECT count(*) FROM bounce_events WHERE message_id LIKE '<2006-50.%'"
            " AND source NOT LIKE 'send %'"
        ).fetchone()[0]
        left = [s.email for s in store.iter_subscribers(status="unsubscribed")]
    assert report["bounced"] == returned_bounces == 1
    assert report["bounces"] == {"mailboxfull": 1}
    assert sorted(left) == ["eve@example.org", "reader1@example.org", "reader3@example.org"]
    assert report["unsubscribed"] == 1  # only the one who left through this issue's link
    assert report["clicks"][0] == {"url": "https://www.nato.int/pfp/", "clicks": 1}
    assert [link["clicks"] for link in report["clicks"][1:]] == [0] * (len(report["clicks"]) - 1)

    text = cli("report", EXAMPLE_ISSUE, cwd=ws).out
    assert re.search(r"failed\s+3\n\s+refuse\.example\.com\s+3  550 5\.1\.1", text)
    assert "unsubscribed from this issue's links  1" in text
    assert "no open rate" in text


def test_a_report_before_any_send_is_all_zeros(ws: Path, cli: Callable[..., Result]) -> None:
    result = cli("report", EXAMPLE_ISSUE, "--json", cwd=ws)
    report = json.loads(result.out)
    assert result.code == 0 and report["sent"] == report["bounced"] == 0
    assert report["clicks"] == [] and report["clicks_counted"] is False
    assert "clicks: not counted" in cli("report", EXAMPLE_ISSUE, cwd=ws).out


def test_a_report_reads_the_log_again_only_once_it_changed(
    ws: Path, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page showing the last issues does not read every large log at each refresh: the log's
    half of a report is kept while the ledger's mark stays the same."""
    assert cli("subscribers", "import", "subscribers.example.csv", cwd=ws).code == 0
    assert cli("send", EXAMPLE_ISSUE, "--limit", "2", cwd=ws).code == 75
    workspace = load_workspace(ws, explicit=True)
    reads: list[Path] = []

    def counted_read_log(path: Path) -> LogState:
        reads.append(path)
        return read_log(path)

    monkeypatch.setattr(report_module, "read_log", counted_read_log)
    first = issue_report(workspace, EXAMPLE_ISSUE)
    assert (first.sent, first.pending, len(reads)) == (2, 3, 1)
    assert issue_report(workspace, EXAMPLE_ISSUE) == first and len(reads) == 1
    assert cli("send", EXAMPLE_ISSUE, cwd=ws).code == 0
    after = issue_report(workspace, EXAMPLE_ISSUE)
    assert (after.sent, after.pending, len(reads)) == (5, 0, 2)
    assert json.loads(cli("report", EXAMPLE_ISSUE, "--json", cwd=ws).out) == json.loads(
        after.to_json()
    )
