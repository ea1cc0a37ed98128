"""An issue's files over HTTP, for the web app and the preview: a picture as prepared for mail
(kept in memory once prepared), a download as it is. A public name changes with the content, so
browsers may keep a file for good."""

from __future__ import annotations

import mimetypes

from starlette.responses import FileResponse, Response

from ..publish.files import IssueFile

CACHE_BYTES = 64 * 1024 * 1024  # prepared pictures kept in memory
IMMUTABLE = {"cache-control": "public, max-age=31536000, immutable"}


class FileServer:
    def __init__(self, cache_bytes: int = CACHE_BYTES) -> None:
        self.cache_bytes = cache_bytes
        self._prepared: dict[tuple[str, str], bytes] = {}  # least recently used first

    def response(self, entry: IssueFile) -> Response:
        if entry.picture is None:
            return FileResponse(entry.source, headers=IMMUTABLE)
        media_type = mimetypes.guess_type(entry.public_name)[0] or "application/octet-stream"
        return Response(self.prepared(entry), media_type=media_type, headers=IMMUTABLE)

    def prepared(self, entry: IssueFile) -> bytes:
        key = (str(entry.source), entry.public_name)
        data = self._prepared.pop(key, None)
        if data is None:
            data = entry.content()
        self._prepared[key] = data
        total = sum(map(len, self._prepared.values()))
        while total > self.cache_bytes and len(self._prepared) > 1:
            total -= len(self._prepared.pop(next(iter(self._prepared))))
        return data
