"""Who an issue goes to: the rows of a CSV file given to ``send``, or the active subscribers of the
store, streamed in batches. Either way each recipient is a ``Recipient`` value.
"""

from __future__ import annotations

import itertools
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
from .batching import growing_sizes
from .keytable import SeenDigests, key_digest
from .listfile import Rejected, count_data_lines, read_subscribers
from .store import MailingRow, SubscriberStore

log = logging.getLogger(__name__)


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


def keyed_recipient(key: str, row: MailingRow) -> Recipient:
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
    starts (exactly, or as an upper bound: ``expected_total``)."""

    description: str

    def batches(self) -> Iterator[RecipientBatch]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Recipient]:
        for batch in self.batches():
            yield from batch.fetch(list(range(len(batch.keys))))

    def __len__(self) -> int:
        raise NotImplementedError

    def expected_total(self) -> int:
        """How many recipients the list holds, as far as is known before reading it."""
        return len(self)

    def read_total(self) -> int | None:
        """How many it held, when only reading it through told (None: ``expected_total`` was
        exact)."""
        return None

    @property
    def rest_cheap_to_count(self) -> bool:
        """Whether the readers a stopped send leaves cost little to count (their keys are at
        hand, not rows to read and check)."""
        return True

    def address_keys(self) -> Iterator[str]:
        """Each recipient's address key, in order."""
        for batch in self.batches():
            yield from batch.keys

    def close(self) -> None:
        """Let go of what the source holds open."""


class CsvRecipients(RecipientSource):
    """The rows of a CSV file, checked as they are read, a batch at a time: the first message
    leaves as soon as the first rows are checked, and a list of a million readers is never held
    in memory. A repeated address is mailed once, as its first row says (only a digest of each
    address is kept to know it: audience/keytable.py). A bad row is reported with its line
    (``bad_rows``) and not mailed; the others are. A file that cannot be read on (a broken
    quote, a byte that is no text) stops the reading with one line naming where.

    How many readers the list holds is known once it has been read through. A command that
    must say it before sending (the confirmation question, the resume of an edited issue, a
    shared ledger's queue) reads it through first (``read_through``): the checked rows are kept
    in a temporary file (about 100 bytes a reader), which the send reads back, so nothing is
    checked twice. Otherwise the send reads the file as it goes, and ``expected_total`` counts
    its lines instead.
    """

    BATCH = 1024  # rows a batch holds (the first ones fewer: the first message waits for few)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"file {path.name}"
        self.bad_rows = 0  # bad rows, reported as they are met
        self.count: int | None = None  # distinct readers, once the file is read through
        self._lines = count_data_lines(path)
        self._rows = read_subscribers(path)
        self._first = next(self._rows, None)  # the encoding and header are checked now
        self._spool: BinaryIO | None = None
        self._read_started = False

    def _checked(self) -> Iterator[tuple[list[str], list[MailingRow]]]:
        """The one reading of the file: each batch's address keys and rows, repeated
        addresses and bad rows left out (bad rows reported)."""
        if self._read_started:
            raise RuntimeError("a CSV list is read once")
        self._read_started = True
        seen = SeenDigests(self._lines)
        keys: list[str] = []
        rows: list[MailingRow] = []
        sizes = growing_sizes(32, self.BATCH)
        size = next(sizes)
        for item in itertools.chain([self._first] if self._first else [], self._rows):
            if isinstance(item, Rejected):
                self.bad_rows += 1
                log.warning(
                    "%s:%d: not mailed: %s", display_path(self.path), item.line, item.reason
                )
                continue
            if item.warning:
                log.warning("%s:%d: %s", display_path(self.path), item.line, item.warning)
            key = address_key(item.email)
            if not seen.add(key_digest(key)):
                continue  # a repeated address is mailed once
            keys.append(key)
            rows.append((item.email, item.name, item.lang, item.format, item.attributes))
            if len(keys) == size:
                yield keys, rows
                keys, rows, size = [], [], next(sizes)
        if keys:
            yield keys, rows
        self.count = seen.count

    def read_through(self) -> None:
        """Read and check the whole file before anything is sent, keeping the checked rows."""
        if self._spool is not None:
            return
        spool = temporary_file()
        try:
            for batch in self._checked():
                _keep(spool, batch)
            _keep(spool, None)  # flushed: read back from disk
        except BaseException:
            spool.close()
            raise
        self._spool = spool

    def batches(self) -> Iterator[RecipientBatch]:
        for keys, rows in self._spooled() if self._spool is not None else self._checked():
            yield RecipientBatch(keys, partial(_rows_at, keys, rows))

    def _spooled(self) -> Iterator[tuple[list[str], list[MailingRow]]]:
        assert self._spool is not None
        self._spool.seek(0)
        while True:
            try:
                yield pickle.load(self._spool)
            except EOFError:
                return
            except OSError as exc:
                raise spool_error(exc) from None

    @property
    def rest_cheap_to_count(self) -> bool:
        return self._spool is not None

    def address_keys(self) -> Iterator[str]:
        self.read_through()
        return super().address_keys()

    def __len__(self) -> int:
        """The readers to mail (bad rows are not)."""
        self.read_through()
        assert self.count is not None
        return self.count

    def expected_total(self) -> int:
        """The readers of the list, bad rows included (still to be mailed, once fixed); before
        the file is read through, its lines (as many as its rows, or more)."""
        total = self.read_total()
        return self._lines if total is None else total

    def read_total(self) -> int | None:
        """The readers of the list, bad rows included (they are still to be mailed, once
        fixed): known once the file has been read through."""
        return None if self.count is None else self.count + self.bad_rows

    def close(self) -> None:
        self._rows.close()
        if self._spool is not None:
            self._spool.close()


def _keep(spool: BinaryIO, batch: tuple[list[str], list[MailingRow]] | None) -> None:
    """A batch of checked rows written to the spool (None: what was written, flushed), a full
    disk said in one line."""
    try:
        if batch is None:
            spool.flush()
        else:
            pickle.dump(batch, spool, pickle.HIGHEST_PROTOCOL)
    except OSError as exc:
        raise spool_error(exc) from None


def _rows_at(keys: list[str], rows: list[MailingRow], positions: list[int]) -> list[Recipient]:
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
        sizes = growing_sizes(32, self.batch)
        size = next(sizes)
        for key in self._spooled().written_keys():
            keys.append(key)
            if len(keys) == size:
                yield keys
                keys, size = [], next(sizes)
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
