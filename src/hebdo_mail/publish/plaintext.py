"""The plaintext alternative, written from an article's Markdown structure (never scraped from HTML).

Headings are underlined, paragraphs wrapped at 76 columns, links become numbered references listed
after the article, lists and quotes are indented, tables become aligned columns (or one record per
row when too wide). Only a lone URL may pass the width.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence

from markdown_it.token import Token
from markdown_it.tree import SyntaxTreeNode

from .markdown import UrlResolver, is_external

WIDTH = 76
QUOTE_INDENT = "    "


def wrap(text: str, width: int, first: str = "", rest: str = "") -> list[str]:
    """Wrap text, keeping hard line breaks; no-break spaces hold (textwrap only splits on ASCII)."""
    wrapper = textwrap.TextWrapper(
        width=max(width, 20),
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    )
    lines: list[str] = []
    for index, piece in enumerate(text.split("\n")):
        wrapper.initial_indent = first if index == 0 else rest
        lines.extend(wrapper.wrap(piece) or [wrapper.initial_indent.rstrip()])
    return lines


def underline(text: str, char: str) -> str:
    return char * max(len(line) for line in text.split("\n"))


def reference_lines(links: Sequence[str], width: int = WIDTH) -> list[str]:
    """'[1] https://…' lines; a URL too long to share its line goes alone on the next one."""
    lines: list[str] = []
    for number, url in enumerate(links, start=1):
        marker = f"[{number}]"
        if len(marker) + 1 + len(url) <= width:
            lines.append(f"{marker} {url}")
        else:
            lines.extend([marker, url])
    return lines


class PlainTextWriter:
    """Renders one article body; the links it meets are numbered in ``self.links``."""

    def __init__(
        self, *, resolve_url: UrlResolver, gettext: Callable[[str], str], width: int = WIDTH,
        outgoing: UrlResolver = str,
    ):  # fmt: skip
        self.resolve_url = resolve_url
        self.outgoing = outgoing  # a reference as the email writes it (counted, marked)
        self.gettext = gettext
        self.width = width
        self.links: list[str] = []

    def render(self, tokens: Sequence[Token]) -> str:
        """The body followed by its numbered references."""
        lines = self._blocks(SyntaxTreeNode(list(tokens)).children, self.width)
        if self.links:
            lines += ["", *reference_lines(self.links, self.width)]
        return "\n".join(lines)

    # -- blocks --------------------------------------------------------------------------------

    def _blocks(
        self, nodes: Sequence[SyntaxTreeNode], width: int, *, tight: bool = False
    ) -> list[str]:
        lines: list[str] = []
        for node in nodes:
            block = self._block(node, width)
            if lines and block and not tight:
                lines.append("")
            lines.extend(block)
        return lines

    def _block(self, node: SyntaxTreeNode, width: int) -> list[str]:
        kind = node.type
        if kind == "paragraph":
            return wrap(self._inline(node.children[0]), width)
        if kind == "heading":
            text = self._inline(node.children[0])
            lines = wrap(text, width)
            return [*lines, underline("\n".join(lines), "-")]
        if kind in ("bullet_list", "ordered_list"):
            return self._list(node, width)
        if kind == "blockquote":
            inner = self._blocks(node.children, width - len(QUOTE_INDENT))
            return [QUOTE_INDENT + line if line else "" for line in inner]
        if kind in ("fence", "code_block"):
            return [QUOTE_INDENT + line for line in node.content.rstrip("\n").split("\n")]
        if kind == "hr":
            return ["* * *".center(width).rstrip()]
        if kind == "table":
            return self._table(node, width)
        return wrap(node.content, width) if node.content else []

    def _list(self, node: SyntaxTreeNode, width: int) -> list[str]:
        ordered = node.type == "ordered_list"
        start = int(node.attrs.get("start", 1) or 1) if ordered else 1
        markers = [f"{start + i}." if ordered else "-" for i in range(len(node.children))]
        pad = max(len(m) for m in markers) + 1 if markers else 2
        tight = all(
            child.hidden
            for item in node.children
            for child in item.children
            if child.type == "paragraph"
        )
        lines: list[str] = []
        for marker, item in zip(markers, node.children, strict=True):
            body = self._blocks(item.children, width - pad, tight=tight)
            if lines and not tight:
                lines.append("")
            for index, line in enumerate(body or [""]):
                prefix = marker.ljust(pad) if index == 0 else " " * pad
                lines.append((prefix + line) if line else "")
        return lines

    def _table(self, node: SyntaxTreeNode, width: int) -> list[str]:
        rows = [
            [self._inline(cell.children[0]) if cell.children else "" for cell in row.children]
            for section in node.children
            for row in section.children
        ]
        if not rows:
            return []
        columns = max(len(r) for r in rows)
        rows = [r + [""] * (columns - len(r)) for r in rows]
        widths = [max(len(r[c]) for r in rows) for c in range(columns)]
        if sum(widths) + 2 * (columns - 1) <= width and all("\n" not in c for r in rows for c in r):

            def line(cells: list[str]) -> str:
                return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

            rule = "  ".join("-" * w for w in widths)
            return [line(rows[0]), rule, *(line(r) for r in rows[1:])]
        # Too wide for aligned columns: one "Header: value" record per row reads better.
        header, *body = rows
        lines: list[str] = []
        for row in body:
            if lines:
                lines.append("")
            for name, value in zip(header, row, strict=True):
                label = f"{name}: " if name else ""
                lines.extend(wrap(label + value, width, rest="  "))
        return lines

    # -- inline --------------------------------------------------------------------------------

    def _inline(self, node: SyntaxTreeNode) -> str:
        parts: list[str] = []
        for child in node.children:
            kind = child.type
            if kind in ("text", "code_inline"):
                parts.append(child.content)
            elif kind == "softbreak":
                parts.append(" ")
            elif kind == "hardbreak":
                parts.append("\n")
            elif kind == "link":
                parts.append(self._link(child))
            elif kind == "image":
                alt = self._inline(child)
                parts.append("[" + self.gettext("Image: %(alt)s") % {"alt": alt} + "]")
            else:  # em, strong, s: the words stay, the markup goes
                parts.append(self._inline(child))
        return "".join(parts)

    def _link(self, node: SyntaxTreeNode) -> str:
        href = str(node.attrs.get("href", ""))
        url = href if is_external(href) else self.resolve_url(href)
        text = self._inline(node)
        if text in (href, url, url.removeprefix("mailto:")) or url.startswith("#"):
            return text  # a bare address reads as it is, and leads where it says
        url = self.outgoing(url)
        if url not in self.links:
            self.links.append(url)
        return f"{text} [{self.links.index(url) + 1}]"
