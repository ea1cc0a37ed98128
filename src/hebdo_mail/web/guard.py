"""What stands between the internet and the web app's pages: security headers on every response
(error pages included), a cap on request bodies, the client's address (believing X-Forwarded-For
only from trusted proxies), and a per-client rate limit for the forms."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from starlette.exceptions import HTTPException

MAX_BODY = 16 * 1024  # bytes: the forms are a few fields long
# Paths that take a file, and how large (the dashboard's import, behind its login).
UPLOADS = {"/admin/import": 20 * 1024 * 1024}

SECURITY_HEADERS = [
    (b"content-security-policy", (
        b"default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; "
        b"media-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    # Unsubscribe and confirm URLs carry tokens: never hand them to another site. (Not
    # no-referrer: browsers then send "Origin: null" with this site's own forms, which the
    # cross-site check must refuse.)
    (b"referrer-policy", b"same-origin"),
    (b"permissions-policy", b"interest-cohort=()"),
]  # fmt: skip

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class Guard:
    """ASGI middleware, outermost: security headers on every response; bodies over MAX_BODY
    refused (413); the client's address resolved through trusted proxies."""

    def __init__(self, app: ASGIApp, *, trusted_proxies: Sequence[str] = ()) -> None:
        self.app = app
        self.trusted = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        scope["client"] = self.client(scope.get("client"), headers.get(b"x-forwarded-for"))
        declared = headers.get(b"content-length", b"0")
        limit = UPLOADS.get(scope.get("path", ""), MAX_BODY)
        if not declared.isdigit() or int(declared) > limit:
            await _plain(send, 413, "request body too large")
            return
        received = 0

        async def limited_receive() -> Any:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413, "request body too large")
            return message

        async def secured_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, limited_receive, secured_send)

    def client(
        self, peer: tuple[str, int] | None, forwarded: bytes | None
    ) -> tuple[str, int] | None:
        """The address a request comes from: the peer, unless the peer is a trusted proxy, in
        which case the last address of X-Forwarded-For that is not itself a trusted proxy (the
        addresses before it were written by the client and prove nothing)."""
        if peer is None or forwarded is None or not self._trusted(peer[0]):
            return peer
        hops = [hop.strip() for hop in forwarded.decode("latin-1").split(",")]
        for hop in reversed(hops):
            if not self._trusted(hop):
                try:
                    return (str(ipaddress.ip_address(hop)), 0)
                except ValueError:
                    return peer  # a proxy that writes garbage: count it as the client
        return peer

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)


async def _plain(send: Any, status: int, text: str) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"), *SECURITY_HEADERS],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": text.encode()})


class ClientLimiter:
    """At most ``per_minute`` form posts per client address (a token bucket each)."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.buckets: dict[str, tuple[float, float]] = {}

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        tokens, last = self.buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if len(self.buckets) > 10_000:  # forget idle clients rather than grow without end
            self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < 120}
        if tokens < 1:
            self.buckets[client] = (tokens, now)
            return False
        self.buckets[client] = (tokens - 1, now)
        return True
