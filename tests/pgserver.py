"""A real PostgreSQL server for the tests: Debian's binaries, `initdb` into a temporary folder and
`pg_ctl` on a free port, run as the unprivileged `postgres` user when the tests run as root
(PostgreSQL refuses to run as root). Each test gets a database of its own."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg


def binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    def __init__(self) -> None:
        bin_dir = binaries()
        assert bin_dir is not None, "Debian's postgresql is not installed; `make test` installs it"
        self.bin = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="hebdo-pg-"))
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            account = pwd.getpwnam(self.user)
            os.chown(self.folder, account.pw_uid, account.pw_gid)
        self.port = free_port()
        self.names = itertools.count(1)

    def _run(self, *args: str) -> None:
        subprocess.run(args, user=self.user, check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.folder / "data"), "-U", "hebdo",
            "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        self._start()
        return self

    def _start(self) -> None:
        # The log file matters: without it the server would keep our output pipe open.
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-l",
            str(self.folder / "log"), "-w", "-o", options, "start",
        )  # fmt: skip

    def stop(self) -> None:
        try:
            self._run(
                str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "stop"
            )
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def restart(self) -> None:
        """A restart of the server under its clients (they must fail with one line, then resume)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "stop")
        self._start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://hebdo@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        name = f"test_{next(self.names)}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)
