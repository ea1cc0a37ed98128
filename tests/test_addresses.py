"""When two written addresses are one: the same text in Unicode's composed or decomposed form, or
in another case, is one address; letters that only casefold() equates are two. And a store written
before, with rows that are now one address, is merged on opening, the most restrictive status kept."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest

from hebdo_mail.audience.addresses import address_key, normalise_address
from hebdo_mail.audience.database import SqliteDatabase
from hebdo_mail.audience.store import MIGRATIONS, SubscriberStore
from hebdo_mail.audience.tokens import TokenSigner

from .helpers import Result

NFC_JOSE = unicodedata.normalize("NFC", "josé")
NFD_JOSE = unicodedata.normalize("NFD", "josé")


def test_unicode_forms_and_case_make_one_address_and_casefold_alone_does_not() -> None:
    one = [f"{NFC_JOSE}@example.org", f"{NFD_JOSE}@example.org", "JOSÉ@EXAMPLE.ORG",
           f"{NFD_JOSE.upper()}@Example.org"]  # fmt: skip
    assert {address_key(normalise_address(a)) for a in one} == {f"{NFC_JOSE}@example.org"}
    assert normalise_address(f"{NFD_JOSE}@example.org") == f"{NFC_JOSE}@example.org"
    for first, second in [("straße", "strasse"), ("ﬁx", "fix"), ("STRASSE", "straße")]:
        keys = {address_key(normalise_address(f"{local}@example.org")) for local in (first, second)}
        assert len(keys) == 2, (first, second)
    # The Kelvin sign is canonically the letter K (NFC turns one into the other): one address.
    assert normalise_address("\u212aelvin@example.org") == "Kelvin@example.org"
    assert normalise_address("josé@BÜCHER.de") == f"{NFC_JOSE}@xn--bcher-kva.de"


def test_an_import_keeps_what_casefold_merged_apart(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    rows = [f"{NFC_JOSE}@example.org", f"{NFD_JOSE}@example.org", "straße@example.org",
            "strasse@example.org", "ﬁne@example.org", "fine@example.org"]  # fmt: skip
    (workspace / "list.csv").write_text("email\n" + "\n".join(rows) + "\n", encoding="utf-8")
    result = cli("subscribers", "import", "list.csv", cwd=workspace)
    assert result.out.startswith("added 5, updated 0, unchanged 0, rejected 0 (1 duplicate row")


def test_a_token_fits_its_address_only() -> None:
    signer = TokenSigner(b"a secret for the tests only.....", "list.example.org")
    genuine = signer.token("strasse@example.org")
    moved = signer.token("straße@example.org").split(".")[0] + "." + genuine.split(".")[1]
    assert signer.verify(genuine) == "strasse@example.org" and signer.verify(moved) is None


def insert(db: SqliteDatabase, email: str, key: str, status: str, **values: object) -> None:
    columns = {"name": "", "created_at": "2026-01-01T00:00:00+00:00",
               "updated_at": "2026-01-01T00:00:00+00:00", **values}  # fmt: skip
    names = ", ".join(["email", "email_key", "status", *columns])
    marks = ", ".join("?" * (3 + len(columns)))
    db.execute(f"INSERT INTO subscribers ({names}) VALUES ({marks})", (email, key, status, *columns.values()))  # fmt: skip


def test_opening_an_older_store_merges_rows_that_are_now_one_address(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "hebdo.db"
    before = MIGRATIONS.index(next(m for m in MIGRATIONS if callable(m)))
    old = SqliteDatabase(path, create=True, migrations=MIGRATIONS[:before])
    # As the earlier version keyed them: casefold(), the local part as typed.
    insert(old, f"{NFC_JOSE}@example.org", f"{NFC_JOSE}@example.org", "active", name="José",
           attributes='{"city": "Liège"}')  # fmt: skip
    insert(old, f"{NFD_JOSE}@example.org", f"{NFD_JOSE}@example.org", "unsubscribed",
           unsubscribed_at="2026-03-01T00:00:00+00:00", attributes='{"team": "B"}')  # fmt: skip
    insert(old, "Straße@example.org", "strasse@example.org", "active", name="Grete")
    insert(old, "ines@example.org", "ines@example.org", "bounced", bounce_score=3)
    old.db.commit()
    old.close()

    with caplog.at_level(logging.WARNING), SubscriberStore.at(path) as store:
        readers = {s.email: s for s in store.iter_subscribers()}
        jose = store.get(f"{NFD_JOSE}@example.org")
        grete = store.get("STRASSE@example.org")
        straße = store.get("straße@example.org")
    assert set(readers) == {f"{NFC_JOSE}@example.org", "Straße@example.org", "ines@example.org"}
    assert jose is not None and (jose.status, jose.name) == ("unsubscribed", "José")
    assert jose.unsubscribed_at == "2026-03-01T00:00:00+00:00"
    assert jose.attributes == {"city": "Liège", "team": "B"}
    assert grete is None and straße is not None and straße.name == "Grete"
    assert readers["ines@example.org"].status == "bounced"
    merged = [r.getMessage() for r in caplog.records if "one address" in r.getMessage()]
    assert merged == [
        f"{path}: '{NFC_JOSE}@example.org' and '{NFD_JOSE}@example.org' are one address; "
        "merged into one subscriber, unsubscribed"
    ]
