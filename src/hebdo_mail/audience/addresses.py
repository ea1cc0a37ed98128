"""Email addresses: validated with email-validator and put in the one form the store keys on.

The domain is lowercased and IDNA-encoded (``jose@bücher.de`` -> ``jose@xn--bcher-kva.de``); the
local part is kept as written but in Unicode's composed form (NFC: ``é`` typed as one character
or as ``e`` and an accent is one address), and uniqueness ignores its case with ``lower()``:
not ``casefold()``, which would make ``straße`` and ``strasse``, or ``ﬁ`` and ``fi``, one. Domains are validated once and cached:
a list of 100,000 readers has a few hundred distinct domains, and the domain check is most of the
cost of validating an address.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any


class InvalidAddress(ValueError):
    """The reason an address was refused, in words an admin can act on."""


@lru_cache(maxsize=1)
def _validator() -> tuple[Callable[..., Any], Callable[..., Any], type[Exception]]:
    """email-validator's checks, imported when an address is first checked: building its
    patterns is a noticeable part of a command's start-up, and a send from the store checks no
    address. (validate_email, validate_email_local_part, EmailNotValidError)"""
    from email_validator import EmailNotValidError, validate_email
    from email_validator.syntax import validate_email_local_part

    return validate_email, validate_email_local_part, EmailNotValidError


@lru_cache(maxsize=65536)
def _domain(domain: str, check_dns: bool) -> str:
    """The ASCII (IDNA) form of a valid domain, or InvalidAddress."""
    validate_email, _, not_valid = _validator()
    try:
        result = validate_email(f"postmaster@{domain}", check_deliverability=check_dns)
    except not_valid as exc:
        raise InvalidAddress(str(exc).replace("postmaster@", "")) from None
    return str(result.ascii_domain)


def normalise_address(text: str, *, check_dns: bool = False) -> str:
    """The canonical form of an address, or InvalidAddress saying what is wrong with it."""
    address = text.strip()
    if not address:
        raise InvalidAddress("the address is empty")
    if "\n" in address or "\r" in address or "\0" in address:
        raise InvalidAddress("the address contains a line break")
    local, at, domain = address.rpartition("@")
    local = unicodedata.normalize("NFC", local)
    if not at or not local:
        raise InvalidAddress(f"{address!r} is not an email address (no '@')")
    try:
        ascii_domain = _domain(domain.lower(), check_dns)
    except InvalidAddress as exc:
        raise InvalidAddress(f"{address!r}: {exc}") from None
    _, validate_local_part, not_valid = _validator()
    try:
        parts = validate_local_part(local, allow_smtputf8=True, allow_empty_local=False)
    except not_valid as exc:
        raise InvalidAddress(f"{address!r}: {exc}") from None
    normalised = f"{parts['local_part']}@{ascii_domain}"
    # RFC 5321 limits: 64 octets before the @, 254 in all (what fits in a forward-path).
    if len(str(parts["local_part"]).encode()) > 64 or len(normalised.encode()) > 254:
        raise InvalidAddress(f"{address!r} is longer than an address may be")
    return normalised


def address_key(address: str) -> str:
    """What uniqueness is checked on: the normalised address, case-insensitively (lower(), then
    NFC again, since lowering can decompose a character: ``İ`` becomes ``i̇``)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", address).lower())


MAX_NAME_LENGTH = 200


# Unicode's line and paragraph separators (Zl, Zp) and control characters (Cc), as classes:
# one search per name instead of a category lookup per character.
LINE_BREAKS = re.compile("[\r\n\u2028\u2029]")
FORBIDDEN_IN_NAME = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_name(name: str) -> str:
    """A display name that can go into a header: one line, no control characters, 200 at most."""
    if FORBIDDEN_IN_NAME.search(name):
        if LINE_BREAKS.search(name):
            raise InvalidAddress("the name spans several lines; put it on one line")
        raise InvalidAddress("the name holds a control character (a tab?); remove it")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidAddress(f"the name is longer than {MAX_NAME_LENGTH} characters; shorten it")
    return name
