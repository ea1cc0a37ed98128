"""Cross-site request forgery: what a state-changing form post must show to be believed.

Two checks, both required: the browser's ``Origin`` header (or, when a browser sends none, its
``Referer``) names the site of ``base_url``; and the form carries the token of the page it was
served on (an HMAC of that page's path and the time, under the workspace secret, valid a day).
A cross-site post fails the first whatever it carries. The RFC 8058 one-click unsubscribe is the
one exception, and is the caller's to make: mail clients send it without any Origin.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from starlette.requests import Request

from ..audience.tokens import TokenSigner
from ..publish.i18n import N_

# Shown when a form post is refused as cross-site (or its token is missing or stale).
FORM_REFUSED = N_("This form was not sent from this site's page. Please send it again from here.")
FORM_TOKEN_FIELD = "form_token"
FORM_TOKEN_MAX_AGE = 24 * 3600  # seconds: a page left open in a tab for a day still works
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a URL, default port filled in; None for anything else ("null")."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


class FormGuard:
    def __init__(self, signer: TokenSigner, base_url: str) -> None:
        self.signer = signer
        self.origin = origin_of(base_url)

    def token(self, path: str) -> str:
        """The token the page at ``path`` puts in its form."""
        return self.signer.timed_token(path, "form")

    def from_this_site(self, request: Request) -> bool:
        """False when the browser says the post comes from another site (or from an opaque
        origin, "null": a sandboxed frame); True when it says this site, or says nothing."""
        origin = request.headers.get("origin")
        if origin is not None:
            return origin_of(origin) == self.origin
        referer = request.headers.get("referer")
        if referer is not None:
            return origin_of(referer) == self.origin
        return True  # an old or private browser: the form token has to do

    def accepts(self, request: Request, form: Mapping[str, object]) -> bool:
        """A post of this site's own form, from this site."""
        token = form.get(FORM_TOKEN_FIELD)
        if not isinstance(token, str) or not self.from_this_site(request):
            return False
        verified = self.signer.verify_timed(token, "form", FORM_TOKEN_MAX_AGE)
        return verified is not None and verified[0] == request.url.path
