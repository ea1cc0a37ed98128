"""Stage 1: an issue folder's Markdown files become validated ``Article`` values.

Each file is YAML front matter between ``---`` lines, then a Markdown body. Everything is checked
here (fields, sections are checked by issue.py, images, local links, media files), with the file and
line of each problem, before anything is rendered.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from markdown_it.token import Token
from pydantic import Field, ValidationError, field_validator, model_validator

from ..checks import check_language, check_single_line
from ..config import StrictModel, validation_error
from ..errors import IssueError
from . import markdown
from .media import FileKind, inspect_file
from .pictures import PictureError, read_picture

# What a link written in front matter may lead to (the email, the web page and the static site
# print it as it is in href and src): the web, a mail address, or a file of the issue folder.
# Anything else, javascript: and data: first, could run in a reader's browser.
WEB = re.compile(r"https?://[^\s/]", re.IGNORECASE)
WEB_OR_MAIL = re.compile(r"(?:https?://[^\s/]|mailto:\S)", re.IGNORECASE)


def check_link(value: str, allowed: re.Pattern[str], *, local: bool) -> str:
    if (local and not markdown.is_external(value) and value == value.strip()) or allowed.match(
        value
    ):
        return value
    schemes = "http:// or https://" + (" or mailto:" if allowed is WEB_OR_MAIL else "")
    elsewhere = " (or a file of the issue folder)" if local else ""
    raise ValueError(f"{value!r} is not a link this allows: use {schemes}{elsewhere}")


class ImageModel(StrictModel):
    src: str = Field(min_length=1)
    alt: str = Field(min_length=1)

    _link = field_validator("src")(lambda v: check_link(v, WEB, local=True))


class MediaModel(StrictModel):
    file: str | None = None
    url: str | None = None
    label: str = Field(min_length=1)

    _link = field_validator("url")(
        lambda v: check_link(v, WEB_OR_MAIL, local=False) if v is not None else v
    )

    @model_validator(mode="after")
    def _one_target(self) -> MediaModel:
        if (self.file is None) == (self.url is None):
            raise ValueError("give exactly one of 'file' (in the issue folder) or 'url'")
        return self


class FrontMatter(StrictModel):
    title: str = Field(min_length=1)
    section: str = Field(min_length=1)
    order: int | None = None
    summary: str | None = None
    author: str | None = None
    date: dt.date | None = None
    lang: str | None = None
    image: ImageModel | None = None
    media: list[MediaModel] = Field(default_factory=list)

    _single_line = field_validator("title", "section", "author")(
        lambda v: check_single_line(v) if v is not None else v
    )
    _language = field_validator("lang")(lambda v: check_language(v) if v is not None else v)


@dataclass(frozen=True)
class Media:
    label: str
    target: str  # a file name in the issue folder, or an external URL
    is_file: bool
    kind: FileKind | None = None
    size: int | None = None


@dataclass(frozen=True)
class Article:
    path: Path
    stem: str  # shared by the translations of one article
    lang: str | None  # None: the newsletter's default language
    title: str
    section: str
    order: int | None
    summary: str | None
    author: str | None
    date: dt.date | None
    image: ImageModel | None
    media: tuple[Media, ...]
    tokens: tuple[Token, ...]
    body_line: int  # line of the file where the Markdown body starts (1-based)

    @property
    def pictures(self) -> tuple[str, ...]:
        """Pictures of the issue folder this article shows (its own, then its body's)."""
        names = []
        if self.image and not markdown.is_external(self.image.src):
            names.append(self.image.src)
        for child, _ in markdown.iter_inline(self.tokens):
            if child.type == "image" and not markdown.is_external(url := _child_url(child) or ""):
                names.append(markdown.local_name(url))
        return tuple(dict.fromkeys(names))

    @property
    def downloads(self) -> tuple[str, ...]:
        """Files of the issue folder this article offers: its media, then its body's links."""
        names = [m.target for m in self.media if m.is_file]
        for child, _ in markdown.iter_inline(self.tokens):
            if child.type == "link_open" and not markdown.is_external(
                url := _child_url(child) or ""
            ):
                names.append(markdown.local_name(url))
        return tuple(dict.fromkeys(names))

    def sub_headings(self) -> list[str]:
        return [
            markdown.inline_text(self.tokens[i + 1])
            for i, token in enumerate(self.tokens)
            if token.type == "heading_open"
        ]


def _child_url(child: Token) -> str | None:
    if child.type == "link_open":
        return str(child.attrGet("href") or "")
    if child.type == "image":
        return str(child.attrGet("src") or "")
    return None


class _Loader(yaml.SafeLoader):
    """YAML without the 1.1 surprises: 'no', 'on', 'off', 'yes' stay strings ('no' is Norwegian)."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

_FENCE = re.compile(r"^---[ \t]*$")


def split_front_matter(text: str, path: Path) -> tuple[str, str, int]:
    """(front matter, body, 1-based line where the body starts)."""
    lines = text.split("\n")
    if not lines or not _FENCE.match(lines[0].lstrip("\ufeff")):
        raise IssueError(
            "has no front matter; start the file with a '---' line, 'title:' and 'section:', "
            "then another '---' line",
            path=path,
            line=1,
        )
    for index in range(1, len(lines)):
        if _FENCE.match(lines[index]):
            return "\n".join(lines[1:index]), "\n".join(lines[index + 1 :]), index + 2
    raise IssueError("front matter is not closed; add a '---' line after it", path=path, line=1)


def _key_lines(front: str) -> dict[tuple[str | int, ...], int]:
    """Line (1-based, within the file) of every key and list item in the front matter."""
    found: dict[tuple[str | int, ...], int] = {}

    def walk(node: yaml.Node, loc: tuple[str | int, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = (*loc, str(key_node.value))
                found[key] = key_node.start_mark.line + 2  # +1 for 1-based, +1 for the '---'
                walk(value_node, key)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                found[(*loc, index)] = item.start_mark.line + 2
                walk(item, (*loc, index))

    try:
        root = yaml.compose(front, Loader=_Loader)
    except yaml.YAMLError:
        return found
    if root is not None:
        walk(root, ())
    return found


# One-line keys whose values are prose: French puts " : " in most titles, which plain YAML reads
# as a second "key: value". Such a value, written unquoted, is quoted before YAML sees it.
_PROSE_LINE = re.compile(
    r"^(?P<lead>\s*(?:-\s+)?(?:title|summary|author|label|alt)\s*:[ \t]+)"
    r"(?P<value>[^\s'\"|>&*!%@`{\[#].*)$"
)


def quote_prose_values(front: str) -> str:
    """``title: Historique : les plans`` -> ``title: 'Historique : les plans'`` (a trailing
    `` # comment`` stays a comment)."""
    lines = []
    for line in front.split("\n"):
        match = _PROSE_LINE.match(line)
        if match:
            value, hash_mark, comment = match["value"].partition(" #")
            value = value.rstrip()
            if re.search(r":(\s|$)", value):
                quoted = "'" + value.replace("'", "''") + "'"
                line = match["lead"] + quoted + (f" #{comment}" if hash_mark else "")
        lines.append(line)
    return "\n".join(lines)


def read_front_matter(front: str, path: Path) -> FrontMatter:
    front = quote_prose_values(front)
    try:
        data: Any = yaml.load(front, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        problem = getattr(exc, "problem", None) or "not valid YAML"
        hint = ""
        if "mapping values are not allowed" in problem or "got ':'" in problem:
            hint = (
                "; a value containing ': ' must be quoted, as in title: \"Historique : les plans\""
            )
        raise IssueError(
            f"front matter is not valid YAML: {problem}{hint}", path=path, line=line
        ) from None
    if not isinstance(data, dict):
        raise IssueError(
            "front matter must be 'key: value' lines (title, section, ...)", path=path, line=2
        )
    try:
        return FrontMatter.model_validate(data)
    except ValidationError as exc:
        lines = _key_lines(front)

        def locate(loc: tuple[str | int, ...]) -> int:
            for cut in range(len(loc), 0, -1):
                if loc[:cut] in lines:
                    return lines[loc[:cut]]
            return 1  # a missing key: point at the start of the front matter

        raise validation_error(exc, path=path, error=IssueError, locate=locate) from None


def article_name_parts(path: Path) -> tuple[str, str | None]:
    """'visite.en.md' -> ('visite', 'en'); 'visite.md' -> ('visite', None)."""
    stem = path.name.removesuffix(".md")
    base, dot, suffix = stem.rpartition(".")
    if dot and re.fullmatch(r"[a-z]{2,3}(?:[-_][A-Za-z]{2,4})?", suffix):
        return base, suffix
    return stem, None


def load_article(path: Path, folder: Path, default_language: str) -> Article:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise IssueError("is not UTF-8 text; save it as UTF-8", path=path, line=line) from None
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n"))
    front, body, body_line = split_front_matter(text, path)
    meta = read_front_matter(front, path)
    stem, name_lang = article_name_parts(path)
    if name_lang and meta.lang and name_lang != meta.lang:
        raise IssueError(
            f"file name says language {name_lang!r} but front matter says lang: {meta.lang}; "
            "make them agree",
            path=path,
            line=2,
        )
    language = name_lang or meta.lang or default_language
    tokens = markdown.parse(body)
    markdown.apply_typography(tokens, language)
    media = tuple(_media(item, folder, path, language) for item in meta.media)
    article = Article(
        path=path,
        stem=stem,
        lang=name_lang or meta.lang,
        title=markdown.typeset(meta.title, language),
        section=meta.section,
        order=meta.order,
        summary=markdown.typeset(meta.summary, language) if meta.summary else None,
        author=meta.author,
        date=meta.date,
        image=meta.image,
        media=media,
        tokens=tuple(tokens),
        body_line=body_line,
    )
    _check_body(article, folder)
    return article


def _media(item: MediaModel, folder: Path, path: Path, language: str) -> Media:
    label = markdown.typeset(item.label, language)
    if item.url is not None:
        return Media(label=label, target=item.url, is_file=False)
    assert item.file is not None
    target = _local_file(
        item.file, folder, path, front_matter_line(path, item.file), what="media file"
    )
    kind, size = inspect_file(target)
    return Media(label=label, target=item.file, is_file=True, kind=kind, size=size)


def front_matter_line(path: Path, needle: str) -> int | None:
    """The first line of the file mentioning ``needle``: where a bad value was written."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    return None


def _local_file(name: str, folder: Path, path: Path, line: int | None, *, what: str) -> Path:
    target = (folder / name).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise IssueError(
            f"{what} {name!r} is outside the issue folder; copy it in", path=path, line=line
        )
    if not target.is_file():
        raise IssueError(
            f"{what} {name!r} is not in the issue folder {folder.name}/; add it or fix the name",
            path=path,
            line=line,
        )
    return target


def _check_body(article: Article, folder: Path) -> None:
    if article.image and not markdown.is_external(article.image.src):
        line = front_matter_line(article.path, article.image.src)
        _check_picture(article.image.src, folder, article.path, line)
    for child, body_index in markdown.iter_inline(article.tokens):
        line = article.body_line + body_index
        if child.type == "image" and not markdown.inline_text(child).strip():
            raise IssueError(
                "image has no alt text; describe it: ![what the picture shows](file.jpg)",
                path=article.path,
                line=line,
            )
        url = _child_url(child)
        if url and not markdown.is_external(url):
            name = markdown.local_name(url)
            if child.type == "image":
                _check_picture(name, folder, article.path, line)
            else:
                _local_file(name, folder, article.path, line, what="linked file")


def _check_picture(name: str, folder: Path, path: Path, line: int | None) -> None:
    target = _local_file(name, folder, path, line, what="image")
    try:
        read_picture(target)
    except PictureError as exc:
        raise IssueError(f"picture {name!r} {exc}", path=path, line=line) from None
