"""Compact tables keyed by address: what a send needs to know about each of a million readers
in about 20 bytes a reader, where a dict of strings would take some 150: the log's verdict on each
(``KeyTable``), and whether a list's row repeats an address met before (``SeenDigests``).

A key is known by its 128-bit BLAKE2b digest (two chances in 10^27 that two addresses of a
million-reader list share one), kept as two arrays of 64-bit halves sorted together with an
array of values, and looked up by bisection. Entries are added in any order, with a rule that
merges a key's value with the one it had; they are gathered in a small dict, spilled into 256
buckets by the digest's first byte, and each bucket is sorted on its own, so building never
holds more than a bucket's worth of Python objects.
"""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_left
from collections.abc import Callable

BUCKETS = 256
GATHER = 1 << 16  # distinct keys gathered in a dict before they are spilled into the buckets
LOW = (1 << 64) - 1
INDEXED = 1 << 14  # entries from which a table keeps an index of where each 16-bit prefix starts

Merge = Callable[[int, int], int]  # (the value so far, the value added) -> the new value


def key_digest(key: str) -> int:
    """The 128-bit digest a table knows ``key`` by."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=16).digest())


class KeyTable:
    """Address key -> a value (0 to 2^32 - 1), read-only; made by ``KeyTableBuilder``."""

    def __init__(self, high: array[int], low: array[int], values: array[int]) -> None:
        self.high, self.low, self.values = high, low, values
        # Where each value of the digest's first 16 bits starts: a lookup bisects a few entries
        # instead of the whole table (half a megabyte, for twice as fast a lookup). Worth its
        # 20 ms only for a large table: a small one (an empty log, a short list) is bisected whole.
        self.starts: array[int] | None = None
        if len(high) >= INDEXED:
            self.starts = array("q", (bisect_left(high, part << 48) for part in range(1 << 16)))
            self.starts.append(len(high))

    def __len__(self) -> int:
        return len(self.values)

    def get(self, key: str) -> int | None:
        return self.get_digest(key_digest(key)) if self.values else None

    def get_digest(self, digest: int) -> int | None:
        high, low = digest >> 64, digest & LOW
        if self.starts is None:
            index = bisect_left(self.high, high)
        else:
            part = high >> 48
            index = bisect_left(self.high, high, self.starts[part], self.starts[part + 1])
        while index < len(self.high) and self.high[index] == high:
            if self.low[index] == low:
                return self.values[index]
            index += 1
        return None


class KeyTableBuilder:
    """Gathers (key, value) pairs; a key added again has its values merged by ``merge`` in the
    order they were added (the default keeps the last). ``merge`` must be associative: a key's
    values are merged in groups (one per spill), then the groups."""

    def __init__(self, merge: Merge | None = None, *, gather: int = GATHER) -> None:
        self.merge = merge or (lambda _old, new: new)
        self.gather = gather
        self._gathered: dict[int, int] = {}
        self._buckets = [(array("Q"), array("Q"), array("I")) for _ in range(BUCKETS)]

    def add(self, key: str, value: int) -> None:
        self.add_digest(key_digest(key), value)

    def add_digest(self, digest: int, value: int) -> None:
        gathered = self._gathered
        old = gathered.get(digest)
        gathered[digest] = value if old is None else self.merge(old, value)
        if len(gathered) >= self.gather:
            self._spill()

    def _spill(self) -> None:
        for digest, value in self._gathered.items():
            high, low, values = self._buckets[digest >> 120]
            high.append(digest >> 64)
            low.append(digest & LOW)
            values.append(value)
        self._gathered = {}

    def build(self) -> KeyTable:
        """The table; the builder is empty afterwards."""
        self._spill()
        high, low, values = array("Q"), array("Q"), array("I")
        for number in range(BUCKETS):
            bucket = self._buckets[number]
            merged: dict[int, int] = {}
            for part_high, part_low, value in zip(*bucket, strict=True):
                digest = part_high << 64 | part_low
                old = merged.get(digest)
                merged[digest] = value if old is None else self.merge(old, value)
            self._buckets[number] = (array("Q"), array("Q"), array("I"))  # freed as we go
            for digest in sorted(merged):
                high.append(digest >> 64)
                low.append(digest & LOW)
                values.append(merged[digest])
        return KeyTable(high, low, values)


class SeenDigests:
    """Whether a digest came before, asked as a list streams: a set of digests kept as 96 of
    their bits in two arrays (open addressing, linear probing, at most 60% full), 12 bytes a
    slot where a Python set of ints takes some 70 a digest: 20 MB for a million addresses. Two
    addresses of a million-reader list share 96 bits once in 10^16 lists. Sized for
    ``expected`` entries and doubled when it fills up."""

    def __init__(self, expected: int = 0) -> None:
        self._make(max(1024, expected * 5 // 3 + 1))
        self.count = 0

    def _make(self, size: int) -> None:
        self.size = size
        self.high = array("Q", bytes(8 * size))  # 0: an empty slot (stored halves are odd)
        self.low = array("I", bytes(4 * size))

    def add(self, digest: int) -> bool:
        """Keep ``digest``; False when it was there already."""
        high, low = digest >> 64 | 1, digest & 0xFFFFFFFF
        highs, lows, size = self.high, self.low, self.size
        index = high % size
        while True:
            found = highs[index]
            if not found:
                break
            if found == high and lows[index] == low:
                return False
            index += 1
            if index == size:
                index = 0
        highs[index], lows[index] = high, low
        self.count += 1
        if self.count * 5 > size * 3:
            self._grow()
        return True

    def _grow(self) -> None:
        entries = [(high, low) for high, low in zip(self.high, self.low, strict=True) if high]
        self._make(2 * self.size)
        highs, lows, size = self.high, self.low, self.size
        for high, low in entries:
            index = high % size
            while highs[index]:
                index = index + 1 if index + 1 < size else 0
            highs[index], lows[index] = high, low
