"""The PostgreSQL store's URL, checked wherever it is given (hebdo.toml, HEBDO_STORE_URL, the
command line of `store copy`)."""

from __future__ import annotations


def check_store_url(value: str) -> str:
    """postgresql://user@host:port/database; the password never goes in the URL (it would be
    in hebdo.toml for anyone to read): PGPASSWORD, ~/.pgpass or HEBDO_STORE_PASSWORD."""
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise ValueError(
            f"{value.split('@')[-1]!r} is not a URL like 'postgresql://hebdo@db.example.org:5432/hebdo'"
        )
    if parts.password is not None:
        raise ValueError(
            "the store URL must not hold a password; give it in PGPASSWORD, ~/.pgpass or "
            "HEBDO_STORE_PASSWORD"
        )
    return value
