"""What rendering hands on to delivery: a ``RenderedEdition``, and the few facts both sides need.

Kept apart from render.py, which imports premailer, Jinja2 and Babel: delivery reads these
values (from a fresh render, or from the build's mail cache, mailcache.py) without loading the
renderer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..workspace import Workspace
from .slots import SlotSpec

MAX_LINE_OCTETS = 998  # RFC 5322: no line of a message may be longer
GMAIL_CLIP_BYTES = 100 * 1024  # Gmail clips messages past about 102 KB
ARTICLE_DIGEST = "article:"  # the digests' key of an article, before its file name


@dataclass(frozen=True)
class RenderedEdition:
    issue_id: str
    lang: str
    subject: str
    html: str  # inlined email HTML, with slot markers
    text: str  # plaintext alternative, with slot markers
    web_html: str  # the standalone web page ("" when read from the mail cache: mail needs none)
    slots: tuple[SlotSpec, ...]
    marker_pattern: re.Pattern[str]
    # Short hashes of what readers get: the subject, each article (by file name) and the whole
    # message; a resumed send compares them with the first run's (deliver/changes.py).
    digests: Mapping[str, str]


def web_url(workspace: Workspace, issue_id: str, lang: str) -> str:
    return f"{workspace.settings.newsletter.base_url}/issues/{issue_id}/{lang}/"
