"""The fast path (editions prepared once in DATA form, personal lines spliced in) against the
reference path (an EmailMessage per recipient): same headers, same decoded parts, for any name
and attributes a list can hold."""

from __future__ import annotations

import html
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hebdo_mail.audience.addresses import MAX_NAME_LENGTH
from hebdo_mail.audience.recipients import Recipient
from hebdo_mail.deliver.message import MessageFactory
from hebdo_mail.deliver.wireformat import END_OF_DATA, from_wire, to_wire


def parsed(data: bytes) -> EmailMessage:
    return message_from_bytes(data, policy=policy.default)


def comparable_headers(message: EmailMessage) -> list[tuple[str, str]]:
    result = []
    for name, value in message.items():
        if name in ("Date",):
            continue
        if name == "Content-Type":
            value = message.get_content_type() + ";" + str(message.get_param("charset"))
        result.append((name, str(value)))
    return result


def leaves(message: EmailMessage) -> list[tuple[str, str]]:
    return [
        (part.get_content_type(), part.get_content())
        for part in message.walk()
        if not part.is_multipart()
    ]


def check_equivalent(factory: MessageFactory, recipient: Recipient) -> tuple[EmailMessage, bytes]:
    wire = factory.wire(recipient)
    assert wire.endswith(b"\r\n" + END_OF_DATA)
    lines = wire.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    assert all(
        not line.startswith(b".") or line.startswith(b"..") or line == b"." for line in lines
    )
    fast = parsed(from_wire(wire))
    reference = parsed(factory.reference_bytes(recipient))
    assert comparable_headers(fast) == comparable_headers(reference)
    assert leaves(fast) == leaves(reference)
    assert fast["Message-ID"] == factory.message_id(recipient)
    return fast, wire


@pytest.mark.parametrize("fmt", ["html", "text"])
@pytest.mark.parametrize(
    ("name", "city"),
    [
        ("Hélène Lefèvre", "Liège"),
        ("Kowalski, Anna", "Kraków"),
        ('Jack "the reader" O\'Connor', "Dublin = 1"),
        ("Zoé 📰 Nguyễn", "עִיר"),
        ("", ""),
        ("{{ 7*7 }} <b>x</b>", "<script>alert(1)</script>"),
        ("a" * MAX_NAME_LENGTH, "=" * 3000),
        (".leading dot", ".\r\n.\r\nQUIT"),
    ],
)
def test_fast_path_matches_reference(
    factory: MessageFactory, name: str, city: str, fmt: str
) -> None:
    recipient = Recipient(
        email="reader@example.org", name=name, lang="fr", format=fmt, attributes={"city": city}
    )
    fast, _ = check_equivalent(factory, recipient)
    text = dict(leaves(fast))["text/plain"]
    if "\n" not in city and "\r" not in city:
        assert f"Pour {name} ({city})" in text
    if fmt == "html":
        body = dict(leaves(fast))["text/html"]
        assert (
            f"Pour {html.escape(name)} ({html.escape(city)})" in body.replace("\n", "\r\n")
            or "\r" in city
        )


def test_messages_round_trip_through_the_wire_form(factory: MessageFactory) -> None:
    recipient = Recipient(email="reader@example.org", name="Anne", attributes={"city": ".\n..\n."})
    data = factory.message_bytes(recipient)
    assert to_wire(data) == factory.wire(recipient)


def test_non_ascii_address_uses_utf8_headers(factory: MessageFactory) -> None:
    check_equivalent(
        factory, Recipient(email="josé@xn--bcher-kva.de", name="José", attributes={"city": "Bonn"})
    )


names = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=MAX_NAME_LENGTH
).map(str.strip)
attributes = st.text(st.characters(exclude_categories=["Cs"]), max_size=1500)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=names, city=attributes, fmt=st.sampled_from(["html", "text"]))
def test_any_name_and_attribute_give_the_same_message(
    factory: MessageFactory, name: str, city: str, fmt: str
) -> None:
    recipient = Recipient(
        email="reader@example.org", name=name, format=fmt, attributes={"city": city}
    )
    fast, _ = check_equivalent(factory, recipient)
    to = fast["To"].addresses[0]
    assert (to.display_name, to.addr_spec) == (name, "reader@example.org")
    if not any(c in city for c in "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"):
        assert f"Pour {name} ({city})" in dict(leaves(fast))["text/plain"]
