"""Workspace and settings: finds the workspace folder and reads ``hebdo.toml`` into pydantic models.

Every later stage receives a ``Workspace``; nothing else reads ``hebdo.toml``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .checkedsettings import Checked, NewsletterMethods, StyleMethods
from .checks import (
    check_language,
    check_list_id,
    check_mailbox,
    check_single_line,
    parse_duration,
    parse_share,
)
from .errors import ConfigError, HebdoError
from .storeurl import check_store_url
from .tomlfile import parse_toml, read_toml, toml_key_line

M = TypeVar("M", bound=BaseModel)


class StrictModel(Checked, BaseModel):
    """Base for everything read from outside: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NewsletterSettings(NewsletterMethods, StrictModel):
    name: str = Field(min_length=1)
    sender: str = Field(alias="from")
    reply_to: str | None = None
    base_url: str
    language: str = "fr"
    contact: str | None = None
    # A Babel date pattern ("dd-MMM-yyyy" gives the bulletin's "15-Dec-2006") or short/medium/long/full.
    date_format: str = "long"
    names: dict[str, str] = Field(
        default_factory=dict
    )  # the name in other languages: en = "NATO Update"
    fallback: Literal["default", "omit"] = "default"  # an article missing in a language
    list_id: str | None = None  # default: derived from the name and the sender's domain
    unsubscribe_mailbox: str | None = None  # the mailto: of List-Unsubscribe; default: the sender

    _single_line = field_validator("name")(check_single_line)
    _list_id = field_validator("list_id")(lambda v: check_list_id(v) if v is not None else v)
    _mailbox = field_validator("sender", "reply_to", "unsubscribe_mailbox")(
        lambda v: check_mailbox(v) if v is not None else v
    )
    _language = field_validator("language")(check_language)

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        # In full: a trailing newline would put a bare LF into List-Unsubscribe.
        if not re.fullmatch(r"https?://[^\s/?#\x00-\x1f\x7f]+[^\s\x00-\x1f\x7f]*", value):
            raise ValueError(f"{value!r} is not an http(s) URL such as 'https://hebdo.example.org'")
        return value.rstrip("/")

    @field_validator("names")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for lang, name in value.items():
            check_language(lang)
            check_single_line(name)
        return value


class RelaySettings(StrictModel):
    """One relay of a pool (``[[smtp.relays]]``)."""

    url: str  # as [smtp] url
    concurrency: int = Field(default=5, ge=1, le=200)  # its connections
    rate: float = Field(default=0, ge=0)  # its messages per second; 0: no limit
    weight: float = Field(default=1.0, gt=0)  # its share of the mail, against the others'


class SmtpSettings(StrictModel):
    url: str | None = None  # smtp://host:port, smtp+starttls://user@host:587, smtps://user@host:465
    timeout: float = Field(default=30.0, gt=0)
    verify_tls: bool = True  # turning it off is for test relays only, and prints a warning
    # Several relays sharing the mail by weight, instead of one url.
    relays: list[RelaySettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_way(self) -> SmtpSettings:
        if self.url and self.relays:
            raise ValueError("give either url or [[smtp.relays]], not both")
        return self


class SendSettings(StrictModel):
    concurrency: int = Field(default=10, ge=1, le=200)
    rate: float = Field(default=0, ge=0)  # messages per second over all connections; 0: no limit
    attempts: int = Field(default=3, ge=1, le=20)  # tries per message within one run
    retry_delay: float = Field(
        default=2.0, ge=0
    )  # seconds before the first retry, doubled each time
    # `send --due` starts no issue more than this late (a machine off all weekend must not mail
    # Friday's issue on Monday without a human deciding): "12h", "90min", "2d".
    send_window: dt.timedelta = dt.timedelta(hours=12)
    # With the shared ledger (PostgreSQL), how long a sender's claims outlive it: a sender that
    # dies hands its never-attempted recipients to the others after this many seconds.
    lease: float = Field(default=60.0, ge=1)

    # The send stops itself when, among the last `stop_window` replies, the relay's hard
    # refusals pass `stop_failed` or its deferrals `stop_deferred` (deliver/stoprule.py).
    stop_window: int = Field(default=200, ge=10, le=100_000)
    stop_failed: float = Field(default=0.10, gt=0, le=1)
    stop_deferred: float = Field(default=0.50, gt=0, le=1)

    @field_validator("send_window", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_duration(value)
        return value

    @field_validator("stop_failed", "stop_deferred", mode="before")
    @classmethod
    def _share(cls, value: object) -> object:
        return parse_share(value) if isinstance(value, str) else value


class BounceSettings(StrictModel):
    # VERP: each message's envelope sender names its reader (bounces+<token>@domain), so any
    # bounce finds them. Off by default: some relays rewrite the envelope sender.
    verp: bool = False
    prefix: str = Field(default="bounces", pattern=r"^[A-Za-z0-9._-]{1,30}$")
    domain: str | None = None  # default: the sender's domain; its MX must deliver to your box
    threshold: float = Field(default=3.0, gt=0)  # hard bounce 1, soft 0.5; at this score: bounced
    expire_days: int = Field(default=90, ge=1)  # bounces older than this no longer count


class TrackingSettings(StrictModel):
    """What an issue's links count. Off by default: no link is rewritten."""

    # Each article link goes through <base_url>/l/<issue>/<n>/<mac>, the same for every reader:
    # clicks are counted per link, never per reader.
    clicks: bool = False
    # Added to outgoing links (?ref=hebdo) so the publisher's own analytics credit the issue.
    ref: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,40}$")
    ref_param: Literal["ref", "utm_source"] = "ref"


class WelcomeSettings(StrictModel):
    enabled: bool = True  # a welcome mail once a reader confirms


class DkimSettings(StrictModel):
    domain: str
    selector: str = Field(pattern=r"^[A-Za-z0-9._-]{1,63}$")
    key_file: str  # relative to the workspace
    algorithm: Literal["rsa-sha256", "ed25519-sha256"] = "rsa-sha256"


class StyleSettings(StyleMethods, StrictModel):
    """The brand, without forking a template."""

    accent: str = "#003366"  # masthead, titles and section labels
    logo: str | None = None  # a picture in the workspace, shown in the masthead
    # The postal address US (CAN-SPAM) and EU law ask bulk senders to show; lines kept.
    footer_address: str | None = None

    @field_validator("accent")
    @classmethod
    def _colour(cls, value: str) -> str:
        if not re.fullmatch(r"#(?:[0-9a-fA-F]{3}){1,2}", value):
            raise ValueError(f"{value!r} is not a colour like '#003366'")
        if len(value) == 4:
            value = "#" + "".join(c * 2 for c in value[1:])
        return value.lower()


class WebSettings(StrictModel):
    """The public web app (`serve`): whom it believes, and what one client or address may ask."""

    # Addresses or networks ("10.0.0.0/8") of the proxies whose X-Forwarded-For is believed;
    # from anyone else the header is ignored (it would let a client pick its own address).
    trusted_proxies: list[str] = Field(default_factory=list)
    form_posts_per_minute: int = Field(default=10, ge=1)  # per client address
    # One address gets a confirmation at most this often, and this many a day, whoever asks.
    confirmation_interval: int = Field(default=3600, ge=0)  # seconds
    confirmations_per_day: int = Field(default=3, ge=1)
    # A request must arrive whole (head and body) within this many seconds of the connection
    # opening or of the previous response: slow or stalled clients are cut off.
    request_timeout: float = Field(default=10.0, gt=0)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network such as '127.0.0.1' or '10.0.0.0/8'"
                ) from None
        return value


class StoreSettings(StrictModel):
    path: str = "hebdo.db"  # the SQLite store, relative to the workspace
    # A PostgreSQL server shared by several hosts, instead of the file (HEBDO_STORE_URL wins).
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return check_store_url(value) if value is not None else None


class Settings(StrictModel):
    newsletter: NewsletterSettings
    store: StoreSettings = StoreSettings()
    smtp: SmtpSettings = SmtpSettings()
    send: SendSettings = SendSettings()
    bounces: BounceSettings = BounceSettings()
    dkim: DkimSettings | None = None
    style: StyleSettings = StyleSettings()
    web: WebSettings = WebSettings()
    tracking: TrackingSettings = TrackingSettings()
    welcome: WelcomeSettings = WelcomeSettings()


def load_settings(path: Path) -> Settings:
    """hebdo.toml read and checked now (a workspace keeps a copy: checkedsettings.py)."""
    data, text = read_toml(path, ConfigError)
    return validate_model(Settings, data, path=path, text=text, error=ConfigError)


def settings_from(path: Path, raw: bytes) -> Settings:
    """The settings in ``raw``, the bytes of hebdo.toml at ``path``, checked."""
    data, text = parse_toml(path, raw, ConfigError)
    return validate_model(Settings, data, path=path, text=text, error=ConfigError)


def validate_model(
    model: type[M],
    data: Mapping[str, Any],
    *,
    path: Path,
    text: str,
    error: type[HebdoError],
    locate: Callable[[tuple[str | int, ...]], int | None] | None = None,
) -> M:
    """Validate ``data`` against ``model``; a failure becomes one line naming the file, line and key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(
            exc, path=path, error=error, locate=locate or (lambda loc: toml_key_line(text, loc))
        ) from None


def validation_error(
    exc: ValidationError,
    *,
    path: Path,
    error: type[HebdoError],
    locate: Callable[[tuple[str | int, ...]], int | None],
) -> HebdoError:
    problems = exc.errors()
    first = problems[0]
    loc = tuple(first["loc"])
    key = ".".join(str(p) for p in loc) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        parent = ".".join(str(p) for p in loc[:-1])
        where = f" in [{parent}]" if parent else ""
        message = f"unknown key {str(loc[-1])!r}{where}; remove it or check its spelling"
    elif kind == "missing":
        message = f"missing required key {key!r}; add it"
    else:
        reason = first["msg"].removeprefix("Value error, ")
        message = f"{key}: {reason}"
    more = len(problems) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    line = locate(loc) if loc else None
    return error(message, path=path, line=line)
