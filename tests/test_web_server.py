"""`hebdo-mail serve` as a real process over real sockets: whose X-Forwarded-For it believes, a
subscribe answer that never waits for the relay, and clients that send half a request.

These also check the uvicorn internals web/server.py extends (its HTTP/1.1 protocol)."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

from hebdo_mail.audience.store import SubscriberStore
from hebdo_mail.audience.tokens import TokenSigner
from hebdo_mail.workspace import load_secret, load_workspace

from .helpers import SITE, Result, append_settings, request, serving, wait_until
from .smtpserver import Gate, Recorder, SmtpServer

DEADLINE = 20.0


def post_subscribe(port: int, fields: dict[str, str], headers: dict[str, str] | None = None) -> int:
    """The subscribe form as a browser on the site posts it (form token, Origin)."""
    _, page = request(port, "GET", "/subscribe", headers=headers)
    token = re.search(r'name="form_token" value="([^"]+)"', page).group(1)
    body = urlencode({**fields, "form_token": token})
    form = {"content-type": "application/x-www-form-urlencoded", "origin": SITE}
    return request(port, "POST", "/subscribe", body, {**form, **(headers or {})})[0]


def test_x_forwarded_for_is_believed_only_from_trusted_proxies(ws: Path) -> None:
    bad = {"email": "not-an-address"}  # a 400 that mails nobody; the limit counts it all the same
    with serving(ws) as port:
        rotated = [post_subscribe(port, bad, {"x-forwarded-for": f"203.0.113.{i}"}) for i in range(12)]  # fmt: skip
    assert rotated[:10] == [400] * 10 and rotated[10:] == [429, 429]  # one client: this socket's

    append_settings(ws, '[web]\ntrusted_proxies = ["127.0.0.1"]\n')
    with serving(ws) as port:
        behind_proxy = [post_subscribe(port, bad, {"x-forwarded-for": f"203.0.113.{i}"}) for i in range(12)]  # fmt: skip
        # A client cannot pass itself off as another by writing the header itself: the proxy
        # appends the address it saw, which is the one that counts.
        forged = [post_subscribe(port, bad, {"x-forwarded-for": f"198.51.100.{i}, 203.0.113.99"}) for i in range(12)]  # fmt: skip
    assert behind_proxy == [400] * 12
    assert forged[:10] == [400] * 10 and forged[10:] == [429, 429]


def test_the_answer_goes_out_before_the_store_and_the_relay_are_asked(ws: Path) -> None:
    gate = Gate()  # the relay holds every message until the test lets it go
    recorder = Recorder(hook=gate)
    with SmtpServer(recorder) as relay:
        append_settings(ws, f'[smtp]\nurl = "{relay.url}"\n')
        with serving(ws) as port:
            try:
                answers = [
                    post_subscribe(port, {"email": "new.reader@example.org"}),
                    post_subscribe(port, {"email": "second.reader@example.org"}),
                ]
                assert recorder.received == []  # both answered while the relay held everything
            finally:
                gate.opened.set()
            wait_until(lambda: len(recorder.received) == 2, what="the two confirmations")
    assert answers == [200, 200]
    assert {r.rcpt for r in recorder.received} == {
        "new.reader@example.org",
        "second.reader@example.org",
    }


def test_half_sent_and_idle_connections_are_cut_off_while_others_are_served(ws: Path) -> None:
    append_settings(ws, "[web]\nrequest_timeout = 1\n")
    head = b"POST /subscribe HTTP/1.1\r\nHost: x\r\n"
    with serving(ws) as port:
        stalled = []
        for opening in [b""] * 10 + [head] * 10 + [
            head + b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nemail=a"
        ] * 10:  # fmt: skip
            client = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
            client.sendall(opening)
            stalled.append(client)
        assert request(port, "GET", "/subscribe")[0] == 200  # served meanwhile
        for client in stalled:
            with client:
                while client.recv(4096):  # the server closes it: recv() returns b"" ...
                    pass  # ... after any error response; a timeout here fails the test


def test_several_workers_serve_the_site_on_one_port(ws: Path, cli: Callable[..., Result]) -> None:
    assert cli("subscribers", "import", "subscribers.example.csv", cwd=ws).code == 0
    settings = load_workspace(ws, explicit=True).settings.newsletter
    signer = TokenSigner(load_secret(ws)[0], settings.list_identifier)
    one_click = {"content-type": "application/x-www-form-urlencoded"}
    with serving(ws, "--workers", "2") as port:
        answers = [
            request(port, "POST", f"/unsubscribe/{signer.token(address)}",
                    "List-Unsubscribe=One-Click", one_click)[0]
            for address in ("marc.dubois@example.net", "zoe.nguyen@example.fr")
        ]  # fmt: skip
        assert [request(port, "GET", "/subscribe")[0] for _ in range(6)] == [200] * 6
    assert answers == [200, 200]
    with SubscriberStore.at(ws / "hebdo.db") as store:
        assert store.count("unsubscribed") == 2
