"""The compact tables a send keeps about each reader: what goes in comes back, merged in the
order it was added, whatever the spills into buckets along the way."""

from __future__ import annotations

import random

import pytest

from hebdo_mail.audience.keytable import INDEXED, KeyTableBuilder, SeenDigests, key_digest


def count_and_last(before: int, after: int) -> int:
    """As the send log's replay merges: how many (which add up), and the last one."""
    return (before // 16 + after // 16) * 16 + after % 16


@pytest.mark.parametrize("size", [5000, INDEXED + 5000], ids=["bisected whole", "indexed"])
def test_values_come_back_merged_in_the_order_they_were_added(size: int) -> None:
    keys = [f"reader{i}@example{i % 7}.org" for i in range(size)]
    rng = random.Random(22)
    added = [(key, 16 + rng.randrange(16)) for key in keys * 3 if rng.random() < 0.8]
    rng.shuffle(added)
    # A small gathering dict: the same key lands in several spills, merged across them.
    builder = KeyTableBuilder(count_and_last, gather=97)
    expected: dict[str, int] = {}
    for key, value in added:
        builder.add(key, value)
        expected[key] = count_and_last(expected[key], value) if key in expected else value
    table = builder.build()
    assert len(table) == len(expected) and (table.starts is not None) == (size >= INDEXED)
    assert {key: table.get(key) for key in expected} == expected
    assert table.get("nobody@example.org") is None
    digests = [high << 64 | low for high, low in zip(table.high, table.low, strict=True)]
    assert digests == sorted(digests) and len(set(digests)) == len(expected)
    stored = dict(zip(digests, table.values, strict=True))
    assert stored == {key_digest(key): value for key, value in expected.items()}


def test_the_last_value_wins_by_default_and_an_empty_table_knows_nobody() -> None:
    builder = KeyTableBuilder(gather=2)
    for value, key in enumerate(["a@x.org", "b@x.org", "a@x.org", "c@x.org", "a@x.org"]):
        builder.add(key, value)
    table = builder.build()
    assert (table.get("a@x.org"), table.get("b@x.org"), table.get("c@x.org")) == (4, 1, 3)
    empty = KeyTableBuilder().build()
    assert len(empty) == 0 and empty.get("a@x.org") is None


@pytest.mark.parametrize("expected", [0, 30_000], ids=["grown from the smallest", "sized first"])
def test_seen_digests_say_first_time_once_per_digest_as_a_set_would(expected: int) -> None:
    rng = random.Random(7)
    keys = [f"reader{rng.randrange(20_000)}@example.org" for _ in range(30_000)]
    # Digests alike in the bits that pick a slot, told apart by the rest: they probe past each
    # other, and round the end of the table.
    size = 1024 if expected == 0 else 30_000 * 5 // 3 + 1
    crowded = [((size - 1 + size * n) << 64) | n for n in range(1, 50)]
    seen = SeenDigests(expected)
    known: set[tuple[int, int]] = set()
    for digest in [key_digest(key) for key in keys] + crowded + crowded:
        kept = (digest >> 64 | 1, digest & 0xFFFFFFFF)  # the 96 bits kept
        assert seen.add(digest) is (kept not in known)
        known.add(kept)
    assert seen.count == len(known) and seen.count * 5 <= seen.size * 3
