"""Checks of single values read from outside (settings, issue files, subscriber lists), as plain
functions: the CSV reader and the store use them without loading the settings' models."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from functools import lru_cache


def check_single_line(value: str) -> str:
    """Header-bound values must never carry a line break: that is how headers get injected. Nor
    any other control character or Unicode line separator (\\v, \\f, \\x1c-\\x1f, \\x85,
    U+2028, U+2029): some programs end a line at those too."""
    found = next((c for c in value if unicodedata.category(c) in ("Cc", "Zl", "Zp")), None)
    if found is not None:
        raise ValueError(f"must be a single line without control characters (it holds {found!r})")
    return value


def check_mailbox(value: str) -> str:
    """Exactly one mailbox, 'Name <name@example.org>' or 'name@example.org': no list of
    addresses, no group, nothing after the address."""
    from email.headerregistry import AddressHeader, HeaderRegistry

    check_single_line(value)
    try:
        header = HeaderRegistry()("From", value)
    except (ValueError, IndexError):
        header = None
    one = (
        isinstance(header, AddressHeader) and not header.defects and len(header.addresses) == 1
        and header.groups[0].display_name is None and bool(header.addresses[0].username)
        and bool(header.addresses[0].domain)
    )  # fmt: skip
    if not one:
        raise ValueError(f"{value!r} is not one address like 'Name <name@example.org>'")
    return value


# RFC 2919: a List-Id is a dot-atom (letters, digits and a few signs, in dotted parts).
LIST_ID = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)+")


def check_list_id(value: str) -> str:
    check_single_line(value)
    if not LIST_ID.fullmatch(value):
        raise ValueError(f"{value!r} is not a list id like 'hebdo.example.org' (RFC 2919)")
    return value


@lru_cache(maxsize=1024)
def check_language(value: str) -> str:
    """A language Babel knows ('fr', 'en-GB'); cached, since a list repeats a few codes."""
    from babel import Locale, UnknownLocaleError

    try:
        Locale.parse(value.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        raise ValueError(f"{value!r} is not a language code such as 'fr' or 'en'") from None
    return value


def parse_share(text: str) -> float:
    """'10%' or '0.1'."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not a share such as '10%' or 0.1")
    return float(match[1]) / (100 if match[2] else 1)


def parse_duration(text: str) -> dt.timedelta:
    """'12h', '90min', '2d', '45m' (minutes) or '30s'."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(d|h|m|min|s)\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not a duration such as '12h', '90min' or '2d'")
    unit = {"d": "days", "h": "hours", "m": "minutes", "min": "minutes", "s": "seconds"}
    return dt.timedelta(**{unit[match[2]]: float(match[1])})
