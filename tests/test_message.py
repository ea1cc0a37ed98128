"""Building one recipient's message: headers, parts, tokens, and refusal of injected headers."""

from __future__ import annotations

import pytest

from hebdo_mail.audience.recipients import Recipient
from hebdo_mail.audience.tokens import TokenSigner
from hebdo_mail.deliver.message import MessageError, MessageFactory


@pytest.mark.parametrize("name", ["Anne\r\nBcc: victim@example.org", "Anne\nX-Evil: 1", "Anne\rB"])
def test_a_line_break_in_a_header_value_is_refused(factory: MessageFactory, name: str) -> None:
    with pytest.raises(MessageError) as caught:
        factory.message_bytes(Recipient(email="anne@example.org", name=name))
    assert "anne@example.org" in str(caught.value) and "line break" in str(caught.value)


def test_tokens_are_bound_to_the_address_and_the_list(factory: MessageFactory) -> None:
    signer = factory.signer
    token = signer.token("anne@example.org")
    assert signer.verify(token) == "anne@example.org"
    assert signer.verify(token, purpose="confirm") is None
    other_list = TokenSigner(b"a test secret of enough length", "another.example.org")
    assert other_list.verify(token) is None
    _, mac = token.split(".")
    forged = signer.token("bob@example.org").split(".")[0] + "." + mac
    assert signer.verify(forged) is None
    for broken in (token[:-2], token + "x", "", ".", "a.b.c", token.replace(".", "")):
        assert signer.verify(broken) is None


def test_message_id_is_stable_per_reader_and_distinct_between_readers(
    factory: MessageFactory,
) -> None:
    anne, bob = Recipient(email="anne@example.org"), Recipient(email="bob@example.org")
    assert factory.message_id(anne) == factory.message_id(anne) != factory.message_id(bob)


def test_language_falls_back_to_the_base_then_the_default(factory: MessageFactory) -> None:
    assert factory.edition_label(Recipient(email="a@example.org", lang="fr-BE")) == "fr/html"
    assert (
        factory.edition_label(Recipient(email="a@example.org", lang="de", format="text"))
        == "fr/text"
    )
