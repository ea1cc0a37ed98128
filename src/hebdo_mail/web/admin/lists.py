"""Import and export in the browser, with the rules of ``subscribers import`` and ``export``: an
import is all or nothing, each bad row reported as FILE:LINE and skipped; an export is the whole
list or the filtered view of the readers page, as the same CSV the command writes."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import tempfile
from pathlib import Path

from starlette.background import BackgroundTask
from starlette.datastructures import FormData, UploadFile
from starlette.responses import FileResponse, Response

from ...audience.importer import export_list, import_list
from ...audience.readers import matching
from ...errors import HebdoError
from ...publish.i18n import N_
from .readers import reader_filter
from .site import AdminRequest, AdminSite

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class Lists:
    def __init__(self, site: AdminSite) -> None:
        self.site = site

    async def form(self, admin: AdminRequest) -> Response:
        return self.page(admin)

    def page(self, admin: AdminRequest, status: int = 200, **context: object) -> Response:
        _ = self.site.web.gettext(admin.lang)
        return self.site.render(
            admin, "import.html", status=status, heading=_(N_("Import and export")),
            chosen=reader_filter(admin), **context,
        )  # fmt: skip

    async def upload(self, admin: AdminRequest, form: FormData) -> Response:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return self.page(admin, 400, problem=N_("Choose a CSV file to import."))
        name = SAFE_NAME.sub("_", Path(upload.filename).name)[:100] or "list.csv"
        update, dry_run = form.get("update") == "yes", form.get("dry_run") == "yes"
        folder = Path(tempfile.mkdtemp(prefix="hebdo-import-"))  # mode 0700: personal data
        try:
            path = folder / name
            with path.open("wb") as handle:
                shutil.copyfileobj(upload.file, handle)
            try:
                report = import_list(admin.store, path, update=update, dry_run=dry_run)
            except HebdoError as exc:
                where = f"{name}:{exc.line}" if exc.line else name
                return self.page(admin, 400, failure=f"{where}: {exc.message}")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if not dry_run:
            self.site.audit(admin, "import", target=name, detail=report.summary())
        return self.page(
            admin, report=report, dry_run=dry_run, file_name=name,
            problems=[f"{name}:{r.line}: {r.reason}" for r in report.rejected],
        )  # fmt: skip

    async def export(self, admin: AdminRequest) -> Response:
        chosen = reader_filter(admin)
        folder = Path(tempfile.mkdtemp(prefix="hebdo-export-"))
        path = folder / "export.csv"
        count = export_list(
            admin.store, path, status=chosen.status or None,
            readers=matching(admin.store.db, chosen),
        )  # fmt: skip
        self.site.audit(
            admin, "export", detail=f"{count} readers; {chosen.where()[1] or 'all'}"[:500]
        )
        day = dt.date.today().isoformat()
        return FileResponse(
            path, media_type="text/csv; charset=utf-8", filename=f"subscribers-{day}.csv",
            headers={"cache-control": "no-store"},
            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
        )  # fmt: skip
