"""Batch sizes for reading a long list while a send waits for its first rows."""

from __future__ import annotations

from collections.abc import Iterator


def growing_sizes(first: int, most: int) -> Iterator[int]:
    """``first``, then doubling up to ``most`` and staying there: whoever waits for the first
    rows gets them after a few, and the rest comes in large batches."""
    size = min(first, most)
    while True:
        yield size
        size = min(most, size * 2)
