"""A changed issue is never sent half-and-half: each run records in the send log a digest of the
rendered editions it mails, and a run that resumes a send compares the issue as it renders now
with the digest of the run before it. What differs is named: the edition, then the article (by
its file), the subject, or the rest of the message (a template, the settings).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..publish.rendered import ARTICLE_DIGEST, RenderedEdition

Digest = dict[str, dict[str, str]]  # edition -> part -> short hash


def digest_of(editions: Mapping[str, RenderedEdition]) -> Digest:
    return {lang: dict(edition.digests) for lang, edition in editions.items()}


def describe_changes(before: Mapping[str, Mapping[str, str]], now: Digest) -> str | None:
    """What changed from ``before`` to ``now``, in words, or None when readers get the same."""
    changes = []
    for lang, parts in before.items():
        current = now.get(lang)
        if current is None:
            changes.append(f"the {lang} edition is gone")
            continue
        if current.get("message") == parts.get("message"):
            continue
        articles = sorted(
            key.removeprefix(ARTICLE_DIGEST)
            for key in parts.keys() | current.keys()
            if key.startswith(ARTICLE_DIGEST) and parts.get(key) != current.get(key)
        )
        if parts.get("subject") != current.get("subject"):
            articles.insert(0, "the subject")
        what = ", ".join(articles) or "the layout or footer (a template or a setting)"
        changes.append(f"{lang} edition: {what}")
    for lang in now.keys() - before.keys():
        changes.append(f"a new {lang} edition")
    return "; ".join(changes) or None
