"""``hebdo-mail admin``: the dashboard's accounts. Passwords are asked twice on a terminal (or
read as one line from standard input with ``--password-stdin``), hashed, never shown."""

from __future__ import annotations

import argparse
import getpass
import sys

from ..errors import HebdoError
from .audience import store_of


class PasswordError(HebdoError):
    """No password could be read."""


def read_password(args: argparse.Namespace, name: str) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line.strip():
            raise PasswordError("no password on standard input; give it as one line")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise PasswordError(
            "no terminal to ask the password on; pass --password-stdin and give it as one line"
        )
    first = getpass.getpass(f"password for {name}: ")
    if getpass.getpass("the same again: ") != first:
        raise PasswordError("the two passwords differ; nothing was changed")
    return first


def who() -> str:
    """How the audit log names the command line's user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def cmd_admin_add(args: argparse.Namespace) -> int:
    from ..audience.admins import AdminAccounts, check_name, check_password_rules
    from ..audience.audit import AuditLog

    check_name(args.name)
    password = read_password(args, args.name)
    check_password_rules(password)
    with store_of(args) as store:
        AdminAccounts(store.db).add(args.name, password)
        AuditLog(store.db).record(who(), "admin-add", target=args.name)
    print(f"added the admin {args.name}; they log in at /admin/ of `hebdo-mail serve`")
    return 0


def cmd_admin_passwd(args: argparse.Namespace) -> int:
    from ..audience.admins import AdminAccounts
    from ..audience.audit import AuditLog

    with store_of(args, create=False) as store:
        accounts = AdminAccounts(store.db)
        accounts.require(args.name)
        password = read_password(args, args.name)
        accounts.set_password(args.name, password)
        AuditLog(store.db).record(who(), "admin-passwd", target=args.name)
    print(f"changed the password of {args.name}; their open sessions have ended")
    return 0


def cmd_admin_remove(args: argparse.Namespace) -> int:
    from ..audience.admins import AdminAccounts
    from ..audience.audit import AuditLog

    with store_of(args, create=False) as store:
        AdminAccounts(store.db).remove(args.name)
        AuditLog(store.db).record(who(), "admin-remove", target=args.name)
    print(f"removed the admin {args.name}; their open sessions have ended")
    return 0


def cmd_admin_list(args: argparse.Namespace) -> int:
    from ..audience.admins import AdminAccounts

    with store_of(args, create=False) as store:
        accounts = AdminAccounts(store.db).all()
    for account in accounts:
        print(
            f"{account.name}  since {account.created_at[:10]}  "
            f"password set {account.password_changed_at[:10]}"
        )
    print(f"{len(accounts)} admin{'s' if len(accounts) != 1 else ''}", file=sys.stderr)
    return 0
