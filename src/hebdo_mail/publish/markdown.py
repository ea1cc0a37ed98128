"""Markdown bodies: parsing to a token tree, French typography, and HTML rendering.

Articles keep the token tree, so the HTML (here) and the plaintext (plaintext.py) are both written
from the article's structure rather than one being scraped from the other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.token import Token

UrlResolver = Callable[[str], str]
# A picture of the issue folder -> its URL and the width it is shown at (CSS pixels).
PictureResolver = Callable[[str], tuple[str, int]]

_PARSER = MarkdownIt("commonmark", {"html": False, "linkify": True, "typographer": False}).enable(
    ["table", "linkify", "strikethrough"]
)

NBSP = "\u00a0"
NNBSP = "\u202f"  # narrow no-break space, the French thin space before ; ! ?


def parse(text: str) -> list[Token]:
    return _PARSER.parse(text)


def french_spacing(text: str) -> str:
    """Bind French punctuation to its word so no line ever starts with « : ; ! ? or ends with «.

    Only spaces the editor typed are replaced (plus the space inside guillemets, which French
    always has); "10:30" and URLs are left alone because they have no space before the colon.
    """
    text = re.sub(r"«[ \u00a0\u202f]*", "«" + NBSP, text)
    text = re.sub(r"[ \u00a0\u202f]*»", NBSP + "»", text)
    text = re.sub(r"(?<=\S) ([;!?])", NNBSP + r"\1", text)
    return re.sub(r"(?<=\S) :", NBSP + ":", text)


def typeset(text: str, language: str) -> str:
    """Plain text set in the language's typography (only French has rules)."""
    return french_spacing(text) if language.lower().startswith("fr") else text


def apply_typography(tokens: Sequence[Token], language: str) -> None:
    """Rewrite the text tokens of a body in place for the language's typography."""
    for token in tokens:
        for child in token.children or ():
            if child.type == "text":
                child.content = typeset(child.content, language)


def inline_text(token: Token) -> str:
    """Plain text of an inline token (or an image's alt), with all markup dropped."""
    parts: list[str] = []
    for child in token.children or ():
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(inline_text(child))
    return "".join(parts)


def iter_inline(tokens: Sequence[Token]) -> Any:
    """Yield (child, line) for every inline child, line being 0-based within the body."""
    for token in tokens:
        if token.type == "inline":
            line = token.map[0] if token.map else 0
            for child in token.children or ():
                yield child, line


def is_external(url: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", url)) or url.startswith(("#", "//"))


def local_name(url: str) -> str:
    """The issue folder's file a relative link names: 'photo%201.jpg#top' -> 'photo 1.jpg'."""
    return unquote(url.split("#")[0])


def shifted_level(tag: str, base: int) -> int:
    """Headings inside an article sit just below its title: "#" and "##" become ``base``."""
    return min(6, base + max(0, int(tag[1]) - 2))


def render_html(
    tokens: Sequence[Token],
    *,
    resolve_url: UrlResolver,
    resolve_picture: PictureResolver,
    outgoing: UrlResolver = str,
    heading_base: int = 4,
) -> str:
    """HTML for an article body: relative links go through ``resolve_url``, then every link
    through ``outgoing`` (counted or marked, links.py); pictures through ``resolve_picture``
    (their URL and the width they are shown at: the ``width`` attribute, since Outlook ignores
    CSS widths). The tokens are copied, never changed: one render never alters what the next
    one sees.
    """
    links = Resolvers(resolve_url, resolve_picture, outgoing)
    copies = [_email_ready(token, links, heading_base) for token in tokens]
    return str(_PARSER.renderer.render(copies, _PARSER.options, {}))


def _copy(token: Token) -> Token:
    # Token.copy() is shallow: its attrs dict would still be the original's.
    copy = token.copy()
    copy.attrs = dict(token.attrs)
    return copy


@dataclass(frozen=True)
class Resolvers:
    url: UrlResolver  # a relative link -> its absolute URL
    picture: PictureResolver
    outgoing: UrlResolver  # any link -> as the email writes it


def _email_ready(token: Token, links: Resolvers, heading_base: int) -> Token:
    """A copy of the token adjusted for the newsletter: heading levels, URLs, image sizing."""
    copy = _copy(token)
    if copy.type in ("heading_open", "heading_close"):
        copy.tag = f"h{shifted_level(token.tag, heading_base)}"
    elif copy.type == "table_open":
        copy.attrSet("class", "article-table")
        copy.attrSet("width", "100%")
    elif copy.type == "inline" and token.children:
        copy.children = [_inline_ready(c, links) for c in token.children]
    return copy


def _inline_ready(child: Token, links: Resolvers) -> Token:
    copy = _copy(child)
    if copy.type == "link_open":
        href = str(copy.attrGet("href") or "")
        copy.attrSet("href", links.outgoing(href if is_external(href) else links.url(href)))
    elif copy.type == "image":
        src = str(copy.attrGet("src") or "")
        url, width = (src, None) if is_external(src) else links.picture(local_name(src))
        copy.attrSet("src", url)
        copy.attrSet("class", "article-image")
        if width is not None:  # a picture from elsewhere is shown at its own width
            copy.attrSet("width", str(width))
            copy.attrSet("style", picture_style(width))
    return copy


def picture_style(width: int) -> str:
    """Fluid up to the picture's own width, never beyond: ``max-width:100%`` alone does not
    shrink a picture inside the email's layout tables, whose cells grow to fit it."""
    return f"width:100%; max-width:{width}px"
