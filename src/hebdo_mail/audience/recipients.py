"""Who an issue goes to: the rows of a CSV file given to ``send``, or the active subscribers of the
store, streamed in batches. Either way each recipient is a ``Recipient`` value.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import BinaryIO

from ..errors import HebdoError, display_path
from ..vocabulary import Status
from .addresses import address_key
from .keytable import KeyTableBuilder, key_digest
from .listfile import Rejected, read_subscribers
from .store import SubscriberStore

log = logging.getLogger(__name__)

# A checked row of a CSV list: email, name, lang, format (None: the default), attributes.
SpooledRow = tuple[str, str, str | None, str | None, dict[str, str]]


def temporary_file() -> BinaryIO:
    """A temporary file for a list kept on disk during a send (closed by its holder)."""
    try:
        return tempfile.TemporaryFile()
    except OSError as exc:
        raise spool_error(exc) from None


def spool_error(exc: OSError) -> HebdoError:
    """A list that could not be kept on disk for the send, in one line."""
    return HebdoError(
        f"the list could not be kept in {tempfile.gettempdir()} for the send ({exc.strerror}); "
        "make room there, or set TMPDIR to a folder with room, and run the command again"
    )


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str = ""
    lang: str | None = None
    format: str = "html"
    attributes: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def key(self) -> str:
        """What the send log and the store know this recipient by (asked several times for
        each message: worked out once)."""
        return address_key(self.email)


def keyed_recipient(key: str, row: SpooledRow) -> Recipient:
    """The recipient of a row (email, name, lang, format, attributes: a CSV list's checked row
    or the store's), with its address key already known (worked out when its batch was read)."""
    email, name, lang, fmt, attributes = row
    recipient = Recipient(
        email=email, name=name, lang=lang, format=fmt or "html", attributes=attributes
    )
    recipient.__dict__["key"] = key  # what cached_property would have kept
    return recipient


@dataclass(frozen=True)
class RecipientBatch:
    """Recipients of a source (up to a thousand or so), known first by their address keys: all
    the send log needs to decide who to mail. Only those chosen are read in full (``fetch``: the
    recipients at those positions, in order), so the readers a resume finds done, or those past
    a --limit, cost no row read."""

    keys: list[str]
    fetch: Callable[[list[int]], list[Recipient]]

    @classmethod
    def of(cls, recipients: list[Recipient]) -> RecipientBatch:
        """A batch of recipients already read in full."""
        return cls(
            [r.key for r in recipients], lambda positions: [recipients[i] for i in positions]
        )


class RecipientSource:
    """Recipients a batch at a time, that can also tell how many there are before sending
    starts."""

    description: str

    def batches(self) -> Iterator[RecipientBatch]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Recipient]:
        for batch in self.batches():
            yield from batch.fetch(list(range(len(batch.keys))))

    def __len__(self) -> int:
        raise NotImplementedError

    def address_keys(self) -> Iterator[str]:
        """Each recipient's address key, in order."""
        for batch in self.batches():
            yield from batch.keys

    def close(self) -> None:
        """Let go of what the source holds open."""


class CsvRecipients(RecipientSource):
    """Every row of the file is read and checked before anything is sent. The checked rows are
    kept as they are read, a batch at a time, in a temporary file (about 100 bytes a reader),
    and the send reads them back from there: a list of a million readers is never held in
    memory, nothing is parsed or checked twice, and the CSV file may be saved anew or edited
    during the send (this run mails the rows it checked). The check keeps a digest of each
    address only (audience/keytable.py), to find the repeated ones: a repeated address is mailed
    once, as its first row says. One reading at a time.
    """

    BATCH = 1024  # rows a pickled batch holds

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"file {path.name}"
        self._spool = temporary_file()
        try:
            self._count, self._repeated = self._check()
        except BaseException:
            self._spool.close()
            raise

    def _check(self) -> tuple[int, set[int]]:
        """The one pass over the file: (how many distinct addresses, the digests of the
        repeated ones); the rows kept in the spool."""
        counts = KeyTableBuilder(lambda before, after: before + after)
        first_bad: Rejected | None = None
        bad = 0
        batch: list[SpooledRow] = []
        for item in read_subscribers(self.path):
            if isinstance(item, Rejected):
                first_bad = first_bad or item
                bad += 1
                continue
            if item.warning:
                log.warning("%s:%d: %s", display_path(self.path), item.line, item.warning)
            counts.add(address_key(item.email), 1)
            if first_bad is None:  # after a bad row, only counting what else is wrong
                batch.append((item.email, item.name, item.lang, item.format, item.attributes))
                if len(batch) == self.BATCH:
                    self._keep(batch)
                    batch = []
        if first_bad is not None:
            more = f" (and {bad - 1} more bad rows)" if bad > 1 else ""
            raise HebdoError(
                f"{first_bad.reason}{more}; fix or remove these rows, nothing was sent",
                path=self.path,
                line=first_bad.line,
            )
        self._keep(batch)
        table = counts.build()
        return len(table), {digest for digest, count in table.items() if count > 1}

    def _keep(self, batch: list[SpooledRow]) -> None:
        try:
            if batch:
                pickle.dump(batch, self._spool, pickle.HIGHEST_PROTOCOL)
            self._spool.flush()
        except OSError as exc:
            raise spool_error(exc) from None

    def batches(self) -> Iterator[RecipientBatch]:
        first_rows: set[int] = set()
        self._spool.seek(0)
        while True:
            try:
                rows: list[SpooledRow] = pickle.load(self._spool)
            except EOFError:
                return
            except OSError as exc:
                raise spool_error(exc) from None
            keys, kept = [], []
            for row in rows:
                key = address_key(row[0])
                if self._repeated:
                    digest = key_digest(key)
                    if digest in self._repeated:
                        if digest in first_rows:
                            continue  # a repeated address is mailed once
                        first_rows.add(digest)
                keys.append(key)
                kept.append(row)
            yield RecipientBatch(keys, partial(_rows_at, keys, kept))

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        self._spool.close()


def _rows_at(keys: list[str], rows: list[SpooledRow], positions: list[int]) -> list[Recipient]:
    return [keyed_recipient(keys[i], rows[i]) for i in positions]


class StoreRecipients(RecipientSource):
    """The subscribers active when the run starts, read a batch at a time as the send reaches
    them, so memory does not grow with the list.

    Who the run counts is fixed at its start: their address keys, spooled to a temporary file
    (a million readers take some 25 MB of disk, none of memory) from one read transaction. A
    reader who leaves or is removed before their batch is read is still handed on, so the send
    logs them skipped instead of leaving them pending. ``marker`` is the store's change marker as
    of that moment, taken before the list is read. The list is read when first asked for: a
    shared ledger fills its queue in the database itself, and never asks. Given ``reopen`` (a
    second connection to the same store), a thread writes the spool while the send reads its
    first keys: the first message does not wait for the whole list.
    """

    def __init__(
        self, store: SubscriberStore, batch: int = 500,
        reopen: Callable[[], SubscriberStore] | None = None,
    ) -> None:  # fmt: skip
        self.description = "the subscriber store"
        self.store = store
        self.batch = batch
        self.reopen = reopen
        self.marker = store.change_marker()  # first: a change after it is seen as a change
        self._spool: KeySpool | None = None

    def _spooled(self) -> KeySpool:
        if self._spool is None:
            self._spool = KeySpool(self.store, self.reopen)
        return self._spool

    def _batches(self) -> Iterator[list[str]]:
        """The keys a batch at a time; the first batches small, so the first message waits
        for a few rows only."""
        keys: list[str] = []
        size = min(self.batch, 32)
        for key in self._spooled().written_keys():
            keys.append(key)
            if len(keys) == size:
                yield keys
                keys, size = [], min(self.batch, size * 2)
        if keys:
            yield keys

    def batches(self) -> Iterator[RecipientBatch]:
        for keys in self._batches():
            yield RecipientBatch(keys, partial(self._rows, keys))

    def _rows(self, keys: list[str], positions: list[int]) -> list[Recipient]:
        wanted = [keys[i] for i in positions]
        found = self.store.mailing_rows(wanted)
        # A reader removed from the list since the run began is handed on by address alone (the
        # send logs them skipped).
        return [keyed_recipient(key, found.get(key) or (key, "", None, None, {})) for key in wanted]

    def __len__(self) -> int:
        return self._spooled().count()

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()


class KeySpool:
    """The active subscribers' address keys, in id order, in a temporary file: read in one read
    transaction (the list as of its first read, however long the reading takes), by a thread on
    a connection of its own when ``reopen`` gives one, else at once on ``store``. Readers take
    the keys written so far and wait for the next ones."""

    CHUNK = 1 << 16  # bytes read at a time

    def __init__(
        self, store: SubscriberStore, reopen: Callable[[], SubscriberStore] | None
    ) -> None:
        self._file = temporary_file()
        self._changed = threading.Condition()
        self._written = 0  # bytes of whole lines in the file
        self._count: int | None = None
        self._done = False
        self._failure: BaseException | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        if reopen is None:
            self._fill(store)
        else:
            self._thread = threading.Thread(
                target=self._fill_anew, args=(reopen,), name="list", daemon=True
            )
            self._thread.start()

    def _fill_anew(self, reopen: Callable[[], SubscriberStore]) -> None:
        try:
            store = reopen()
        except BaseException as exc:  # told to whoever reads the list
            self._finish(exc)
            return
        try:
            self._fill(store)
        finally:
            store.close()

    def _fill(self, store: SubscriberStore) -> None:
        try:
            with store.snapshot():
                count = store.count(Status.ACTIVE)
                with self._changed:
                    self._count = count
                    self._changed.notify_all()
                for keys in store.keys_of(Status.ACTIVE):
                    if self._stopping:
                        break
                    data = "".join(f"{key}\n" for key in keys).encode()
                    self._file.write(data)
                    self._file.flush()
                    with self._changed:
                        self._written += len(data)
                        self._changed.notify_all()
        except OSError as exc:  # the temporary file (the store's errors are its own)
            self._finish(spool_error(exc))
            return
        except BaseException as exc:
            self._finish(exc)
            return
        self._finish(None)

    def _finish(self, failure: BaseException | None) -> None:
        with self._changed:
            self._failure = failure
            self._done = True
            self._changed.notify_all()

    def count(self) -> int:
        with self._changed:
            self._changed.wait_for(lambda: self._count is not None or self._done)
            if self._count is None:
                assert self._failure is not None
                raise self._failure
            return self._count

    def written_keys(self) -> Iterator[str]:
        """Every key, in order, as soon as it is written."""
        position, rest = 0, b""
        while True:
            with self._changed:
                self._changed.wait_for(self._past(position))
                if self._failure is not None:
                    raise self._failure
                available = self._written - position
            if not available:
                return
            try:
                chunk = os.pread(self._file.fileno(), min(available, self.CHUNK), position)
            except OSError as exc:
                raise spool_error(exc) from None
            position += len(chunk)
            *lines, rest = (rest + chunk).split(b"\n")
            for line in lines:
                yield line.decode()

    def _past(self, position: int) -> Callable[[], bool]:
        return lambda: self._written > position or self._done

    def close(self) -> None:
        self._stopping = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._file.close()
