"""Signed tokens for unsubscribe and confirmation links.

A token is the address (base64url) and an HMAC-SHA256 of (purpose, list, address) under the
workspace secret, so it cannot be forged, cannot be moved to another address or list, and is
checked in constant time. The secret comes from ``HEBDO_SECRET`` or the workspace's
``.hebdo-secret`` file (mode 0600, created on first use when missing).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import time

from .addresses import address_key

# A token as it appears in text: the encoded address, a dot, the 43 characters of the MAC.
TOKEN_PATTERN = re.compile(r"\b([A-Za-z0-9_-]{2,400}\.[A-Za-z0-9_-]{43})\b")
# A confirmation link carries a name of up to 200 characters besides the address.
MAX_TIMED_TOKEN = 3000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


PROOF = "proof"  # tokens that open an unsent issue's web page to the readers of a proof copy


class TokenSigner:
    """Makes and checks tokens for one list."""

    def __init__(self, secret: bytes, list_id: str) -> None:
        self._secret = secret
        self.list_id = list_id

    def _mac(self, purpose: str, text: str) -> bytes:
        message = f"{purpose}\n{self.list_id}\n{text}".encode()
        return hmac.digest(self._secret, message, "sha256")  # the one-shot C function: fast

    def signed(self, address: str, purpose: str = "unsubscribe") -> tuple[str, bytes]:
        """The token and its MAC (from which other per-address values can be derived)."""
        mac = self._mac(purpose, address_key(address))
        return f"{_b64(address.encode())}.{_b64(mac)}", mac

    def verp_token(self, address: str) -> str:
        """16 hex digits naming an address in a VERP return path (case-proof, short enough for
        a local part); bounces.py finds the address again by computing it for every reader."""
        return self._mac("verp", address_key(address))[:8].hex()

    def token(self, address: str, purpose: str = "unsubscribe") -> str:
        return self.signed(address, purpose)[0]

    def timed_token(self, payload: str, purpose: str, now: float | None = None) -> str:
        """A token carrying ``payload`` (an address, or what a form asked for) and the moment it
        was made, so that it can expire (confirmation links, form tokens)."""
        stamp = str(int(now if now is not None else time.time()))
        mac = self._mac(purpose, f"{payload}\n{stamp}")
        return f"{_b64(payload.encode())}.{_b64(stamp.encode())}.{_b64(mac)}"

    def verify_timed(
        self, token: str, purpose: str, max_age: float, now: float | None = None
    ) -> tuple[str, int] | None:
        """The payload of a genuine token younger than ``max_age`` seconds, and when it was
        made (epoch seconds); else None."""
        if not isinstance(token, str) or len(token) > MAX_TIMED_TOKEN or token.count(".") != 2:
            return None
        encoded, stamp_part, signature = token.split(".")
        try:
            payload = _unb64(encoded).decode("utf-8")
            stamp = _unb64(stamp_part).decode("ascii")
            given = _unb64(signature)
            made = int(stamp)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        if not hmac.compare_digest(given, self._mac(purpose, f"{payload}\n{stamp}")):
            return None
        age = (now if now is not None else time.time()) - made
        return (payload, made) if 0 <= age <= max_age else None

    def verify(self, token: str, purpose: str = "unsubscribe") -> str | None:
        """The address a token was made for, or None when it is not genuine."""
        if not isinstance(token, str) or len(token) > 600 or token.count(".") != 1:
            return None
        encoded, signature = token.split(".")
        try:
            address = _unb64(encoded).decode("utf-8")
            given = _unb64(signature)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        genuine = hmac.compare_digest(given, self._mac(purpose, address_key(address)))
        return address if genuine else None
