"""Returned mail: the bounce corpus (tests/bounces/, written for the project), VERP round trips
against a real SMTP server, scoring and expiry in the SQLite store, and reprocessing."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Callable
from email.utils import format_datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hebdo_mail.audience.returned_mail import Bounce, Ignored, Unreadable, analyse
from hebdo_mail.audience.store import SubscriberStore
from hebdo_mail.config import BounceSettings

from .helpers import EXAMPLE_ISSUE, Result
from .smtpserver import Recorder, SmtpServer

CORPUS = Path(__file__).parent / "bounces"

# file -> what it is: (kind, the reader it names), or "ignored" / "unreadable".
EXPECTED: dict[str, tuple[str, str] | str] = {
    "rfc3464_unknown_user.eml": ("hard", "ines.moreau@example.net"),
    "rfc3464_over_quota.eml": ("soft", "paul.girard@example.com"),
    "rfc3464_delayed.eml": ("soft", "sofia.rossi@example.it"),
    "rfc3464_greylisted.eml": ("soft", "emma.lindqvist@example.se"),
    "rfc3464_policy.eml": ("soft", "david.cohen@example.org"),
    "rfc3464_delivered.eml": "ignored",
    "postfix.eml": ("hard", "tom.baker@example.co.uk"),
    "postfix_no_domain.eml": ("hard", "karl.schmidt@gone-away.example"),
    "exim.eml": ("hard", "lucia.fernandez@example.es"),
    "exim_delayed.eml": ("soft", "ahmed.benali@example.org"),
    "sendmail.eml": ("hard", "nora.berg@example.no"),
    "gmail.eml": ("hard", "olivier.petit@example.fr"),
    "exchange.eml": ("hard", "yuki.tanaka@example.jp"),
    "qmail.eml": ("hard", "bruno.costa@example.pt"),
    "exchange_dsn.eml": ("hard", "maria.lopez@outlook.example"),
    "exim_expired.eml": ("hard", "hugo.blanc@example.org"),
    "gmail_delay.eml": ("soft", "full.box@gmail.example"),
    "yahoo.eml": ("hard", "gone.reader@yahoo.example"),
    "domino.eml": ("hard", "anne.weber@corp.example.com"),
    "bounce_fr.eml": ("hard", "claire.roux@example.fr"),
    "bounce_de.eml": ("hard", "jonas.keller@example.de"),
    "mdaemon.eml": ("hard", "sam.price@example.com"),
    "groupwise.eml": ("hard", "gw.user17@example.gov"),
    "yandex_571_no_such_user.eml": ("hard", "smirnova21@example.ru"),
    "exchange_queue_expired.eml": ("hard", "accounts22@example.com.mx"),
    "sendmail_expired_dsn.eml": ("hard", "ops36@example.net.nz"),
    "challenge_wrapped.eml": "ignored",
    "read_receipt.eml": "ignored",
    "boxtrapper.eml": "ignored",
    "human_reply_fr.eml": "unreadable",
    "autoreply_en.eml": "ignored",
    "autoreply_fr.eml": "ignored",
    "autoreply_vacation.eml": "ignored",
    "challenge.eml": "ignored",
    "human_reply.eml": "unreadable",
    "broken.eml": "unreadable",
}
READERS = sorted({e[1] for e in EXPECTED.values() if isinstance(e, tuple)})
KEPT = sorted(name for name, e in EXPECTED.items() if e == "unreadable")
SET_ASIDE = len([e for e in EXPECTED.values() if e == "ignored"])


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
    for index, name in enumerate(sorted(EXPECTED)):
        raw = dated_today((CORPUS / name).read_bytes())
        (target / "new" / f"17000000{index:02d}.M1P1.{name}").write_bytes(raw)
    return target


def scores(ws: Path) -> dict[str, tuple[float, str]]:
    with SubscriberStore.at(ws / "hebdo.db") as store:
        return {r.email: (r.score, r.last_kind) for r in store.bounces.report()}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_format_of_the_corpus_is_read(name: str) -> None:
    result = analyse((CORPUS / name).read_bytes(), "bounces")
    expected = EXPECTED[name]
    if expected == "ignored":
        assert isinstance(result, Ignored), result
    elif expected == "unreadable":
        assert isinstance(result, Unreadable), result
    else:
        assert isinstance(result, Bounce), result
        kind, address = expected
        assert result.kind == kind
        assert address in (result.recipient, result.original_to)
        assert result.reason  # the admin sees why


def test_the_returned_originals_words_do_not_decide() -> None:
    # The qmail report quotes the issue, which speaks of a "temporary" headquarters: still hard.
    raw = (CORPUS / "qmail.eml").read_bytes()
    assert b"temporary" in raw.split(b"copy of the message")[1]
    result = analyse(raw, "bounces")
    assert isinstance(result, Bounce) and result.kind == "hard"
    # A vacation reply whose body says "mailbox is not full" is set aside, not counted soft.
    assert isinstance(analyse((CORPUS / "autoreply_vacation.eml").read_bytes(), "bounces"), Ignored)


def test_a_maildir_cleans_the_list_and_a_second_run_changes_nothing(
    ws: Path, cli: Callable[..., Result]
) -> None:
    import_readers(cli, ws, READERS)
    box = corpus_maildir(ws / "Bounces")
    first = cli("bounces", "process", "Bounces", cwd=ws)
    assert first.code == 1  # some messages need a look: said so, and kept
    bounces = [e for e in EXPECTED.values() if isinstance(e, tuple)]
    assert first.out.splitlines()[-1] == (
        f"{len(bounces)} bounces counted (0 of them refusals from the send logs), 0 already "
        f"counted, {SET_ASIDE} auto-replies and challenges set aside, {len(KEPT)} left in place "
        "to look at"
    )
    for name in KEPT:
        assert f"{name}: no delivery failure found in it; left as it is" in first.err
        assert [p.name for p in (box / "new").iterdir() if p.name.endswith(name)]
    assert sorted(p.name.split(".", 2)[2] for p in (box / "new").iterdir()) == KEPT
    assert all(p.name.endswith(":2,S") for p in (box / "cur").iterdir())

    after_first = scores(ws)
    assert after_first == {
        address: (1.0 if kind == "hard" else 0.5, kind) for kind, address in bounces
    }
    second = cli("bounces", "process", "Bounces", cwd=ws)
    assert second.out.splitlines()[-1].startswith(
        f"0 bounces counted (0 of them refusals from the send logs), {len(bounces)} already counted"
    )
    assert scores(ws) == after_first
    with SubscriberStore.at(ws / "hebdo.db") as store:
        assert {s.status for s in store.iter_subscribers()} == {"active"}  # one bounce each


def test_an_mbox_is_read_in_place_once(ws: Path, cli: Callable[..., Result]) -> None:
    import_readers(cli, ws, READERS)
    path = ws / "bounces.mbox"
    with path.open("wb") as handle:  # by hand: the mailbox module cannot write broken.eml
        for name in sorted(EXPECTED):
            raw = dated_today((CORPUS / name).read_bytes())
            quoted = re.sub(rb"(?m)^(>*From )", rb">\1", raw)
            handle.write(b"From MAILER-DAEMON Mon Dec  7 09:12:44 2026\n" + quoted + b"\n\n")
    before = path.read_bytes()
    first = cli("bounces", "process", "bounces.mbox", cwd=ws)
    second = cli("bounces", "process", "bounces.mbox", cwd=ws)
    counted = len([e for e in EXPECTED.values() if isinstance(e, tuple)])
    assert first.out.splitlines()[-1].startswith(f"{counted} bounces counted")
    assert second.out.splitlines()[-1].startswith(
        f"0 bounces counted (0 of them refusals from the send logs), {counted} already"
    )
    assert path.read_bytes() == before  # nothing removed from the admin's mailbox
    human = sorted(EXPECTED).index("human_reply.eml") + 1  # where the admin finds it
    assert f"bounces.mbox, message {human}: no delivery failure found in it" in first.err


def test_not_a_mailbox_is_one_line(ws: Path, cli: Callable[..., Result]) -> None:
    (ws / "folder").mkdir()
    result = cli("bounces", "process", "folder", cwd=ws)
    assert result.code == 1 and result.err.count("\n") == 1
    assert "folder" in result.err and "Maildir" in result.err
    missing = cli("bounces", "process", "nowhere.mbox", cwd=ws)
    assert missing.code == 1 and "nowhere.mbox: does not exist" in missing.err


def test_scores_count_once_a_day_expire_and_reach_the_threshold(tmp_path: Path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    days = {n: today - dt.timedelta(days=n) for n in (0, 1, 2, 3, 120)}
    policy_ = BounceSettings(threshold=3.0, expire_days=90)
    with SubscriberStore.at(tmp_path / "s.db", bounces=policy_) as store:
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

    with SubscriberStore.at(tmp_path / "s.db", bounces=BounceSettings(expire_days=2)) as store:
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
    assert "hard: 550 5.1.1 <ines.moreau@example.net>: mailbox unknown" in listing.out

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
    assert isinstance(parsed := analyse(raw, "retours"), Bounce) and parsed.verp
    processed = cli("bounces", "process", "Bounces", cwd=ws)
    assert processed.code == 0, processed.err
    assert scores(ws) == {"zoe.nguyen@example.fr": (1.0, "hard")}


def test_send_refusals_count_once_and_a_refused_sender_counts_for_nobody(
    ws: Path, cli: Callable[..., Result]
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

    # A CSV send with no store: the refusals are only in the send log.
    with SmtpServer(Recorder(hook=hook)) as server:
        result = send_through(cli, ws, server, "--subscribers", "list.csv")
    assert result.out.startswith("1 sent, 0 deferred, 2 failed")
    assert not (ws / "hebdo.db").exists()
    failed = [
        json.loads(line)
        for line in (ws / "logs" / f"{EXAMPLE_ISSUE}.jsonl").read_text().splitlines()
    ]
    assert {e["recipient"]: e["stage"] for e in failed if e["event"] == "failed"} == {
        "marc.dubois@example.net": "rcpt", "ines.moreau@example.net": "content",
    }  # fmt: skip

    # A bounce for a reader the store does not know is found through the send log too.
    box = make_maildir(ws / "Bounces")
    (box / "new" / "z").write_bytes(dsn_for("hebdo@example.org", "zoe.nguyen@example.fr"))
    swept = cli("bounces", "process", "Bounces", cwd=ws)
    assert swept.out.splitlines()[-1].startswith(
        "3 bounces counted (2 of them refusals from the send logs), 0 already counted"
    )
    assert scores(ws) == {
        "marc.dubois@example.net": (1.0, "hard"),
        "ines.moreau@example.net": (0.5, "soft"),  # a policy refusal: about the message
        "zoe.nguyen@example.fr": (1.0, "hard"),
    }
    again = cli("bounces", "process", "Bounces", cwd=ws)
    assert again.out.splitlines()[-1].startswith(
        "0 bounces counted (0 of them refusals from the send logs), 3 already"
    )

    # A relay refusing the sender itself (MAIL FROM) says nothing about the readers.
    shutil.rmtree(ws / "logs")
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


CORPUS_BYTES = [(CORPUS / name).read_bytes() for name in sorted(EXPECTED)]


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
    assert isinstance(result, Bounce | Ignored | Unreadable)
    if isinstance(result, Bounce):
        assert result.kind in ("hard", "soft") and len(result.reason) <= 300
