"""What the program writes, and how: regular files replaced whole, anything else (a FIFO, a device,
a symbolic link) written in place and left what it was; personal data and keys for their owner's
eyes only; a Maildir that lost its empty folders still works."""

from __future__ import annotations

import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hebdo_mail.audience.store import SubscriberStore

from .helpers import EXAMPLE_ISSUE, REPO, Result

DEADLINE = 30


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def listed(ws: Path, cli: Callable[..., Result]) -> Path:
    assert cli("subscribers", "import", "subscribers.example.csv", cwd=ws).code == 0
    return ws


def test_an_export_to_a_fifo_is_read_by_its_reader_and_the_fifo_stays(
    listed: Path, cli: Callable[..., Result]
) -> None:
    fifo = listed / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = cli("subscribers", "export", "pipe", cwd=listed)
    reader.join(DEADLINE)
    assert result.code == 0 and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert received and received[0].count(b"\r\n") == 6  # the header and five readers


def test_an_export_to_a_device_or_through_a_link_leaves_them_as_they_were(
    listed: Path, cli: Callable[..., Result], tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a device node takes root")
    null = tmp_path / "null"  # a twin of /dev/null, so a failure cannot damage the system's
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    before = os.lstat(null)
    assert cli("subscribers", "export", str(null), cwd=listed).code == 0
    after = os.lstat(null)
    assert stat.S_ISCHR(after.st_mode) and (after.st_mode, after.st_ino) == (
        before.st_mode,
        before.st_ino,
    )

    real = tmp_path / "real.csv"
    real.write_text("old\n")
    link = listed / "link.csv"
    link.symlink_to(real)
    assert cli("subscribers", "export", "link.csv", cwd=listed).code == 0
    assert link.is_symlink() and real.read_text(encoding="utf-8-sig").startswith("email,name,")


def test_a_regular_export_is_replaced_whole_and_private(
    listed: Path, cli: Callable[..., Result]
) -> None:
    target = listed / "list.csv"
    target.write_text("an older export\n")
    os.chmod(target, 0o644)
    assert cli("subscribers", "export", "list.csv", cwd=listed).code == 0
    assert mode_of(target) == 0o600 and target.read_text(encoding="utf-8-sig").count("\n") == 6
    assert [p.name for p in listed.iterdir() if p.name.startswith(".list.csv")] == []


def test_the_site_is_written_through_a_link_to_its_folder(
    listed: Path, cli: Callable[..., Result], tmp_path: Path
) -> None:
    assert cli("send", EXAMPLE_ISSUE, cwd=listed).code == 0  # published
    served = tmp_path / "releases" / "current"
    served.mkdir(parents=True)
    link = tmp_path / "www"
    link.symlink_to(served)
    assert cli("build", "--site", str(link), cwd=listed).code == 0
    assert link.is_symlink() and (served / "index.html").is_file()
    assert cli("build", "--site", str(link), cwd=listed).code == 0  # and again, in place
    fifo = tmp_path / "not-a-folder"
    os.mkfifo(fifo)
    refused = cli("build", "--site", str(fifo), cwd=listed)
    assert refused.code == 1 and stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """What most systems give (files readable by all unless the program says otherwise)."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_the_store_the_outbox_and_keys_are_their_owners_alone(
    usual_umask: None, ws: Path, cli: Callable[..., Result]
) -> None:
    assert cli("subscribers", "import", "subscribers.example.csv", cwd=ws).code == 0
    listed = ws
    assert mode_of(listed / "hebdo.db") == 0o600
    assert cli("send", EXAMPLE_ISSUE, cwd=listed).code == 0
    outbox = listed / "outbox" / EXAMPLE_ISSUE
    assert {mode_of(p) for p in outbox.rglob("*") if p.is_file()} == {0o600}
    assert {mode_of(p) for p in [outbox, *outbox.iterdir()]} == {0o700}

    assert cli("dkim", "keygen", cwd=listed).code == 0
    with (listed / "hebdo.toml").open("a") as handle:
        handle.write(
            '\n[dkim]\ndomain = "example.org"\nselector = "hebdo"\nkey_file = "dkim/hebdo.pem"\n'
        )
    os.chmod(listed / "dkim" / "hebdo.pem", 0o644)
    result = cli("send", EXAMPLE_ISSUE, "--test", "editor@example.org", cwd=listed)
    assert result.code == 1 and result.err == (
        "hebdo-mail: error: dkim/hebdo.pem: is readable by other users (mode 644); run "
        "`chmod 600 hebdo.pem`\n"
    )


def test_bounces_process_takes_a_maildir_that_kept_only_new(
    listed: Path, cli: Callable[..., Result]
) -> None:
    with SubscriberStore.at(listed / "hebdo.db") as store:
        store.add("tom.baker@example.co.uk")
    box = listed / "Bounces"
    (box / "new").mkdir(parents=True)  # as git leaves a Maildir: empty folders are not kept
    shutil.copy(REPO / "tests" / "bounces" / "postfix.eml", box / "new" / "1700000000.M1P1.host")
    result = cli("bounces", "process", "Bounces", cwd=listed)
    assert result.code == 0, result.err
    assert result.out.startswith("1 bounces counted")
    assert [p.name for p in (box / "cur").iterdir()] == ["1700000000.M1P1.host:2,S"]
    assert (box / "tmp").is_dir()
