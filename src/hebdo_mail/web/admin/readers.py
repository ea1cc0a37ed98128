"""The readers: search and filters, one page at a time; a reader's page (details, the issues they
were sent, their bounces, their status history); and what an admin may do to one reader:
unsubscribe, re-activate (after a confirmation), change language and format, erase entirely."""

from __future__ import annotations

import datetime as dt

from starlette.datastructures import FormData
from starlette.responses import Response

from ...audience.addresses import address_key
from ...audience.erasure import ERASED, erase_reader
from ...audience.readers import (
    DEFAULT_LANGUAGE,
    ReaderFilter,
    bounces_of,
    by_id,
    find,
    languages,
)
from ...audience.store import Subscriber
from ...publish.i18n import N_
from ...vocabulary import FORMATS, NOT_MAILABLE, STATUSES, Status
from .site import AdminRequest, AdminSite, page_number

PER_PAGE = 50


class Readers:
    def __init__(self, site: AdminSite) -> None:
        self.site = site

    async def list(self, admin: AdminRequest) -> Response:
        _ = self.site.web.gettext(admin.lang)
        chosen = reader_filter(admin)
        page = page_number(admin.request.query_params.get("page"))
        readers, total = find(admin.store.db, chosen, page=page, per_page=PER_PAGE)
        pages = max(1, -(-total // PER_PAGE))
        return self.site.render(
            admin, "readers.html", heading=_(N_("Readers")), readers=readers, total=total,
            page=page, pages=pages, chosen=chosen, statuses=STATUSES, formats=FORMATS,
            languages=languages(admin.store.db), default_language=DEFAULT_LANGUAGE,
            query=_query(chosen),
        )  # fmt: skip

    async def reader(self, admin: AdminRequest) -> Response:
        _ = self.site.web.gettext(admin.lang)
        reader = self.find(admin)
        if reader is None:
            return self.missing(admin)
        key = address_key(reader.email)
        records = await self.site.deliveries(admin)
        return self.site.render(
            admin, "reader.html", heading=reader.email, reader=reader,
            deliveries=records.of_reader(key), bounces=bounces_of(admin.store.db, key),
            history=admin.store.history.of(key), formats=FORMATS,
            languages=self.site.web.languages, mailable=reader.status not in NOT_MAILABLE,
            done=admin.request.query_params.get("done", ""),
        )  # fmt: skip

    async def unsubscribe(self, admin: AdminRequest, form: FormData) -> Response:
        reader = self.find(admin)
        if reader is None:
            return self.missing(admin)
        admin.store.set_status(reader.email, Status.UNSUBSCRIBED, source=self.source(admin))
        self.site.audit(admin, "unsubscribe", target=address_key(reader.email))
        return self.site.back(f"/subscribers/{reader.id}", "unsubscribed")

    async def reactivate(self, admin: AdminRequest, form: FormData) -> Response:
        reader = self.find(admin)
        if reader is None:
            return self.missing(admin)
        if asking := self.confirmation(admin, form, reader, N_("Re-activate %(email)s?")):
            return asking
        admin.store.add(
            reader.email, name=reader.name, lang=reader.lang, format=reader.format,
            source=self.source(admin),
        )  # fmt: skip
        self.site.audit(admin, "reactivate", target=address_key(reader.email))
        return self.site.back(f"/subscribers/{reader.id}", "reactivated")

    async def settings(self, admin: AdminRequest, form: FormData) -> Response:
        reader = self.find(admin)
        if reader is None:
            return self.missing(admin)
        lang = str(form.get("lang") or "")
        format_ = str(form.get("format") or "")
        if (lang and lang not in self.site.web.languages) or format_ not in FORMATS:
            return self.site.error(admin, 400, N_("Choose a language and a format from the lists."))
        admin.store.update_preferences(
            reader.email, name=reader.name, lang=lang or None, format=format_
        )
        self.site.audit(
            admin, "settings", target=address_key(reader.email),
            detail=f"lang {lang or '-'}, format {format_}",
        )  # fmt: skip
        return self.site.back(f"/subscribers/{reader.id}", "saved")

    async def erase(self, admin: AdminRequest, form: FormData) -> Response:
        _ = self.site.web.gettext(admin.lang)
        reader = self.find(admin)
        if reader is None:
            return self.missing(admin)
        if asking := self.confirmation(admin, form, reader, N_("Erase %(email)s?")):
            return asking
        records = await self.site.deliveries(admin)
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        erased = erase_reader(admin.store, reader.email, stamp, records.forget)
        self.site.audit(admin, "erase", target=ERASED, detail=f"reader #{reader.id}")
        return self.site.render(
            admin, "erased.html", heading=_(N_("Reader erased")), email=erased.email,
            rows=erased.rows, sends=erased.sends,
        )  # fmt: skip

    def confirmation(
        self, admin: AdminRequest, form: FormData, reader: Subscriber, question: str
    ) -> Response | None:
        """The page asking to confirm an action, unless the form says it was confirmed."""
        if form.get("confirm") == "yes":
            return None
        heading = self.site.web.gettext(admin.lang)(question) % {"email": reader.email}
        action = admin.request.url.path.rsplit("/", 1)[1]
        return self.site.render(
            admin, "confirm.html", heading=heading, reader=reader, action=action
        )

    def find(self, admin: AdminRequest) -> Subscriber | None:
        return by_id(admin.store.db, int(admin.request.path_params["reader_id"]))

    def missing(self, admin: AdminRequest) -> Response:
        return self.site.error(admin, 404, N_("There is no such reader (erased, or never added)."))

    @staticmethod
    def source(admin: AdminRequest) -> str:
        return f"admin:{admin.account}"


def reader_filter(admin: AdminRequest) -> ReaderFilter:
    """The filter of the query string, values outside the choices ignored."""
    params = admin.request.query_params
    status = params.get("status", "")
    format_ = params.get("format", "")
    return ReaderFilter(
        text=params.get("q", "").strip()[:200],
        status=status if status in STATUSES else "",
        lang=params.get("lang", "")[:35],
        format=format_ if format_ in FORMATS else "",
    )


def _query(chosen: ReaderFilter) -> str:
    from urllib.parse import urlencode

    pairs = {
        "q": chosen.text,
        "status": chosen.status,
        "lang": chosen.lang,
        "format": chosen.format,
    }
    return urlencode({k: v for k, v in pairs.items() if v})
