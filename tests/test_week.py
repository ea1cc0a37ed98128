"""The editor's week on the sending side: proof copies as readers get them, a changed issue never
sent half-and-half, and `send --due` for cron."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from .helpers import EXAMPLE_ISSUE, Result, append_settings, replace_in
from .smtpserver import Recorder, SmtpServer

LIST = "subscribers.example.csv"


def log_lines(ws: Path, issue: str = EXAMPLE_ISSUE) -> list[dict[str, object]]:
    path = ws / "logs" / f"{issue}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_proof_copy_is_the_readers_edition_and_format_marked_test(
    ws: Path, cli: Callable[..., Result]
) -> None:
    recorder = Recorder()
    with SmtpServer(recorder) as server:
        result = cli(
            "send", EXAMPLE_ISSUE, "--smtp", server.url, "--test", "ed@example.org",
            "--edition", "en", "--format", "text", cwd=ws,
        )  # fmt: skip
        assert result.code == 0, result.err
        both = cli(
            "send", EXAMPLE_ISSUE, "--smtp", server.url,
            "--test", "ed@example.org, proof@example.net", cwd=ws,
        )  # fmt: skip
        assert both.code == 0, both.err
        wrong = cli("send", EXAMPLE_ISSUE, "--test", "ed@example.org", "--edition", "de", cwd=ws)
    assert (
        wrong.code == 1
        and "--edition de: the issue has no such edition; it has fr, en" in wrong.err
    )
    text, *html = recorder.received
    message = text.message
    assert message["Subject"] == "[TEST] NATO Update No. 50 — December 15, 2006"
    assert message.get_content_type() == "text/plain" and not message.is_multipart()
    body = message.get_content()
    assert "Kazakhstan's President welcomed at NATO Headquarters" in body
    assert "https://hebdo.example.org/issues/2006-50/files/point-de-presse." in body
    assert [r.rcpt for r in html] == ["ed@example.org", "proof@example.net"]
    assert html[0].message["Subject"] == "[TEST] OTAN Hebdo n°50 — 15 décembre 2006"
    assert html[0].message.get_body(("html",)) is not None
    assert log_lines(ws) == [] and not (ws / "logs").exists()  # never counted as a delivery


def test_an_edit_between_two_partial_sends_stops_the_second(
    ws: Path, cli: Callable[..., Result]
) -> None:
    recorder = Recorder()
    with SmtpServer(recorder) as server:
        relay = ("--subscribers", LIST, "--smtp", server.url, "--yes")
        first = cli("send", EXAMPLE_ISSUE, *relay, "--limit", "2", cwd=ws)
        assert first.code == 75
        replace_in(
            ws / "issues" / EXAMPLE_ISSUE / "transit-fias.md",
            "Transit vers l'Afghanistan",
            "Transit vers l'Afghanistan, revu",
        )
        stopped = cli("send", EXAMPLE_ISSUE, *relay, cwd=ws)
        assert stopped.code == 1 and stopped.err.count("\n") == 1
        assert (
            "the issue changed since its first messages went out (fr edition: transit-fias.md); "
            "run again with --allow-changes to send the new text to the other readers, or "
            "restore the old text"
        ) in stopped.err
        assert len(recorder.received) == 2
        # Restored, it goes on; or changed again, --allow-changes sends the new text.
        allowed = cli("send", EXAMPLE_ISSUE, *relay, "--allow-changes", "--limit", "1", cwd=ws)
        assert allowed.code == 75 and len(recorder.received) == 3
        # The new text is now the reference: resuming with it needs no flag.
        rest = cli("send", EXAMPLE_ISSUE, *relay, cwd=ws)
        assert rest.code == 0, rest.err
    assert len(recorder.received) == 5
    (zoe,) = [r for r in recorder.received if r.rcpt == "zoe.nguyen@example.fr"]  # fr, html
    html = zoe.message.get_body(("html",)).get_content()
    assert "Transit vers l'Afghanistan, revu" in html


def test_restoring_the_old_text_lets_the_send_go_on(ws: Path, cli: Callable[..., Result]) -> None:
    article = ws / "issues" / EXAMPLE_ISSUE / "visite-kazakhstan.en.md"
    original = article.read_text(encoding="utf-8")
    assert cli("send", EXAMPLE_ISSUE, "--subscribers", LIST, "--limit", "1", cwd=ws).code == 75
    article.write_text(original.replace("Nursultan", "Noursoultan"), encoding="utf-8")
    changed = cli("send", EXAMPLE_ISSUE, "--subscribers", LIST, cwd=ws)
    assert changed.code == 1 and "(en edition: visite-kazakhstan.en.md)" in changed.err
    article.write_text(original, encoding="utf-8")
    assert cli("send", EXAMPLE_ISSUE, "--subscribers", LIST, cwd=ws).code == 0
    digests = [line["digest"] for line in log_lines(ws) if line["event"] == "run"]
    assert len(digests) == 2 and digests[0] == digests[1]


def test_an_edit_after_a_complete_send_stops_nothing_and_changes_no_record(
    ws: Path, cli: Callable[..., Result]
) -> None:
    """Run again after everyone got it, the edited issue mails nobody: no question of the new
    text (the send reads its list as it goes, so this one is counted first), and the log keeps
    the text that went out as the reference."""
    assert cli("send", EXAMPLE_ISSUE, "--subscribers", LIST, cwd=ws).code == 0
    replace_in(
        ws / "issues" / EXAMPLE_ISSUE / "transit-fias.md",
        "Transit vers l'Afghanistan",
        "Transit vers l'Afghanistan, revu",
    )
    again = cli("send", EXAMPLE_ISSUE, "--subscribers", LIST, cwd=ws)
    assert again.code == 0, again.err
    assert again.out.startswith("0 sent, 0 deferred, 0 failed, 0 skipped, 0 unknown (5 already")
    digests = [line["digest"] for line in log_lines(ws) if line["event"] == "run"]
    assert len(digests) == 2 and digests[0] == digests[1]


def schedule(ws: Path, issue_id: str, send_at: dt.datetime) -> None:
    folder = ws / "issues" / issue_id
    if not folder.exists():
        shutil.copytree(ws / "issues" / EXAMPLE_ISSUE, folder)
    config = folder / "issue.toml"  # top-level keys come before the [tables]
    kept = [line for line in config.read_text().splitlines() if not line.startswith("send_at")]
    config.write_text(f"send_at = {send_at.isoformat(timespec='seconds')}\n" + "\n".join(kept))


def test_send_due_sends_what_is_due_once_and_leaves_the_rest(
    ws: Path, cli: Callable[..., Result]
) -> None:
    assert cli("subscribers", "import", LIST, cwd=ws).code == 0
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    paris = dt.timezone(dt.timedelta(hours=1))
    schedule(ws, EXAMPLE_ISSUE, (now - dt.timedelta(hours=1)).astimezone(paris))
    schedule(ws, "2006-51", now + dt.timedelta(days=1))
    schedule(ws, "2006-49", now - dt.timedelta(days=3))
    append_settings(ws, "[send]\nsend_window = '2d'\n")

    first = cli("send", "--due", cwd=ws)
    assert first.code == 1  # the late issue is reported, for cron to mail to its owner
    assert "issue 2006-50 is due" in first.out
    assert len(list((ws / "outbox" / EXAMPLE_ISSUE / "new").iterdir())) == 5
    assert not (ws / "outbox" / "2006-51").exists() and not (ws / "logs" / "2006-51.jsonl").exists()
    late = [line for line in first.err.splitlines() if "2006-49" in line]
    assert len(late) == 1 and "3 days ago, more than send_window (2 days): not sent" in late[0]
    assert "`hebdo-mail send 2006-49`" in late[0]
    assert not (ws / "outbox" / "2006-49").exists()

    again = cli("send", "--due", cwd=ws)
    assert "2006-50" not in again.out + again.err
    assert len(list((ws / "outbox" / EXAMPLE_ISSUE / "new").iterdir())) == 5


def test_send_due_resumes_an_interrupted_send_and_is_quiet_when_nothing_is_due(
    ws: Path, cli: Callable[..., Result]
) -> None:
    assert cli("subscribers", "import", LIST, cwd=ws).code == 0
    assert cli("send", "--due", cwd=ws).out == ""  # nothing scheduled: nothing to say
    schedule(ws, EXAMPLE_ISSUE, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    assert cli("send", EXAMPLE_ISSUE, "--limit", "2", cwd=ws).code == 75
    resumed = cli("send", "--due", cwd=ws)
    assert resumed.code == 0, resumed.err
    assert "3 sent" in resumed.out and "(2 already done before)" in resumed.out
    quiet = cli("send", "--due", cwd=ws)
    assert (quiet.code, quiet.out, quiet.err) == (0, "", "")


def test_a_change_after_everyone_has_the_issue_sends_nothing_and_stops_nothing(
    ws: Path, cli: Callable[..., Result]
) -> None:
    assert cli("send", EXAMPLE_ISSUE, "--subscribers", LIST, cwd=ws).code == 0
    replace_in(ws / "issues" / EXAMPLE_ISSUE / "photos.md", "Photos", "Images")
    again = cli("send", EXAMPLE_ISSUE, "--subscribers", LIST, cwd=ws)
    assert again.code == 0 and again.out.startswith("0 sent") and again.err == ""
    digests = [line["digest"] for line in log_lines(ws) if line["event"] == "run"]
    assert digests[0] == digests[1]  # still what the readers got
