"""The settings as last checked, read back without pydantic.

Checking ``hebdo.toml`` against its models (config.py) means importing pydantic and building the
models: some 60-70 ms, a fifth of a send's start-up. So the checked values are kept beside the
build (``build/.settings.json``), keyed by the file's bytes and the code that checks them; while
both are unchanged, a command reads them back as plain sections that answer like the models (the
same attributes, the same methods, shared below as mixins). Anything changed, the file is checked
again and the copy rewritten.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import sys
from collections.abc import Iterable
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from . import __version__
from .installed import distributions

if TYPE_CHECKING:
    from .config import Settings

CACHE_NAME = ".settings.json"
# The modules whose code decides what a checked value is (config.py and every module of ours it
# imports): a change to one is a new key.
CHECKING_CODE = (
    "config.py", "checks.py", "checkedsettings.py", "errors.py", "installed.py", "storeurl.py",
    "tomlfile.py",
)  # fmt: skip


class Checked:
    """What a section of the settings answers, whether a model just checked or a copy read back."""

    def checked_values(self) -> dict[str, Any]:
        """Its values as the copy keeps them (sections nested, durations in seconds)."""
        return {"__section__": self.section_kind(), **{
            name: _plain(getattr(self, name)) for name in self.field_names()
        }}  # fmt: skip

    def field_names(self) -> Iterable[str]:
        fields: Iterable[str] = type(self).model_fields  # type: ignore[attr-defined]  # a model's
        return fields

    def section_kind(self) -> str:
        return type(self).__name__


def _plain(value: Any) -> Any:
    if isinstance(value, Checked):
        return value.checked_values()
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dt.timedelta):
        return {"__seconds__": value.total_seconds()}
    return value


class NewsletterMethods:
    """What [newsletter] derives from its values."""

    if TYPE_CHECKING:
        name: str
        sender: str
        names: dict[str, str]
        list_id: str | None
        unsubscribe_mailbox: str | None

    def name_in(self, lang: str) -> str:
        return self.names.get(lang) or self.names.get(lang.split("-")[0]) or self.name

    def sender_in(self, lang: str) -> str:
        """From: the configured sender, shown under the newsletter's name in that language."""
        name = self.name_in(lang)
        if name == self.name:
            return self.sender
        from email.headerregistry import Address

        return str(Address(display_name=name, addr_spec=self.sender_address))

    @property
    def sender_address(self) -> str:
        return parseaddr(self.sender)[1]

    @property
    def sender_domain(self) -> str:
        return self.sender_address.rpartition("@")[2].lower()

    @property
    def list_identifier(self) -> str:
        """The List-Id value (RFC 2919): a dotted name under the sender's domain."""
        if self.list_id:
            return self.list_id
        slug = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "newsletter"
        return f"{slug}.{self.sender_domain}"

    @property
    def unsubscribe_address(self) -> str:
        return parseaddr(self.unsubscribe_mailbox or self.sender)[1]


class StyleMethods:
    """What [style] derives from its values."""

    if TYPE_CHECKING:
        accent: str

    def colours(self) -> dict[str, str]:
        """The accent, and a light shade of it that reads on a dark background."""
        import colorsys

        red, green, blue = (int(self.accent[i : i + 2], 16) / 255 for i in (1, 3, 5))
        hue, _, saturation = colorsys.rgb_to_hls(red, green, blue)
        light = colorsys.hls_to_rgb(hue, 0.8, min(saturation, 0.9))
        return {
            "accent": self.accent,
            "accent_light": "#" + "".join(f"{round(c * 255):02x}" for c in light),
        }


# -- the copy read back -------------------------------------------------------------------------


class Section(Checked):
    """A section read back: its checked values as attributes."""

    def __init__(self, kind: str, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
        self._kind = kind
        self._names = tuple(values)

    def field_names(self) -> Iterable[str]:
        return self._names

    def section_kind(self) -> str:
        return self._kind


class NewsletterSection(NewsletterMethods, Section):
    pass


class StyleSection(StyleMethods, Section):
    pass


SECTIONS: dict[str, type[Section]] = {
    "NewsletterSettings": NewsletterSection,
    "StyleSettings": StyleSection,
}


def _revive(values: dict[str, Any]) -> Any:
    if "__seconds__" in values:
        return dt.timedelta(seconds=values["__seconds__"])
    kind = values.pop("__section__", None)
    if kind is None:
        return values  # a table of values, such as [newsletter.names]
    return SECTIONS.get(kind, Section)(kind, values)


def settings_key(text: bytes) -> str | None:
    """The file's bytes and what checks them (our code, Python, the installed libraries: an
    upgrade of Babel or pydantic may judge a value anew), in one digest; None when our sources
    cannot be read (an install without them), and then nothing is kept."""
    digest = hashlib.sha256(text)
    package = Path(__file__).parent
    try:
        for name in CHECKING_CODE:
            digest.update((package / name).read_bytes())
    except OSError:
        return None
    digest.update("\n".join([__version__, sys.version, *distributions()]).encode())
    return digest.hexdigest()


def workspace_settings(path: Path, build_dir: Path) -> Settings:
    """The workspace's settings: the copy kept in ``build_dir`` while it matches the file and
    the code, else checked now (and kept there)."""
    from .errors import ConfigError

    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot be read ({exc.strerror})", path=path) from exc
    key = settings_key(text)
    copy = build_dir / CACHE_NAME
    try:
        kept = json.loads(copy.read_bytes(), object_hook=_revive)
        if key is not None and kept["key"] == key:
            return cast("Settings", kept["settings"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, or not one this code wrote: checked below
    from .config import settings_from

    settings = settings_from(path, text)
    if key is not None:
        _keep(copy, {"key": key, "settings": settings.checked_values()})
    return settings


def _keep(copy: Path, kept: dict[str, Any]) -> None:
    """Written whole or not at all; a workspace that cannot be written is checked each time."""
    from .atomic import atomic_output

    try:
        copy.parent.mkdir(exist_ok=True)
        with atomic_output(copy) as handle:
            handle.write(json.dumps(kept, ensure_ascii=False, sort_keys=True).encode())
    except OSError:
        pass
