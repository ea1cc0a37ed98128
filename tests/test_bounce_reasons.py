"""How a failed recipient's reason is decided (as Sisimai decides it): the SMTP command refused,
"user unknown" as a filter's answer, domains taking no mail, the tables of mail systems and
receiving servers, local delivery programs, and Dovecot's rejections sent as disposition
notices. Pure: messages in, failures out."""

from __future__ import annotations

import pytest

from hebdo_mail.audience import mail_systems
from hebdo_mail.audience.dsn import find_command
from hebdo_mail.audience.failures import Said, failure_of, refusal
from hebdo_mail.audience.returned_mail import Bounce, Ignored, analyse
from hebdo_mail.vocabulary import BounceReason


def reason_and_kind(said: Said) -> tuple[str, str]:
    failure = failure_of(said)
    return str(failure.reason), str(failure.kind)


@pytest.mark.parametrize(
    ("diagnostic", "status", "expected"),
    [
        ("550 5.1.1 <lea@example.net>: user unknown", "", ("userunknown", "hard")),
        ("550 <lea@example.net>: User unknown (in reply to RCPT TO command)", "",
         ("userunknown", "hard")),
        ("550 <lea@example.net>: User unknown (in reply to end of DATA command)", "",
         ("filtered", "soft")),
        ("550 <lea@example.net>: User unknown", "", ("filtered", "soft")),
        ("550 No such user here", "5.0.0", ("filtered", "soft")),
        ("550 5.2.1 mailbox disabled, not accepting messages", "", ("suspend", "soft")),
    ],
)  # fmt: skip
def test_user_unknown_is_hard_only_with_a_5_1_code_or_in_answer_to_rcpt(
    diagnostic: str, status: str, expected: tuple[str, str]
) -> None:
    assert reason_and_kind(Said("lea@example.net", diagnostic, status)) == expected


@pytest.mark.parametrize(
    ("diagnostic", "kind"),
    [
        ("556 5.1.10 <tom@example.com>: Recipient address rejected: Domain does not accept mail "
         "(null MX)", "hard"),
        ("521 5.3.2 example.com does not accept mail", "hard"),
        ("432 4.3.2 System not accepting network messages, try again later", "soft"),
    ],
)  # fmt: skip
def test_a_domain_taking_no_mail_is_hard_unless_the_refusal_is_temporary(
    diagnostic: str, kind: str
) -> None:
    assert reason_and_kind(Said("tom@example.com", diagnostic)) == ("notaccept", kind)


@pytest.mark.parametrize(
    ("text", "recipient", "command"),
    [
        ("550 5.7.1 refused (in reply to end of DATA command)", "", "DATA"),
        ("SMTP error from remote mail server after RCPT TO:<a@example.org>: 550 gone", "", "RCPT"),
        ("Connected to 192.0.2.7 but sender was rejected.", "", "MAIL"),
        ("host refused to talk to me: 554 go away", "", "HELO"),
        ("550 5.1.1 <a@example.org>... User Unknown [RCPT_TO]", "", "RCPT"),
        ("550 5.1.1 mailbox unknown", "", ""),
    ],
)  # fmt: skip
def test_the_smtp_command_is_found_as_mail_systems_write_it(
    text: str, recipient: str, command: str
) -> None:
    assert find_command((text,), "", recipient) == command


def test_a_transcript_gives_the_command_sent_before_the_recipients_reply() -> None:
    transcript = (
        "While talking to mx.example.org:\n>>> MAIL From:<hebdo@example.com>\n"
        "<<< 501 <hebdo@example.com>... sender refused\n554 <ana@example.org>... refused\n"
        "While talking to mx.example.net:\n>>> RCPT To:<ben@example.net>\n"
        "<<< 550 <ben@example.net>... User unknown\n"
    )
    assert find_command(("554 refused",), transcript, "ana@example.org") == "MAIL"
    assert find_command(("550 User unknown",), transcript, "ben@example.net") == "RCPT"


def test_a_receiving_servers_own_table_decides_for_its_domain() -> None:
    # Orange's codes: OFR_416 is an unknown mailbox there, and means nothing elsewhere.
    words = "550 5.5.0 Adresse destinataire invalide. Invalid recipient. OFR_416 [416]"
    assert reason_and_kind(Said("zoe@orange.fr", words)) == ("userunknown", "hard")
    assert reason_and_kind(Said("zoe@example.org", words))[1] == "soft"
    # KDDI answers "550 : User unknown" from a filter, "550 <address>: User unknown" otherwise.
    assert reason_and_kind(Said("kei@ezweb.ne.jp", "550 : User unknown"))[0] == "filtered"
    assert reason_and_kind(Said("kei@ezweb.ne.jp", "550 <kei@ezweb.ne.jp>: User unknown")) == (
        "userunknown",
        "hard",
    )
    # Or the server named in the report: Microsoft's 5.1.10 is an unknown recipient there.
    said = Said("max@example.com", "550 5.1.10 Recipient not found by SMTP address lookup")
    assert reason_and_kind(said) == ("filtered", "soft")
    named = Said(
        said.recipient, said.diagnostic, remote_host="example-com.mail.protection.outlook.com"
    )
    assert reason_and_kind(named) == ("userunknown", "hard")


def test_a_local_delivery_program_failing_is_no_unknown_user() -> None:
    said = Said(
        "max@example.com", 'procmail: Couldn\'t create "/var/mail/max": No such user', "5.1.1",
        diagnostic_type="x-unix",
    )  # fmt: skip
    assert reason_and_kind(said) == ("mailererror", "soft")


SES_RECEIVING = """\
From: MAILER-DAEMON@email-smtp.example.com
To: bounces@example.org
Subject: Delivery Status Notification (Failure)
X-SES-Outgoing: 2026.12.07-192.0.2.10
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

This message could not be delivered.

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; inbound-smtp.example.com

Final-Recipient: rfc822; nina@example.com
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 Mailbox does not exist

--b--
"""


def test_a_mail_systems_own_word_comes_first() -> None:
    # Amazon SES receiving says "Mailbox does not exist" of a mailbox its filter turned away.
    ses = analyse(SES_RECEIVING.encode(), "bounces")
    plain = analyse(SES_RECEIVING.replace("X-SES-Outgoing", "X-Other").encode(), "bounces")
    assert isinstance(ses, Bounce) and isinstance(plain, Bounce)
    assert [(f.reason, f.kind) for f in ses.failures] == [("filtered", "soft")]
    assert [(f.reason, f.kind) for f in plain.failures] == [("userunknown", "hard")]


DOVECOT_NOTICE = """\
From: Mail Delivery Subsystem <MAILER-DAEMON@mail.example.net>
To: bounces@example.org
Subject: Automatically rejected mail
Auto-Submitted: auto-replied (rejected)
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification; boundary="n"

--n
Content-Type: text/plain; charset=utf-8

Your message to <oscar@example.net> was automatically rejected:
Quota exceeded (mailbox for user is full)
--n
Content-Type: message/disposition-notification

Reporting-UA: mail.example.net; Dovecot Mail Delivery Agent
Final-Recipient: rfc822; oscar@example.net
Disposition: automatic-action/MDN-sent-automatically; {disposition}

--n--
"""


def test_a_rejection_sent_as_a_disposition_notice_is_a_bounce_a_read_receipt_is_not() -> None:
    rejected = analyse(DOVECOT_NOTICE.format(disposition="deleted").encode(), "bounces")
    assert isinstance(rejected, Bounce)
    assert [(f.recipient, f.reason) for f in rejected.failures] == [
        ("oscar@example.net", "mailboxfull")
    ]
    read = analyse(DOVECOT_NOTICE.format(disposition="displayed").encode(), "bounces")
    assert isinstance(read, Ignored)


def test_every_table_of_systems_and_servers_is_usable() -> None:
    systems, hosts = mail_systems.tables()
    assert len(systems) >= 30 and len(hosts) >= 10
    assert all(s.when and s.rules for s in systems if s.name != "activehunter")
    assert all(h.hosts and h.rules for h in hosts)
    reasons = {r.reason for table in systems + hosts for r in table.rules}
    assert BounceReason.USER_UNKNOWN in reasons and BounceReason.COMPLAINT not in reasons


def test_a_refusal_during_a_send_is_read_with_the_recipients_server_table() -> None:
    reply = "5.5.0 Adresse destinataire invalide. Invalid recipient. OFR_416 [416]"
    at_orange = refusal(550, "content", reply, "zoe@orange.fr")
    elsewhere = refusal(550, "content", reply, "zoe@example.org")
    assert at_orange is not None and elsewhere is not None
    assert (at_orange.reason, at_orange.kind) == ("userunknown", "hard")
    assert (elsewhere.reason, elsewhere.kind) == ("filtered", "soft")  # after the data
    assert refusal(550, "mail", reply, "zoe@orange.fr") is None  # a refused sender: no one's
