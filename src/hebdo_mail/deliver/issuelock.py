"""One writer per issue log: an exclusive advisory lock (``fcntl.flock``) on a file beside the log,
held for the whole run of whatever writes it.

The operating system releases the lock when its holder ends, however it ends (``kill -9``
included), so a dead send never blocks the next one; the file's text (host, PID, start time) only
serves to tell the refused operator who holds the issue.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
from pathlib import Path

from ..errors import HebdoError


class IssueBusy(HebdoError):
    """Another process holds the issue's lock."""


class IssueLock:
    """``with IssueLock(path, issue_id):`` runs the block as the issue's only writer, or raises
    IssueBusy at once naming the holder."""

    def __init__(self, path: Path, issue_id: str) -> None:
        self.path = path
        self.issue_id = issue_id
        self.fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise HebdoError(
                f"cannot create the send lock ({exc.strerror}); nothing was sent", path=self.path
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.pread(fd, 4096, 0))
            os.close(fd)
            raise IssueBusy(
                f"issue {self.issue_id} is being sent by {holder}; wait until that send ends "
                f"(`hebdo-mail status {self.issue_id}` shows where it stands), then run the "
                "command again; nothing was sent by this one",
                path=self.path,
            ) from None
        self.fd = fd
        me = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode() + b"\n", 0)

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)  # still held: nobody reads a half-cleared file
            os.close(self.fd)  # closing releases the lock
            self.fd = None

    def __enter__(self) -> IssueLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _describe(text: bytes) -> str:
    """'PID 4242 on host mail1 since 2026-11-28 10:00:03 UTC', from what the holder wrote."""
    try:
        holder = json.loads(text)
        since = dt.datetime.fromisoformat(holder["since"]).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"PID {int(holder['pid'])} on host {holder['host']} since {since}"
    except (ValueError, KeyError, TypeError):
        # Taken a moment ago: the holder has not written its name yet.
        return "another process that has just started"


def lock_path(log: Path) -> Path:
    """logs/<issue-id>.lock, beside logs/<issue-id>.jsonl."""
    return log.with_suffix(".lock")
