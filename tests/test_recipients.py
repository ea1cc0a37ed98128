"""Who an issue goes to, read as the send goes: a CSV list checked as it streams (or read through
first, its rows kept on disk), the store's list fixed at the start on disk; neither ever held in
memory."""

from __future__ import annotations

import errno
import io
import os
import tempfile
from pathlib import Path
from typing import Any, cast

import pytest

from hebdo_mail.audience.database import StoreError
from hebdo_mail.audience.recipients import (
    CsvRecipients,
    RecipientBatch,
    RecipientSource,
    StoreRecipients,
)
from hebdo_mail.audience.store import SubscriberStore
from hebdo_mail.deliver.message import MessageFactory
from hebdo_mail.deliver.selection import SendOptions
from hebdo_mail.deliver.send import Sender
from hebdo_mail.deliver.sendlog import LogWriter, NullLog, read_log
from hebdo_mail.deliver.transport import NullTransport
from hebdo_mail.errors import HebdoError
from hebdo_mail.vocabulary import Event


def write(path: Path, rows: list[str]) -> Path:
    path.write_text("email,name,city\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_a_csv_list_is_streamed_as_checked_each_address_once_or_read_through_first(
    tmp_path: Path,
) -> None:
    rows = [f"reader{i}@example.org,Reader {i},Ville {i % 3}" for i in range(2500)]
    rows.insert(10, "READER7@Example.org,Someone else,Elsewhere")  # the same address again
    rows.append("reader42@example.org,Later,Later")
    path = write(tmp_path / "list.csv", rows)
    expected = [f"reader{i}@example.org" for i in range(2500)]
    streamed = CsvRecipients(path)
    try:
        assert streamed.expected_total() == 2502  # the file's lines, before it is read
        batches = streamed.batches()
        first = next(batches)
        assert len(first.keys) == 32 and streamed.read_total() is None  # read as it goes
        recipients = first.fetch(list(range(32))) + [
            r for batch in batches for r in batch.fetch(list(range(len(batch.keys))))
        ]
        assert [r.email for r in recipients] == expected
        assert recipients[7].name == "Reader 7" and recipients[42].name == "Reader 42"
        assert recipients[5].attributes == {"city": "Ville 2"}
        assert streamed.read_total() == 2500
        with pytest.raises(RuntimeError):
            list(streamed)  # a file streamed is not read twice
    finally:
        streamed.close()
    counted = CsvRecipients(path)
    try:
        assert len(counted) == 2500 == counted.expected_total()  # read through first
        for _ in range(2):  # each reading gives the rows checked, the same way
            assert [r.email for r in counted] == expected
        assert list(counted.address_keys()) == expected
    finally:
        counted.close()


def test_bad_rows_are_reported_with_their_lines_and_left_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = ["ok@example.org,Fine,x", "not-an-address,Bad,x", "also bad,Bad,x", "b@example.org,,y"]
    source = CsvRecipients(write(tmp_path / "list.csv", rows))
    try:
        assert [r.email for r in source] == ["ok@example.org", "b@example.org"]
        assert source.bad_rows == 2 and source.read_total() == 4  # still to be mailed, once fixed
    finally:
        source.close()
    reported = [r.getMessage() for r in caplog.records]
    counted = CsvRecipients(tmp_path / "list.csv")
    try:  # read through first: the question counts those it will mail
        assert len(counted) == 2 and counted.expected_total() == 4
    finally:
        counted.close()
    where = str(tmp_path / "list.csv")
    assert [line.split(": ")[0] for line in reported] == [f"{where}:3", f"{where}:4"]
    assert all(": not mailed: " in line for line in reported)


def test_a_list_saved_anew_during_the_send_changes_nothing_and_one_written_over_stops_it(
    tmp_path: Path,
) -> None:
    rows = [f"reader{i}@example.org,R{i},x" for i in range(5000)]
    path = write(tmp_path / "list.csv", rows)
    source = CsvRecipients(path)
    try:
        # Saved anew (a new file under the same name): this run goes on with the file it opened.
        replacement = write(tmp_path / "new.csv", ["someone@example.org,New,x"])
        os.replace(replacement, path)
        assert len(list(source)) == 5000
    finally:
        source.close()
    path = write(tmp_path / "list.csv", rows)
    source = CsvRecipients(path)
    try:
        reading = iter(source)
        next(reading)
        with path.open("r+", encoding="utf-8") as handle:  # written into the file being read
            handle.seek(0, os.SEEK_END)
            handle.write("intruder@example.org,Never checked,x\n")
        with pytest.raises(HebdoError, match="was written over while it was being read") as caught:
            list(reading)
        assert "\n" not in str(caught.value)
    finally:
        source.close()
    # Cut short in place (``> list.csv`` and a new list being written): its end is not the list's.
    path = write(tmp_path / "list.csv", rows[:100])
    source = CsvRecipients(path)
    try:
        reading = iter(source)
        next(reading)
        with path.open("r+", encoding="utf-8") as handle:
            handle.truncate(len("email,name,city\n") + 3 * len("reader0@example.org,R0,x\n"))
        with pytest.raises(HebdoError, match="was written over while it was being read"):
            list(reading)
    finally:
        source.close()
    path = write(tmp_path / "list.csv", rows)
    source = CsvRecipients(path)
    try:
        assert len(source) == 5000  # read through first: its rows are kept
        with path.open("r+", encoding="utf-8") as handle:
            handle.seek(len("email,name,city\n"))
            handle.write("x" * len("reader0@example.org"))  # the first address, now none
        assert [r.email for r in source] == [f"reader{i}@example.org" for i in range(5000)]
    finally:
        source.close()


@pytest.mark.parametrize("spooled_by", ["this thread", "a thread of its own"])
def test_the_store_list_is_fixed_at_the_start_and_read_as_the_send_goes(
    tmp_path: Path, spooled_by: str
) -> None:
    """Spooled by a thread on a second connection (as a send does), the list is the same: the
    store as of the count, however long the thread takes to write it."""
    with SubscriberStore.at(tmp_path / "hebdo.db") as store:
        for i in range(1200):
            store.add(f"reader{i}@example.org", name=f"Reader {i}")
        store.set_status("reader3@example.org", "unsubscribed")
        reopen = (
            (lambda: SubscriberStore.at(tmp_path / "hebdo.db")) if "own" in spooled_by else None
        )
        source = StoreRecipients(store, batch=100, reopen=reopen)
        try:
            assert len(source) == 1199
            store.add("late@example.org")  # joined after the run's list was fixed: not in it
            store.set_status("reader5@example.org", "unsubscribed")  # left: handed on, skipped
            store.remove("reader8@example.org")  # removed: handed on too, by address alone
            recipients = list(source)
            emails = [r.email for r in recipients]
            assert len(emails) == 1199 and emails[:6] == [
                "reader0@example.org", "reader1@example.org", "reader2@example.org",
                "reader4@example.org", "reader5@example.org", "reader6@example.org",
            ]  # fmt: skip
            assert "late@example.org" not in emails
            assert recipients[7].email == "reader8@example.org" and recipients[7].name == ""
            assert recipients[8].name == "Reader 9"
            assert list(source.address_keys()) == emails
        finally:
            source.close()


def test_a_list_that_cannot_be_read_says_why_when_it_is_counted(tmp_path: Path) -> None:
    def unreachable() -> SubscriberStore:
        raise StoreError("cannot connect to the store", where="db.example.org:5432/hebdo")

    with SubscriberStore.at(tmp_path / "hebdo.db") as store:
        source = StoreRecipients(store, reopen=unreachable)
        try:
            with pytest.raises(StoreError, match="cannot connect to the store"):
                len(source)
            with pytest.raises(StoreError, match="cannot connect to the store"):
                list(source)
        finally:
            source.close()


def test_a_snapshot_reads_the_store_as_of_its_first_read(tmp_path: Path) -> None:
    """What lets a thread spool the list while others write: its reads all see one moment."""
    path = tmp_path / "hebdo.db"
    with SubscriberStore.at(path) as store, SubscriberStore.at(path) as reader:
        store.add("first@example.org")
        with reader.snapshot():
            assert reader.count("active") == 1
            store.add("second@example.org")  # committed meanwhile, by another connection
            assert reader.count("active") == 1
            assert [k for keys in reader.keys_of("active") for k in keys] == ["first@example.org"]
        assert reader.count("active") == 2


class FullDisk(io.BytesIO):
    """A temporary file on a full disk (the one thing a test cannot arrange for real as root)."""

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_list_that_cannot_be_kept_on_disk_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "TemporaryFile", FullDisk)
    path = write(tmp_path / "list.csv", [f"reader{i}@example.org,R{i},x" for i in range(10)])
    with pytest.raises(HebdoError) as csv_list:
        len(CsvRecipients(path))  # read through before sending, its rows kept on disk
    with SubscriberStore.at(tmp_path / "hebdo.db") as store:
        for i in range(10):
            store.add(f"reader{i}@example.org")
        source = StoreRecipients(store, reopen=lambda: SubscriberStore.at(tmp_path / "hebdo.db"))
        try:
            with pytest.raises(HebdoError) as store_list:
                list(source)
        finally:
            source.close()
    for caught in (csv_list, store_list):
        message = str(caught.value)
        assert "No space left on device" in message and "TMPDIR" in message, message
        assert "\n" not in message


def test_a_temporary_folder_that_is_gone_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))
    path = write(tmp_path / "list.csv", ["reader@example.org,R,x"])
    with pytest.raises(HebdoError, match=r"gone for the send.*TMPDIR"):
        len(CsvRecipients(path))


@pytest.mark.parametrize("kind", ["csv", "store"])
def test_a_run_reads_in_full_only_the_readers_it_mails(tmp_path: Path, kind: str) -> None:
    """A resume past 700 readers already mailed, limited to 300 more: the log decides on address
    keys alone, and only the 300 rows to mail are read in full (a resume of a half-sent million,
    or a --limit warm-up on one, reads no other row)."""
    emails = [f"reader{i}@example.org" for i in range(2000)]
    source: RecipientSource
    if kind == "csv":  # with an address done in the log repeated further down: mailed once
        rows = [f"{e},Reader,x" for e in emails] + ["READER5@example.org,Again,x"]
        source = CsvRecipients(write(tmp_path / "list.csv", rows))
    else:
        store = SubscriberStore.at(tmp_path / "hebdo.db")
        for email in emails:
            store.add(email, name="Reader")
        source = StoreRecipients(store, batch=500)
    writer = LogWriter(tmp_path / "issue.jsonl")
    for email in emails[:690]:
        writer.event(email, Event.SENT)
    for email in emails[690:700]:
        writer.event(email, Event.ATTEMPT)  # unknown: left alone
    writer.close()
    read: list[str] = []

    def watched(batch: RecipientBatch) -> RecipientBatch:
        def fetch(positions: list[int]) -> list[Any]:
            read.extend(batch.keys[i] for i in positions)
            return batch.fetch(positions)

        return RecipientBatch(batch.keys, fetch)

    sender = Sender(
        factory=cast(MessageFactory, None),  # choosing who to mail builds no message
        transport=NullTransport(), log=NullLog(), state=read_log(tmp_path / "issue.jsonl"),
        store=None, store_is_source=False, options=SendOptions(limit=300),
    )  # fmt: skip
    try:
        chosen = [r for batch in sender.selected(map(watched, source.batches())) for r in batch]
    finally:
        source.close()
    assert [r.email for r in chosen] == emails[700:1000] == read
    assert {r.name for r in chosen} == {"Reader"}
    summary = sender.summary
    assert (summary.already_done, summary.unknown_left, summary.not_reached) == (690, 10, 1000)


@pytest.mark.parametrize("count_rest", [True, False])
def test_a_stopped_send_reads_a_streamed_list_no_further_unless_told_to_count(
    tmp_path: Path, count_rest: bool
) -> None:
    """Ctrl-C during a send from a million-row file: counting the readers left would mean
    reading and checking every row left (seconds); the send stops reading instead."""
    path = write(tmp_path / "list.csv", [f"reader{i}@example.org,R,x" for i in range(5000)])
    source = CsvRecipients(path)
    sender = Sender(
        factory=cast(MessageFactory, None), transport=NullTransport(), log=NullLog(),
        state=read_log(tmp_path / "issue.jsonl"), store=None, store_is_source=False,
        options=SendOptions(), count_rest=count_rest,
    )  # fmt: skip
    try:
        chosen = []
        for batch in sender.selected(source.batches()):
            chosen.extend(batch)
            sender.stop("interrupted")
    finally:
        source.close()
    assert len(chosen) == 32  # the first batch, handed on before the stop
    summary = sender.summary
    if count_rest:
        assert (summary.not_reached, summary.rest_unread) == (5000 - 32, False)
        assert source.read_total() == 5000
    else:
        assert (summary.not_reached, summary.rest_unread) == (0, True)
        assert source.read_total() is None  # not read through


def test_a_file_of_carriage_returns_alone_is_counted_by_its_lines(tmp_path: Path) -> None:
    """Old Mac exports end lines with CR alone: the run's first total counts them too (a total
    of 0 would show a stopped send as complete)."""
    path = tmp_path / "mac.csv"
    path.write_bytes(b"email,name\r" + b"".join(b"r%d@example.org,R\r" % i for i in range(50)))
    source = CsvRecipients(path)
    try:
        assert source.expected_total() == 50
        assert len(list(source)) == 50 and source.read_total() == 50
    finally:
        source.close()
