"""``hebdo-mail serve``: the web app under uvicorn, in one process or several.

uvicorn is told not to believe X-Forwarded-For (the app does, from ``[web] trusted_proxies``
only), and its HTTP/1.1 protocol gets a deadline per request, which uvicorn lacks: a client that
sends half a request head or body is cut off after ``[web] request_timeout`` seconds instead of
holding its connection for ever. Idle keep-alive connections close after 5 seconds.

This module relies on uvicorn's H11Protocol internals (``conn``, ``loop``, ``transport``,
``on_response_complete``); tests/test_web_server.py fails loudly if they change, and pyproject
caps the uvicorn version.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..workspace import Workspace, load_workspace
from .guard import ASGIApp

WORKSPACE_ENV = "HEBDO_WORKSPACE"  # how worker processes find the workspace
PLAIN_AUTH_ENV = "HEBDO_ALLOW_PLAIN_AUTH"
KEEP_ALIVE = 5  # seconds an idle connection stays open between requests


class DeadlineProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with a deadline: a request's head and body must have arrived
    within ``request_timeout`` seconds of the connection opening, or of the previous response."""

    request_timeout = 10.0  # set from the workspace's settings when the app is made

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._deadline is not None and self.conn.their_state in (h11.DONE, h11.MUST_CLOSE):
            self._deadline.cancel()  # the whole request is in: the app takes it from here
            self._deadline = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.request_timeout, self._expire)

    def _expire(self) -> None:
        self._deadline = None
        if self.conn.their_state not in (h11.DONE, h11.MUST_CLOSE):
            self.transport.close()


def make_app(workspace: Workspace, *, allow_plain_auth: bool) -> ASGIApp:
    from .app import create_app

    DeadlineProtocol.request_timeout = workspace.settings.web.request_timeout
    return create_app(workspace, allow_plain_auth=allow_plain_auth)


def app_from_environment() -> ASGIApp:
    """The app of a worker process (uvicorn's factory when ``serve --workers N``)."""
    workspace = load_workspace(Path(os.environ[WORKSPACE_ENV]), explicit=True)
    return make_app(workspace, allow_plain_auth=os.environ.get(PLAIN_AUTH_ENV) == "1")


def serve(
    workspace: Workspace, *, host: str, port: int, workers: int, allow_plain_auth: bool
) -> None:
    import uvicorn

    # Made here even with several workers: a mistake in the settings stops `serve` with one
    # line, before any worker starts.
    app = make_app(workspace, allow_plain_auth=allow_plain_auth)
    options = {
        "host": host, "port": port, "log_level": "warning", "proxy_headers": False,
        "http": DeadlineProtocol, "timeout_keep_alive": KEEP_ALIVE, "lifespan": "off",
    }  # fmt: skip
    if workers == 1:
        uvicorn.run(app, **options)  # type: ignore[arg-type]
        return
    os.environ[WORKSPACE_ENV] = str(workspace.root)
    os.environ[PLAIN_AUTH_ENV] = "1" if allow_plain_auth else "0"
    uvicorn.run(
        f"{__name__}:app_from_environment", factory=True, workers=workers,
        **options,  # type: ignore[arg-type]
    )  # fmt: skip
