"""Per-recipient fields in rendered output.

An edition is rendered and inlined once. Wherever a template prints a subscriber's field (or their
unsubscribe URL), the output holds a marker instead: uppercase letters and digits, which HTML
escaping, premailer and URL handling all leave untouched. Delivery later swaps each marker for the
recipient's value, escaped for its part. Values therefore never pass through Jinja: a name such as
``{{ 7*7 }}`` is printed as written, never evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Never

from ..errors import TemplateError

# Fields of the subscriber the templates may print; any other name is one of their attributes.
BUILTIN_FIELDS = ("email", "name", "lang", "format")


@dataclass(frozen=True)
class SlotSpec:
    field: (
        str  # "email", "name", "lang", "format", "attribute", "unsubscribe_url", "preferences_url"
    )
    key: str = ""  # the attribute's name when field == "attribute"
    default: str = ""  # printed when the recipient has no value


class Marker(str):
    """What a template sees for a per-recipient field."""

    __slots__ = ("spec",)
    spec: SlotSpec

    @property
    def _name(self) -> str:
        return self.spec.key if self.spec.field == "attribute" else self.spec.field

    def __bool__(self) -> bool:
        raise TemplateError(
            f"subscriber.{self._name} is filled in per recipient, so a template can print it but "
            f"not test it; use subscriber.get({self._name!r}, 'fallback') for a default"
        )

    def _refuse(self, *args: object, **kwargs: object) -> Never:
        raise TemplateError(
            f"subscriber.{self._name} is passed through a filter; print it as is, filters cannot "
            "run on per-recipient values"
        )

    # The string operations Jinja's filters use: each would act on the marker, not the value.
    __getitem__ = upper = lower = title = capitalize = replace = strip = split = _refuse


class SlotRegistry:
    """Hands out one marker per distinct field while an edition renders."""

    def __init__(self, nonce: str) -> None:
        self.prefix = f"HBDSLOT{nonce.upper()}N"
        self.specs: list[SlotSpec] = []

    def marker(self, spec: SlotSpec) -> Marker:
        if spec not in self.specs:
            self.specs.append(spec)
        marker = Marker(f"{self.prefix}{self.specs.index(spec)}Z")
        marker.spec = spec
        return marker

    def pattern(self) -> re.Pattern[str]:
        return re.compile(re.escape(self.prefix) + r"(\d+)Z")

    def check(self, output: str, template: str) -> None:
        """A marker that a filter altered (|lower, |truncate…) would leak into mail: refuse it."""
        prefix = self.prefix[:-1]
        valid = len(self.pattern().findall(output))
        seen = len(re.findall(re.escape(prefix), output, flags=re.IGNORECASE))
        if seen != valid:
            raise TemplateError(
                "a subscriber field is passed through a filter; print it as is "
                "({{ subscriber.name }}), filters cannot run on per-recipient values",
                path=template,
            )


class SubscriberFields:
    """``subscriber`` in email templates: ``subscriber.name``, ``subscriber.city``, ``.get(k, d)``."""

    def __init__(self, registry: SlotRegistry) -> None:
        self._registry = registry

    def get(self, key: str, default: str = "") -> Marker:
        if key in BUILTIN_FIELDS:
            return self._registry.marker(SlotSpec(key, default=str(default)))
        return self._registry.marker(SlotSpec("attribute", key=key, default=str(default)))

    def __getattr__(self, key: str) -> Marker:
        if key.startswith("_"):
            raise AttributeError(key)
        return self.get(key)


@dataclass(frozen=True)
class Personalised:
    """Text with markers, split once into fixed pieces and slot indexes."""

    pieces: tuple[str | int, ...]

    @classmethod
    def split(cls, text: str, pattern: re.Pattern[str]) -> Personalised:
        pieces: list[str | int] = []
        for index, part in enumerate(pattern.split(text)):
            pieces.append(int(part) if index % 2 else part)
        return cls(tuple(p for p in pieces if p != ""))

    def fill(self, values: Sequence[str], escape: Callable[[str], str] | None = None) -> str:
        if escape is None:
            return "".join(p if isinstance(p, str) else values[p] for p in self.pieces)
        return "".join(p if isinstance(p, str) else escape(values[p]) for p in self.pieces)

    @property
    def slot_indexes(self) -> set[int]:
        return {p for p in self.pieces if isinstance(p, int)}
