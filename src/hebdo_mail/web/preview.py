"""``hebdo-mail preview ISSUE``: an editor's live view of an issue before it is sent.

The email at desktop (600px) and phone (375px) widths side by side, its text part, and the headers
a reader would get. Every request checks whether a file of the issue, a template, a catalogue or
the settings changed, and renders again if so; the page asks every second and reloads itself.
An error (a bad front matter line, say) is shown on the page, as the command line would print it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..audience.recipients import Recipient
from ..audience.tokens import TokenSigner
from ..deliver.message import MessageFactory
from ..errors import HebdoError
from ..publish.archive import _signature
from ..publish.build import preview_email, render_issue
from ..publish.files import IssueFiles
from ..publish.templating import render, workspace_environment
from ..workspace import Workspace
from .files import FileServer

HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; "
        "script-src 'self'; connect-src 'self'; frame-src 'self'; frame-ancestors 'self'"
    ),
    "x-frame-options": "SAMEORIGIN",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}

RELOAD_SCRIPT = """\
// Reload when the preview server says the issue was rendered again.
let seen = null;
async function poll() {
  try {
    const version = await (await fetch("/version", {cache: "no-store"})).text();
    if (seen !== null && version !== seen) { location.reload(); return; }
    seen = version;
  } catch (e) {}
  setTimeout(poll, 1000);
}
poll();
"""


@dataclass
class Rendering:
    version: str
    error: str | None
    languages: list[str]
    html: dict[str, str]
    text: dict[str, str]
    headers: dict[str, list[tuple[str, str]]]
    files: IssueFiles | None


class Preview:
    def __init__(self, workspace: Workspace, folder: Path) -> None:
        self.workspace = workspace
        self.folder = folder
        self.signature: tuple[object, ...] | None = None
        self.rendering: Rendering | None = None

    def current(self) -> Rendering:
        ws = self.workspace
        signature = _signature(
            self.folder, ws.templates_dir, ws.locale_dir, files=(ws.config_path,)
        )
        if self.rendering is None or signature != self.signature:
            self.signature = signature
            self.rendering = self._render(hashlib.sha256(repr(signature).encode()).hexdigest()[:16])
        return self.rendering

    def _render(self, version: str) -> Rendering:
        ws = self.workspace
        try:
            issue, editions = render_issue(self.folder, ws)
        except HebdoError as exc:
            return Rendering(version, str(exc), [], {}, {}, {}, None)
        settings = ws.settings.newsletter
        # Sample tokens: the preview must not need (or create) the workspace secret.
        factory = MessageFactory(
            issue_id=issue.id,
            editions=editions,
            default_lang=issue.default_language,
            settings=settings,
            signer=TokenSigner(b"preview-only, not a real secret", settings.list_identifier),
        )
        local_files = f"{settings.base_url}/issues/{issue.id}/files/"
        html, text, headers = {}, {}, {}
        for lang, edition in editions.items():
            email_html, email_text = preview_email(edition, ws)
            html[lang] = email_html.replace(local_files, "/files/")  # show the pictures locally
            text[lang] = email_text
            sample = Recipient(email=f"reader@{settings.sender_domain}", name="Reader", lang=lang)
            message = factory.reference(sample)
            headers[lang] = [(k, str(v)) for k, v in message.items() if k.lower() != "content-type"]
        return Rendering(version, None, list(editions), html, text, headers, issue.files)


def create_preview_app(workspace: Workspace, folder: Path) -> Starlette:
    preview = Preview(workspace, folder)
    server = FileServer()

    def respond(response: Response) -> Response:
        response.headers.update(HEADERS)
        return response

    async def page(request: Request) -> Response:
        rendering = preview.current()
        lang = request.query_params.get("lang", "")
        if lang not in rendering.languages:
            lang = (
                rendering.languages[0]
                if rendering.languages
                else workspace.settings.newsletter.language
            )
        env = workspace_environment(workspace, lang)
        html = render(env, "preview.html", {
            "issue_id": folder.name, "rendering": rendering, "lang": lang,
            "headers": rendering.headers.get(lang, []),
        })  # fmt: skip
        return respond(HTMLResponse(html))

    async def email_html(request: Request) -> Response:
        body = preview.current().html.get(request.path_params["lang"])
        return respond(
            HTMLResponse(body) if body is not None else PlainTextResponse("no such edition", 404)
        )

    async def email_text(request: Request) -> Response:
        body = preview.current().text.get(request.path_params["lang"])
        return respond(
            PlainTextResponse(body if body is not None else "no such edition", 200 if body else 404)
        )

    async def version(request: Request) -> Response:
        return respond(PlainTextResponse(preview.current().version))

    async def script(request: Request) -> Response:
        return respond(Response(RELOAD_SCRIPT, media_type="text/javascript"))

    async def issue_file(request: Request) -> Response:
        files = preview.current().files
        entry = files.public(request.path_params["name"]) if files else None
        if entry is None:
            return respond(PlainTextResponse("no such file", 404))
        return respond(server.response(entry))

    return Starlette(routes=[
        Route("/", page),
        Route("/email/{lang}.html", email_html),
        Route("/email/{lang}.txt", email_text),
        Route("/version", version),
        Route("/preview.js", script),
        Route("/files/{name}", issue_file),
    ])  # fmt: skip
