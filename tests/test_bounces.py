"""Returned mail: the bounce corpus (tests/bounces/, written for the project), VERP round trips
against a real SMTP server, scoring and expiry in the SQLite store, and reprocessing."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hebdo_mail.audience.bounce_ledger import BounceLedger
from hebdo_mail.audience.bounce_reasons import counts_against_reader
from hebdo_mail.audience.returned_mail import (
    Bounce,
    Complaint,
    Ignored,
    Unreadable,
    Verdict,
    analyse,
)  # fmt: skip
from hebdo_mail.config import BounceSettings
from hebdo_mail.vocabulary import BounceReason

from .helpers import BOTH_STORES, EXAMPLE_ISSUE, Result, forget_sends, log_file, store_of
from .smtpserver import Recorder, SmtpServer

pytestmark = BOTH_STORES

CORPUS = Path(__file__).parent / "bounces"


@dataclass(frozen=True)
class Expected:
    """One row of tests/bounces/expected.csv: what a message of the corpus is."""

    file: str
    system: str
    verdict: str  # bounce, complaint, not-a-bounce, unreadable
    recipients: list[str]
    reasons: list[str]
    kinds: list[str]
    note: str  # "misread: …" where the analysis is known to be wrong (the row holds the truth)


def load_expected() -> list[Expected]:
    with (CORPUS / "expected.csv").open(encoding="utf-8", newline="") as handle:
        return [
            Expected(
                r["file"], r["system"], r["verdict"], r["recipients"].split(),
                r["reasons"].split(), r["kinds"].split(), r["note"],
            )
            for r in csv.DictReader(handle)
        ]  # fmt: skip


TABLE = load_expected()
COUNTING = {str(r) for r in BounceReason if counts_against_reader(r)}
# The project's own messages (tests/bounces/*.eml): the CLI tests below count on them.
OWN = [e for e in TABLE if "/" not in e.file]
READERS = sorted({a for e in OWN if e.verdict == "bounce" for a in e.recipients})
KEPT = sorted(e.file for e in OWN if e.verdict == "unreadable")
SET_ASIDE = len([e for e in OWN if e.verdict == "not-a-bounce"])
COUNTED = [e for e in OWN if e.verdict == "bounce" and e.reasons[0] in COUNTING]
OUR_SIDE = [e for e in OWN if e.verdict == "bounce" and e.reasons[0] not in COUNTING]


def import_readers(cli: Callable[..., Result], ws: Path, addresses: list[str]) -> None:
    lines = ["email,name"] + [f"{a},{a.split('@')[0]}" for a in addresses]
    (ws / "readers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cli("subscribers", "import", "readers.csv", cwd=ws)
    assert result.code == 0, result.err


def dated_today(raw: bytes) -> bytes:
    """The message with its own Date set to now: bounces older than 90 days no longer count."""
    head, sep, body = raw.partition(b"\n\n")
    today = format_datetime(dt.datetime.now(dt.UTC)).encode()
    return re.sub(rb"(?m)^Date: .*$", b"Date: " + today, head, count=1) + sep + body


def make_maildir(target: Path) -> Path:
    for sub in ("new", "cur", "tmp"):
        (target / sub).mkdir(parents=True)
    return target


def send_through(cli: Callable[..., Result], ws: Path, server: SmtpServer, *args: str) -> Result:
    return cli("send", EXAMPLE_ISSUE, *args, "--smtp", server.url, "--yes", cwd=ws)


def corpus_maildir(target: Path) -> Path:
    make_maildir(target)
    for index, name in enumerate(sorted(e.file for e in OWN)):
        raw = dated_today((CORPUS / name).read_bytes())
        (target / "new" / f"17000000{index:02d}.M1P1.{name}").write_bytes(raw)
    return target


def scores(ws: Path) -> dict[str, tuple[float, str]]:
    with store_of(ws) as store:
        return {r.email: (r.score, r.last_kind) for r in store.bounces.report()}


def verdict_of(result: Verdict) -> tuple[str, list[str], list[str], list[str]]:
    if isinstance(result, Bounce):
        return (
            "bounce", [f.recipient for f in result.failures],
            [str(f.reason) for f in result.failures], [str(f.kind) for f in result.failures],
        )  # fmt: skip
    if isinstance(result, Complaint):
        return "complaint", [result.recipient] if result.recipient else [], ["complaint"], []
    return ("not-a-bounce" if isinstance(result, Ignored) else "unreadable"), [], [], []


@pytest.mark.parametrize("row", TABLE, ids=[e.file for e in TABLE])
def test_each_message_of_the_corpus_is_read_as_the_table_says(row: Expected) -> None:
    result = analyse((CORPUS / row.file).read_bytes(), "bounces")
    verdict, recipients, reasons, kinds = verdict_of(result)
    found = (verdict, recipients, reasons, kinds if verdict == "bounce" else [])
    wanted = (row.verdict, row.recipients, row.reasons, row.kinds)
    if row.note.startswith("misread"):  # a known misreading: it fails loudly once it is fixed
        assert found != wanted, f"{row.file} is read right now: drop its note"
        return
    assert found == wanted
    if isinstance(result, Bounce):
        assert all(f.diagnostic or f.status for f in result.failures)  # the admin sees why


def test_the_corpus_is_large_and_varied() -> None:
    systems = {e.system for e in TABLE if e.verdict == "bounce"}
    assert len(TABLE) >= 150 and len(systems) >= 40
    assert {e.file for e in TABLE} == {
        str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.suffix in (".eml", ".json")
    }


def test_bounces_analyse_json_matches_the_table(cli: Callable[..., Result], tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for row in TABLE:  # one folder of message files, named after their row
        shutil.copy(CORPUS / row.file, folder / row.file.replace("/", "__"))
    result = cli("bounces", "analyse", str(folder), "--json", cwd=tmp_path)
    assert result.code == 0, result.err
    printed: dict[str, list[dict[str, str]]] = {}
    for item in json.loads(result.out):
        printed.setdefault(Path(item["file"]).name.replace("__", "/"), []).append(item)
    assert sorted(printed) == sorted(e.file for e in TABLE)
    for row in TABLE:
        items = printed[row.file]
        if row.verdict in ("bounce", "complaint"):
            got = ([i["recipient"] for i in items if i["recipient"]], [i["reason"] for i in items])
            if not row.note:
                assert got == (row.recipients, row.reasons), row.file
                if row.verdict == "bounce":
                    assert [i["verdict"] for i in items] == row.kinds
        elif not row.note:
            assert [i["verdict"] for i in items] == [row.verdict], row.file
    # Nothing changed: no store, no workspace written.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


def test_the_returned_originals_words_do_not_decide() -> None:
    # The qmail report quotes the issue, which speaks of a "temporary" headquarters: still hard.
    raw = (CORPUS / "qmail.eml").read_bytes()
    assert b"temporary" in raw.split(b"copy of the message")[1]
    result = analyse(raw, "bounces")
    assert isinstance(result, Bounce) and [f.kind for f in result.failures] == ["hard"]
    # A vacation reply whose body says "mailbox is not full" is set aside, not counted soft.
    assert isinstance(analyse((CORPUS / "autoreply_vacation.eml").read_bytes(), "bounces"), Ignored)


def test_a_maildir_cleans_the_list_and_a_second_run_changes_nothing(
    ws: Path, cli: Callable[..., Result]
) -> None:
    import_readers(cli, ws, READERS)
    box = corpus_maildir(ws / "Bounces")
    first = cli("bounces", "process", "Bounces", cwd=ws)
    assert first.code == 1  # some messages need a look: said so, and kept
    assert first.out.splitlines()[-1] == (
        f"{len(COUNTED)} bounces counted (0 of them refusals from the send logs), 0 already "
        f"counted, {len(OUR_SIDE)} refusals of our side, 0 complaints (readers unsubscribed), "
        f"{SET_ASIDE} auto-replies and notices set aside, {len(KEPT)} left in place to look at"
    )
    # The greylisting and policy refusals are about us: told per domain, not scored.
    for row in OUR_SIDE:
        domain = row.recipients[0].partition("@")[2]
        assert f"problem on our side: {domain} refused 1 message (not counted" in first.out
    for name in KEPT:
        assert f"{name}: no delivery failure found in it; left as it is" in first.err
        assert [p.name for p in (box / "new").iterdir() if p.name.endswith(name)]
    assert sorted(p.name.split(".", 2)[2] for p in (box / "new").iterdir()) == KEPT
    assert all(p.name.endswith(":2,S") for p in (box / "cur").iterdir())

    after_first = scores(ws)
    assert after_first == {
        row.recipients[0]: (1.0 if row.kinds[0] == "hard" else 0.5, row.kinds[0]) for row in COUNTED
    }
    second = cli("bounces", "process", "Bounces", cwd=ws)
    assert second.out.splitlines()[-1].startswith(
        f"0 bounces counted (0 of them refusals from the send logs), "
        f"{len(COUNTED) + len(OUR_SIDE)} already counted"
    )
    assert scores(ws) == after_first
    with store_of(ws) as store:
        assert {s.status for s in store.iter_subscribers()} == {"active"}  # one bounce each


def test_an_mbox_is_read_in_place_once(ws: Path, cli: Callable[..., Result]) -> None:
    import_readers(cli, ws, READERS)
    path = ws / "bounces.mbox"
    with path.open("wb") as handle:  # by hand: the mailbox module cannot write broken.eml
        for name in sorted(e.file for e in OWN):
            raw = dated_today((CORPUS / name).read_bytes())
            quoted = re.sub(rb"(?m)^(>*From )", rb">\1", raw)
            handle.write(b"From MAILER-DAEMON Mon Dec  7 09:12:44 2026\n" + quoted + b"\n\n")
    before = path.read_bytes()
    first = cli("bounces", "process", "bounces.mbox", cwd=ws)
    second = cli("bounces", "process", "bounces.mbox", cwd=ws)
    counted = len(COUNTED)
    assert first.out.splitlines()[-1].startswith(f"{counted} bounces counted")
    assert second.out.splitlines()[-1].startswith(
        f"0 bounces counted (0 of them refusals from the send logs), "
        f"{counted + len(OUR_SIDE)} already"
    )
    assert path.read_bytes() == before  # nothing removed from the admin's mailbox
    human = sorted(e.file for e in OWN).index("human_reply.eml") + 1  # where the admin finds it
    assert f"bounces.mbox, message {human}: no delivery failure found in it" in first.err


def test_not_a_mailbox_is_one_line(ws: Path, cli: Callable[..., Result]) -> None:
    (ws / "folder").mkdir()
    result = cli("bounces", "process", "folder", cwd=ws)
    assert result.code == 1 and result.err.count("\n") == 1
    assert "folder" in result.err and "Maildir" in result.err
    missing = cli("bounces", "process", "nowhere.mbox", cwd=ws)
    assert missing.code == 1 and "nowhere.mbox: does not exist" in missing.err


def test_scores_count_once_a_day_expire_and_reach_the_threshold(workspace: Path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    days = {n: today - dt.timedelta(days=n) for n in (0, 1, 2, 3, 120)}
    policy_ = BounceSettings(threshold=3.0, expire_days=90)
    with store_of(workspace) as store:
        store.bounces = BounceLedger(store.db, policy_)
        store.add("rita@example.org")

        def bounce(kind: str, day: int, source: str) -> str:
            return store.bounces.record(
                "Rita@example.org", kind, "550 5.1.1", source=source, day=days[day]
            )

        def status() -> tuple[float, str]:
            rita = store.get("rita@example.org")
            assert rita is not None
            return rita.bounce_score, rita.status

        assert bounce("hard", 120, "a") == "counted"  # long ago: expired, counts nothing
        assert status() == (0.0, "active")
        bounce("soft", 3, "b")
        bounce("hard", 3, "c")  # the same day: only the hardest counts
        bounce("soft", 3, "d")
        assert status() == (1.0, "active")
        bounce("soft", 2, "e")
        assert status() == (1.5, "active")
        assert bounce("soft", 2, "e") == "duplicate"  # the same message again
        bounce("hard", 1, "f")
        assert status() == (2.5, "active")
        bounce("hard", 0, "g")
        assert status() == (3.5, "bounced")

        report = store.bounces.report()
        assert report[0].email == "rita@example.org" and report[0].score == 3.5
        assert report[0].last_kind == "hard" and report[0].last_day == today.isoformat()

        store.bounces.reset("rita@example.org")
        reset = store.get("rita@example.org")
        assert reset is not None and reset.status == "active" and reset.bounce_score == 0
        assert store.bounces.report() == []

    with store_of(workspace) as store:
        store.bounces = BounceLedger(store.db, BounceSettings(expire_days=2))
        store.bounces.record("rita@example.org", "hard", "x", source="h", day=days[3])
        store.bounces.record("rita@example.org", "soft", "x", source="i", day=days[1])
        assert store.bounces.report()[0].score == 0.5  # the hard one is 3 days old: expired


def test_list_reset_and_bounced_readers_are_not_mailed(
    ws: Path, cli: Callable[..., Result]
) -> None:
    import_readers(cli, ws, ["ines.moreau@example.net", "zoe.nguyen@example.fr"])
    raw = dated_today((CORPUS / "rfc3464_unknown_user.eml").read_bytes())
    with (ws / "hebdo.toml").open("a") as handle:
        handle.write("\n[bounces]\nthreshold = 1.0\n")
    (ws / "one.mbox").write_bytes(b"From MAILER-DAEMON Mon Dec  7 09:12:44 2026\n" + raw)
    result = cli("bounces", "process", "one.mbox", cwd=ws)
    assert "ines.moreau@example.net is now bounced and will not be mailed" in result.out

    listing = cli("bounces", "list", cwd=ws)
    assert listing.out.startswith("ines.moreau@example.net  score 1  bounced  last ")
    assert "hard userunknown: 550 5.1.1 <ines.moreau@example.net>: mailbox unknown" in listing.out

    sent = cli("send", EXAMPLE_ISSUE, cwd=ws)
    assert sent.out.startswith("1 sent, 0 deferred, 0 failed, 0 skipped")
    outbox = list((ws / "outbox" / EXAMPLE_ISSUE / "new").iterdir())
    assert len(outbox) == 1 and b"zoe.nguyen@example.fr" in outbox[0].read_bytes()

    reset = cli("bounces", "reset", "Ines.Moreau@example.net", cwd=ws)
    assert reset.out == "Ines.Moreau@example.net: bounces cleared (active)\n"
    assert cli("bounces", "list", cwd=ws).out == ""
    # Bounced again, then added back by hand: an explicit add starts them from nothing.
    (ws / "two.mbox").write_bytes(
        b"From MAILER-DAEMON Mon Dec  7 09:12:44 2026\n" + raw.replace(b"5D2A1C0", b"5D2A1C1")
    )
    assert "is now bounced" in cli("bounces", "process", "two.mbox", cwd=ws).out
    assert cli("subscribers", "add", "ines.moreau@example.net", cwd=ws).code == 0
    assert cli("bounces", "list", cwd=ws).out == ""
    unknown = cli("bounces", "reset", "nobody@example.org", cwd=ws)
    assert unknown.code == 1 and "nobody@example.org has no bounces" in unknown.err


def dsn_for(envelope_recipient: str, final_recipient: str) -> bytes:
    """A bounce as a relay would write it, to the envelope sender of the returned message."""
    today = format_datetime(dt.datetime.now(dt.UTC))
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        f"To: {envelope_recipient}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {today}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b0"\r\n\r\n'
        "--b0\r\nContent-Type: text/plain\r\n\r\nThe message could not be delivered.\r\n"
        "--b0\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {final_recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 mailbox unknown\r\n"
        "--b0--\r\n"
    ).encode()


def test_verp_round_trip_finds_the_reader_whatever_the_report_names(
    ws: Path, cli: Callable[..., Result]
) -> None:
    readers = sorted(
        ["ines.moreau@example.net", "zoe.nguyen@example.fr", "tom.baker@example.co.uk"]
    )
    import_readers(cli, ws, readers)
    with (ws / "hebdo.toml").open("a") as handle:
        handle.write(
            '\n[bounces]\nverp = true\nprefix = "retours"\ndomain = "bounces.example.org"\n'
        )
    recorder = Recorder()
    with SmtpServer(recorder) as server:
        result = send_through(cli, ws, server)
    assert result.code == 0, result.err
    senders = {r.rcpt: r.mail_from for r in recorder.received}
    assert sorted(senders) == readers
    assert all(
        re.fullmatch(r"retours\+[0-9a-f]{16}@bounces\.example\.org", s) for s in senders.values()
    )
    assert len(set(senders.values())) == 3  # one return path per reader
    for item in recorder.received:  # the header From is still the newsletter's
        assert item.message["From"] == "OTAN Hebdo <hebdo@example.org>"

    # The mailbox forwarded to an address the list never heard of, which then failed: only the
    # VERP return path says whose it was.
    box = make_maildir(ws / "Bounces")
    raw = dsn_for(senders["zoe.nguyen@example.fr"], "zn-old@forwarded.example")
    (box / "new" / "1.M1P1.host").write_bytes(raw)
    assert isinstance(parsed := analyse(raw, "retours"), Bounce) and parsed.returned.verp
    processed = cli("bounces", "process", "Bounces", cwd=ws)
    assert processed.code == 0, processed.err
    assert scores(ws) == {"zoe.nguyen@example.fr": (1.0, "hard")}


def test_send_refusals_count_once_and_a_refused_sender_counts_for_nobody(
    ws: Path, cli: Callable[..., Result], store_backend: str
) -> None:
    (ws / "list.csv").write_text(
        "email\nmarc.dubois@example.net\nzoe.nguyen@example.fr\nines.moreau@example.net\n"
    )

    def hook(stage: str, rcpt: str, count: int) -> str | None:
        if stage == "rcpt" and rcpt.startswith("marc"):
            return "550 5.1.1 <marc.dubois@example.net>: no such user"
        if stage == "data" and rcpt.startswith("ines"):
            return "554 5.7.1 refused as bulk mail"
        return None

    # A CSV send with no SQLite store yet: the refusals are only in the send log. (A server
    # store is always there: the sender records them at once, and the sweep finds them counted.)
    with SmtpServer(Recorder(hook=hook)) as server:
        result = send_through(cli, ws, server, "--subscribers", "list.csv")
    assert result.out.startswith("1 sent, 0 deferred, 2 failed")
    live = store_backend == "postgresql"
    assert (ws / "hebdo.db").exists() is False
    failed = [json.loads(line) for line in log_file(ws).read_text().splitlines()]
    assert {e["recipient"]: e["stage"] for e in failed if e["event"] == "failed"} == {
        "marc.dubois@example.net": "rcpt", "ines.moreau@example.net": "content",
    }  # fmt: skip

    # A bounce for a reader the store does not know is found through the send log too.
    box = make_maildir(ws / "Bounces")
    (box / "new" / "z").write_bytes(dsn_for("hebdo@example.org", "zoe.nguyen@example.fr"))
    swept = cli("bounces", "process", "Bounces", cwd=ws)
    assert swept.out.splitlines()[-1].startswith(
        "1 bounces counted (0 of them refusals from the send logs), 2 already counted, "
        "0 refusals of our side"
        if live
        else "2 bounces counted (1 of them refusals from the send logs), 0 already counted, "
        "1 refusals of our side"
    )
    # A policy refusal is about our message, not the reader: told, never scored (a live send
    # records it at once; the per-issue figures below hold it either way).
    if not live:
        assert "problem on our side: example.net refused 1 message" in swept.out
        assert "554 5.7.1 refused as bulk mail" in swept.out
    assert scores(ws) == {
        "marc.dubois@example.net": (1.0, "hard"),
        "zoe.nguyen@example.fr": (1.0, "hard"),
    }
    with store_of(ws) as store:
        [problem] = store.bounces.refusals_by_domain(EXAMPLE_ISSUE)
        assert (problem.domain, problem.count, problem.categories) == (
            "example.net", 1, {"securityerror": 1},
        )  # fmt: skip
        counts = store.bounces.issue_counts(EXAMPLE_ISSUE)
        assert counts.bounces == {"userunknown": 1} and counts.complaints == 0
    again = cli("bounces", "process", "Bounces", cwd=ws)
    assert again.out.splitlines()[-1].startswith(
        "0 bounces counted (0 of them refusals from the send logs), 3 already"
    )

    # A relay refusing the sender itself (MAIL FROM) says nothing about the readers.
    forget_sends(ws)
    with SmtpServer(
        Recorder(hook=lambda s, r, n: "553 5.7.1 sender not allowed" if s == "mail" else None)
    ) as server:
        refused = send_through(cli, ws, server, "--subscribers", "list.csv")
    assert "3 failed" in refused.out
    assert (
        cli("bounces", "process", "Bounces", cwd=ws)
        .out.splitlines()[-1]
        .startswith("0 bounces counted")
    )
    assert scores(ws)["marc.dubois@example.net"] == (1.0, "hard")


def test_a_live_send_records_refusals_that_the_sweep_then_skips(
    ws: Path, cli: Callable[..., Result]
) -> None:
    import_readers(cli, ws, ["marc.dubois@example.net", "zoe.nguyen@example.fr"])

    def hook(stage: str, rcpt: str, count: int) -> str | None:
        return "550 5.1.1 no such user" if stage == "rcpt" and rcpt.startswith("marc") else None

    with SmtpServer(Recorder(hook=hook)) as server:
        send_through(cli, ws, server)
    assert scores(ws) == {"marc.dubois@example.net": (1.0, "hard")}
    empty = ws / "empty.mbox"
    empty.write_bytes(b"")
    swept = cli("bounces", "process", "empty.mbox", cwd=ws)
    assert swept.out.splitlines()[-1].startswith(
        "0 bounces counted (0 of them refusals from the send logs), 1 already"
    )


CORPUS_BYTES = [(CORPUS / e.file).read_bytes() for e in TABLE[::3]]


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from(CORPUS_BYTES),
    cut=st.integers(min_value=0, max_value=6000),
    noise=st.binary(max_size=300),
    at=st.integers(min_value=0, max_value=6000),
)
def test_any_damaged_bounce_is_read_or_set_aside_never_a_crash(
    base: bytes, cut: int, noise: bytes, at: int
) -> None:
    damaged = base[:at] + noise + base[at:cut] if cut > at else base[:at] + noise
    result = analyse(damaged, "bounces")
    assert isinstance(result, Bounce | Complaint | Ignored | Unreadable)
    if isinstance(result, Bounce):
        assert all(len(f.diagnostic) <= 300 and f.kind in ("hard", "soft") for f in result.failures)


def arf_for(reader: str, message_id: str) -> bytes:
    """A complaint as a mailbox provider sends it (RFC 5965), about one copy of an issue."""
    return (
        "From: feedback@fbl.example.com\r\nTo: abuse@example.org\r\n"
        "Subject: Complaint about message\r\nDate: "
        + format_datetime(dt.datetime.now(dt.UTC))
        + "\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report;"
        ' boundary="fb"\r\n\r\n--fb\r\nContent-Type: text/plain\r\n\r\nA reader marked this as spam.\r\n'
        "--fb\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n"
        f"User-Agent: FBL/1.0\r\nVersion: 1\r\nOriginal-Rcpt-To: {reader}\r\n"
        "--fb\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: OTAN Hebdo <hebdo@example.org>\r\n"
        f"To: {reader}\r\nMessage-ID: {message_id}\r\nSubject: Hebdo\r\n\r\n--fb--\r\n"
    ).encode()


def test_a_complaint_unsubscribes_its_reader_at_once_and_is_counted_per_issue(
    ws: Path, cli: Callable[..., Result]
) -> None:
    import_readers(cli, ws, ["marc.dubois@example.net", "zoe.nguyen@example.fr"])
    box = make_maildir(ws / "Bounces")
    (box / "new" / "c").write_bytes(
        arf_for("marc.dubois@example.net", "<2006-50.ab12@example.org>")
    )
    (box / "new" / "d").write_bytes(arf_for("nobody@example.com", "<2006-50.cd34@example.org>"))
    result = cli("bounces", "process", "Bounces", cwd=ws)
    assert "1 complaints (readers unsubscribed)" in result.out
    assert "a complaint about nobody@example.com, who is not a reader" in result.err
    with store_of(ws) as store:
        marc = store.get("marc.dubois@example.net")
        assert marc is not None and marc.status == "unsubscribed" and marc.bounce_score == 0
        assert store.bounces.issue_counts("2006-50").complaints == 1
        assert store.bounces.issue_counts("2006-49").complaints == 0
    again = cli("bounces", "process", "Bounces", cwd=ws)
    assert "0 complaints" in again.out  # the same report twice counts once


def test_every_recipient_of_a_report_is_counted_with_its_own_reason(
    ws: Path, cli: Callable[..., Result]
) -> None:
    readers = ["ana.silva@example.pt", "bo.lind@example.se", "cy.moss@example.ie"]
    import_readers(cli, ws, readers)
    blocks = "".join(
        f"Final-Recipient: rfc822; {address}\r\nAction: failed\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {reply}\r\n\r\n"
        for address, status, reply in (
            (readers[0], "5.1.1", "550 5.1.1 user unknown"),
            (readers[1], "5.2.2", "552 5.2.2 mailbox full"),
            (
                readers[2],
                "5.7.1",
                "550 5.7.1 client host [192.0.2.9] blocked using zen.spamhaus.org",
            ),
        )
    )
    raw = dsn_for("hebdo@example.org", "x@example.org").replace(
        b"Final-Recipient: rfc822; x@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 mailbox unknown\r\n",
        blocks.encode(),
    )
    parsed = analyse(raw, "bounces")
    assert isinstance(parsed, Bounce)
    assert [(f.recipient, f.reason, f.kind) for f in parsed.failures] == [
        (readers[0], "userunknown", "hard"), (readers[1], "mailboxfull", "soft"),
        (readers[2], "blocked", "soft"),
    ]  # fmt: skip
    (make_maildir(ws / "Bounces") / "new" / "m").write_bytes(raw)
    result = cli("bounces", "process", "Bounces", cwd=ws)
    assert result.out.splitlines()[-1].startswith("2 bounces counted")
    assert "problem on our side: example.ie refused 1 message" in result.out
    assert scores(ws) == {readers[0]: (1.0, "hard"), readers[1]: (0.5, "soft")}


@pytest.mark.parametrize(
    ("notice", "expected"),
    [
        ('{"notificationType":"Delivery","delivery":{"recipients":["a@example.org"]}}', "ignored"),
        ('{"eventType":"Bounce","bounce":{"bounceType":"Permanent","bouncedRecipients":'
         '[{"emailAddress":"a@example.org","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 '
         'user unknown"}]},"mail":{"messageId":"x"}}', ("a@example.org", "userunknown")),
        ('{"notificationType":"Complaint","complaint":{"complainedRecipients":'
         '[{"emailAddress":"a@example.org"}]}}', "complaint"),
        ('{"RecordType":"Bounce","Type":"HardBounce","Email":"b@example.org",'
         '"Details":"smtp;550 5.1.1 The email account does not exist"}', ("b@example.org", "userunknown")),
        ('{"event-data":{"event":"failed","severity":"temporary","recipient":"c@example.org",'
         '"delivery-status":{"code":452,"message":"4.2.2 mailbox full"}}}', ("c@example.org", "mailboxfull")),
        ('[{"email":"d@example.org","event":"delivered"}]', "ignored"),
        ('{"not": "a notice"', "unreadable"),
    ],
)  # fmt: skip
def test_json_notices_of_sending_providers(notice: str, expected: object) -> None:
    result = analyse(notice.encode(), "bounces")
    if expected == "ignored":
        assert isinstance(result, Ignored)
    elif expected == "complaint":
        assert isinstance(result, Complaint) and result.recipient == "a@example.org"
    elif expected == "unreadable":
        assert isinstance(result, Unreadable)
    else:
        assert isinstance(result, Bounce)
        assert [(f.recipient, f.reason) for f in result.failures] == [expected]
