"""Stage 3 (pure, no I/O): an edition becomes a ``RenderedEdition``: the email HTML with its CSS
inlined once, the plaintext alternative, and the web page.

Per-recipient fields are markers (see slots.py), so this work happens once per edition, never once
per subscriber.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup
from premailer import Premailer

from ..workspace import Workspace
from . import i18n, markdown
from .articles import Media
from .feed import feed_name
from .files import LOGO
from .issue import Edition, Issue
from .links import AS_WRITTEN, OutgoingLinks, article_links
from .plaintext import PlainTextWriter
from .rendered import ARTICLE_DIGEST, MAX_LINE_OCTETS, RenderedEdition, web_url
from .slots import SlotRegistry, SlotSpec, SubscriberFields
from .templating import render, workspace_environment


@dataclass(frozen=True)
class ArticleView:
    title: str
    anchor: str
    section: str
    summary: str | None
    author: str | None
    date: Any
    image: dict[str, Any] | None
    html: Markup
    text: str
    sub_headings: list[str]
    media: list[dict[str, Any]]  # its downloads: label, url, kind, size
    lang: str  # of its text: a fallback article is not in its edition's language


def files_url(workspace: Workspace, issue_id: str) -> str:
    """Where an issue's files are online (their public names follow)."""
    return f"{workspace.settings.newsletter.base_url}/issues/{issue_id}/files/"


def render_edition(
    issue: Issue, lang: str, workspace: Workspace, *, links: OutgoingLinks = AS_WRITTEN
) -> RenderedEdition:
    """``links`` writes the email's article links (counted, with a ref; see links.py)."""
    edition = issue.editions[lang]
    env = workspace_environment(workspace, lang)
    gettext = i18n.translations(lang, workspace.locale_dir).gettext
    registry = SlotRegistry(hashlib.sha256(f"{issue.id}/{lang}".encode()).hexdigest()[:8])

    email_context = _context(
        issue, edition, workspace, files_url(workspace, issue.id), gettext, outgoing=links
    )
    email_context["subscriber"] = SubscriberFields(registry)
    email_context["unsubscribe_url"] = registry.marker(SlotSpec("unsubscribe_url"))
    email_context["preferences_url"] = registry.marker(SlotSpec("preferences_url"))

    html = render(env, "email.html", email_context)
    registry.check(html, "email.html")
    html = fold_long_lines(inline_css(html))
    text = normalise_text(render(env, "email.txt", email_context))
    registry.check(text, "email.txt")
    digests = {
        ARTICLE_DIGEST + path.name: _digest(repr(view))
        for path, view in email_context["views"].items()
    }
    digests.update(subject=_digest(edition.subject), message=_digest(html + "\0" + text))
    return RenderedEdition(
        issue_id=issue.id,
        lang=lang,
        subject=edition.subject,
        html=html,
        text=text,
        web_html=render_web(issue, lang, workspace),
        slots=tuple(registry.specs),
        marker_pattern=registry.pattern(),
        digests=digests,
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def outgoing_links(issue: Issue, workspace: Workspace, secret: bytes | None) -> OutgoingLinks:
    """The issue's links, and how its emails write them: ``secret`` signs counted links (None:
    clicks are not counted), ``[tracking] ref`` marks them."""
    tracking = workspace.settings.tracking
    ref = (tracking.ref_param, tracking.ref) if tracking.ref else None
    return OutgoingLinks(
        issue_id=issue.id,
        base_url=workspace.settings.newsletter.base_url,
        links=tuple(article_links(issue, FileLinks(issue, files_url(workspace, issue.id)))),
        secret=secret,
        ref=ref,
    )


def render_web(issue: Issue, lang: str, workspace: Workspace) -> str:
    """The edition as a standalone web page. Its links are relative (``../files/…`` and the cover
    page at ``../../../``), so it works wherever the archive is served from, build --site included."""
    env = workspace_environment(workspace, lang)
    gettext = i18n.translations(lang, workspace.locale_dir).gettext
    context = _context(issue, issue.editions[lang], workspace, "../files/", gettext)
    context["archive_url"] = "../../../"
    context["feed_url"] = "../../../" + feed_name(lang, workspace.settings.newsletter.language)
    return render(env, "web.html", context)


class FileLinks:
    """URLs of an issue's files under ``base``: the email's are absolute, the web page's relative."""

    def __init__(self, issue: Issue, base: str) -> None:
        self.files = issue.files
        self.base = base

    def picture(self, name: str) -> tuple[str, int]:
        """URL and display width of a picture of the issue folder."""
        entry = self.files.picture(name)
        assert entry.picture is not None
        return self.base + entry.public_name, entry.picture.display_width

    def download(self, name: str) -> str:
        """URL of a file of the issue folder offered for download (a media entry's file)."""
        return self.base + self.files.download(name).public_name

    def link(self, href: str) -> str:
        """URL of a relative link of an article's body (its #part kept)."""
        _, hash_mark, fragment = href.partition("#")
        return self.download(markdown.local_name(href)) + hash_mark + fragment


def _context(
    issue: Issue,
    edition: Edition,
    workspace: Workspace,
    files_base: str,
    gettext: Callable[[str], str],
    *,
    outgoing: Callable[[str], str] = AS_WRITTEN,
) -> dict[str, Any]:
    settings = workspace.settings.newsletter
    links = FileLinks(issue, files_base)
    absolute = FileLinks(issue, files_url(workspace, issue.id))  # the text part's links

    def media_view(media: Media) -> dict[str, Any]:
        url = outgoing(links.download(media.target) if media.is_file else media.target)
        kind = media.kind.name if media.kind else None
        return {"label": media.label, "url": url, "kind": kind, "size": media.size}

    def view(article: Any, heading_base: int) -> ArticleView:
        writer = PlainTextWriter(resolve_url=absolute.link, outgoing=outgoing, gettext=gettext)
        image = None
        if article.image:
            src = article.image.src
            if markdown.is_external(src):
                url, width = src, None
            else:
                url, width = links.picture(src)
            style = markdown.picture_style(width) if width else None
            image = {"url": url, "alt": article.image.alt, "width": width, "style": style}
        return ArticleView(
            title=article.title,
            anchor=f"article-{article.stem}",
            section=edition.section_names[article.section],
            summary=article.summary,
            author=article.author,
            date=article.date,
            image=image,
            html=Markup(
                markdown.render_html(
                    article.tokens,
                    resolve_url=links.link,
                    resolve_picture=links.picture,
                    outgoing=outgoing,
                    heading_base=heading_base,
                )
            ),
            text=writer.render(article.tokens),
            sub_headings=article.sub_headings(),
            media=[media_view(m) for m in article.media],
            lang=article.lang or issue.default_language,
        )

    # The lead story's title is an h2 (its sub-headings h3); other articles sit under a section h2.
    views = {a.path: view(a, 3 if a is edition.lead else 4) for a in edition.articles}
    logo = issue.files.logo
    return {
        "newsletter": {
            "logo": {"url": links.picture(LOGO)[0], "width": logo.picture.display_width}
            if logo and logo.picture
            else None,
            "name": edition.newsletter_name,
            "base_url": settings.base_url,
            "contact": settings.contact or settings.reply_to or settings.sender_address,
        },
        "issue": {
            "id": issue.id,
            "number": issue.number,
            "date": edition.date_text,
            "subject": edition.subject,
            "preheader": edition.preheader,
            "lang": edition.lang,
        },
        "lead": views[edition.lead.path],
        "sections": [
            {"name": s.name, "anchor": s.anchor, "articles": [views[a.path] for a in s.articles]}
            for s in edition.sections
        ],
        # Every download of the edition, for templates that list them together; the shipped
        # ones show each article's under the article.
        "media": [
            {**media_view(item.media), "article": views[item.article.path]}
            for item in edition.media
        ],
        "views": views,  # each article's view by its file: what the digests are taken of
        "web_url": web_url(workspace, issue.id, edition.lang),
        "archive_url": settings.base_url + "/",
    }


def inline_css(html: str) -> str:
    """Inline the CSS of ``<style>`` blocks; blocks marked data-premailer="ignore" (the @media and
    dark-mode rules, which cannot be inlined) are kept in the head with their !important."""
    return str(
        Premailer(
            html,
            strip_important=False,
            keep_style_tags=False,
            remove_classes=False,
            allow_network=False,
            disable_validation=True,
            # The markup sets its width attributes itself: a picture's is the width it is shown
            # at (Outlook's), which its CSS "width:100%" must not replace; "height:auto" would
            # become the invalid attribute height="auto".
            disable_basic_attributes=["width", "height"],
            cssutils_logging_level=logging.CRITICAL,
        ).transform()
    )


_FOLD_POINT = 900


def fold_long_lines(html: str) -> str:
    """Break lines longer than the limit at a space between words (never inside a tag or <pre>),
    where a newline means the same to HTML as the space it replaces."""
    out: list[str] = []
    in_pre = False
    for line in html.split("\n"):
        lowered = line.lower()
        if "<pre" in lowered:
            in_pre = True
        if not in_pre:
            while len(line.encode()) > MAX_LINE_OCTETS:
                cut = _fold_position(line)
                if cut is None:
                    break
                out.append(line[:cut])
                line = line[cut + 1 :]
        if "</pre" in lowered:
            in_pre = False
        out.append(line)
    return "\n".join(out)


def _fold_position(line: str) -> int | None:
    in_tag = False
    best = None
    budget = 0
    for index, char in enumerate(line):
        budget += len(char.encode())
        if budget > _FOLD_POINT and best is not None:
            break
        if char == "<":
            in_tag = True
        elif char == ">":
            in_tag = False
        elif char == " " and not in_tag and index > 0:
            best = index
    return best


def normalise_text(text: str) -> str:
    """No trailing spaces, at most one blank line in a row, one final newline."""
    lines = [line.rstrip() for line in text.split("\n")]
    collapsed = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return collapsed.strip("\n") + "\n"
