"""Who an issue goes to: the rows of a CSV file given to ``send``, or the active subscribers of the
store, streamed in batches. Either way each recipient is a ``Recipient`` value.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HebdoError, display_path
from ..vocabulary import Status
from .addresses import address_key
from .listfile import CsvSubscriber, Rejected, read_subscribers
from .store import SubscriberStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str = ""
    lang: str | None = None
    format: str = "html"
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """What the send log and the store know this recipient by."""
        return address_key(self.email)


class RecipientSource:
    """An iterable of recipients that can also tell its size before sending starts."""

    description: str

    def __iter__(self) -> Iterator[Recipient]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class CsvRecipients(RecipientSource):
    """Every row of the file is read and checked before anything is sent."""

    def __init__(self, path: Path) -> None:
        self.description = f"file {path.name}"
        rows: list[CsvSubscriber] = []
        rejected: list[Rejected] = []
        seen: set[str] = set()
        for item in read_subscribers(path):
            if isinstance(item, Rejected):
                rejected.append(item)
                continue
            if item.warning:
                log.warning("%s:%d: %s", display_path(path), item.line, item.warning)
            if address_key(item.email) not in seen:  # a repeated address is mailed once
                seen.add(address_key(item.email))
                rows.append(item)
        if rejected:
            first = rejected[0]
            more = f" (and {len(rejected) - 1} more bad rows)" if len(rejected) > 1 else ""
            raise HebdoError(
                f"{first.reason}{more}; fix or remove these rows, nothing was sent",
                path=path,
                line=first.line,
            )
        self.recipients = [
            Recipient(
                email=row.email,
                name=row.name,
                lang=row.lang,
                format=row.format or "html",
                attributes=dict(row.attributes),
            )
            for row in rows
        ]

    def __iter__(self) -> Iterator[Recipient]:
        return iter(self.recipients)

    def __len__(self) -> int:
        return len(self.recipients)


class StoreRecipients(RecipientSource):
    """The subscribers active when the run starts, read a batch at a time as the send reaches
    them, so memory does not grow with the list.

    Who the run counts is fixed at the start (their address keys); a reader who leaves before
    their batch is read is still handed on, so the send logs them skipped instead of leaving
    them pending. ``marker`` is the store's change marker as of that moment.
    """

    def __init__(self, store: SubscriberStore, batch: int = 1000) -> None:
        self.description = "the subscriber store"
        self.store = store
        self.batch = batch
        self.marker = store.change_marker()  # first: a change after it is seen as a change
        self.keys = store.keys_of(Status.ACTIVE)

    def __iter__(self) -> Iterator[Recipient]:
        for start in range(0, len(self.keys), self.batch):
            chunk = self.keys[start : start + self.batch]
            found = self.store.existing(chunk)
            for key in chunk:
                subscriber = found.get(key)
                if subscriber is None:  # removed from the list since the run began
                    yield Recipient(email=key)
                    continue
                yield Recipient(
                    email=subscriber.email,
                    name=subscriber.name,
                    lang=subscriber.lang,
                    format=subscriber.format,
                    attributes=subscriber.attributes,
                )

    def __len__(self) -> int:
        return len(self.keys)
