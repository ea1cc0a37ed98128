"""Double opt-in: the subscribe form, the confirmation mail and the confirm page.

The form's answer goes out before anything is looked up or mailed: the store and the relay are
only asked after the response (a background task), so the answer takes as long, and says the
same, whether the address was known or not. What the form asked for (name, language, format)
travels in the signed confirmation link and applies only when the link is confirmed; an address
is mailed a confirmation at most once per ``[web] confirmation_interval`` and
``confirmations_per_day`` times a day, whoever asks.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import json
import logging
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING, Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from ..audience.addresses import InvalidAddress, check_name, normalise_address
from ..audience.subscriptions import Choices
from ..deliver.dkim import load_signer
from ..deliver.send import deliver_one
from ..deliver.wireformat import to_wire
from ..errors import HebdoError
from ..publish.i18n import N_
from ..publish.templating import render, workspace_environment
from ..vocabulary import FORMATS, Status
from .forms import FORM_REFUSED

if TYPE_CHECKING:
    from .app import WebApp

CONFIRM_MAX_AGE = 7 * 24 * 3600  # seconds a confirmation link stays valid
log = logging.getLogger(__name__)


def confirmation_payload(address: str, choices: Choices) -> str:
    return json.dumps(
        {"email": address, "name": choices.name, "lang": choices.lang, "format": choices.format},
        ensure_ascii=False, separators=(",", ":"),
    )  # fmt: skip


def read_payload(payload: str, languages: list[str]) -> tuple[str, Choices | None]:
    """The address and choices of a confirmation link (a link made before links carried
    choices holds the bare address)."""
    try:
        data = json.loads(payload)
    except ValueError:
        return payload, None
    if not isinstance(data, dict) or not isinstance(data.get("email"), str):
        return payload, None
    name, lang, fmt = data.get("name"), data.get("lang"), data.get("format")
    try:
        check_name(name if isinstance(name, str) else "")
    except InvalidAddress:
        name = ""
    return data["email"], Choices(
        name=name if isinstance(name, str) else "",
        lang=lang if lang in languages else None,
        format=fmt if fmt in FORMATS else "html",
    )


class SubscriptionPages:
    def __init__(self, web: WebApp) -> None:
        self.web = web
        self.dkim = load_signer(web.workspace)  # confirmations are signed like the issues

    async def subscribe(self, request: Request) -> Response:
        web = self.web
        lang = web.language(request)
        if request.method == "GET":
            return self.form_page(request, lang)
        if (refusal := web.refused(request)) is not None:
            return refusal
        form = await web.form(request)
        if not web.forms.accepts(request, form):
            return self.form_page(request, lang, 403, FORM_REFUSED)
        fields = {
            key: str(form.get(key) or "").strip()
            for key in ("email", "name", "lang", "format", "website")
        }
        if fields["website"]:
            # The honeypot is filled: a robot. Answer as usual, do nothing.
            return self.form_page(request, lang, sent=True)
        try:
            address = normalise_address(fields["email"])
        except InvalidAddress:
            problem = N_("That is not a valid email address; check it and try again.")
            return self.form_page(request, lang, 400, problem)
        try:
            check_name(fields["name"])
        except InvalidAddress:
            problem = N_("The name must be one line of at most 200 characters.")
            return self.form_page(request, lang, 400, problem)
        chosen_lang = fields["lang"] if fields["lang"] in web.languages else lang
        choices = Choices(
            name=fields["name"],
            lang=chosen_lang,
            format=fields["format"] if fields["format"] in FORMATS else "html",
        )
        # The same answer, as fast, whether the address was known or not: no way to learn who
        # reads. The store and the relay are asked once it has gone.
        response = self.form_page(request, chosen_lang, sent=True)
        response.background = BackgroundTask(self.requested, address, choices)
        return response

    def form_page(
        self, request: Request, lang: str, status: int = 200, problem: str | None = None, *,
        sent: bool = False,
    ) -> Response:  # fmt: skip
        web = self.web
        gettext = web.gettext(lang)
        extra = {"error": gettext(problem)} if problem else {}
        return web.page(
            "subscribe.html", lang, status, heading=gettext(N_("Subscribe")), sent=sent,
            form_token=web.forms.token(request.url.path), **extra,
        )  # fmt: skip

    async def requested(self, address: str, choices: Choices) -> None:
        """After the answer: record the request, and mail a confirmation if the address may get
        one now. Failures are the admin's to see, in the log; the visitor has had their answer."""
        limits = self.web.web_settings
        try:
            with self.web.store() as store:
                if store.subscriptions.request(address, source="web") == Status.ACTIVE:
                    return
                if not store.subscriptions.may_mail_confirmation(
                    address,
                    interval=limits.confirmation_interval,
                    per_day=limits.confirmations_per_day,
                ):
                    log.info("confirmation to %s not sent: one was sent recently", address)
                    return
            await self.mail_confirmation(address, choices)
        except HebdoError as exc:
            log.warning("confirmation to %s not sent: %s", address, exc)

    async def mail_confirmation(self, address: str, choices: Choices) -> None:
        web = self.web
        settings = web.settings
        lang = choices.lang or settings.language
        token = web.signer.timed_token(confirmation_payload(address, choices), "confirm")
        env = workspace_environment(web.workspace, lang)
        name = settings.name_in(lang)
        body = render(env, "confirmation_email.txt", {
            "newsletter": {"name": name}, "email": address,
            "confirm_url": f"{settings.base_url}/confirm/{token}",
        })  # fmt: skip
        message = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998))
        message["From"] = settings.sender_in(lang)
        message["To"] = address
        message["Subject"] = web.gettext(lang)(
            N_("Confirm your subscription to %(newsletter)s")
        ) % {"newsletter": name}
        message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
        message["Message-ID"] = make_msgid(domain=settings.sender_domain)
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(body, charset="utf-8", cte="quoted-printable")
        wire = to_wire(message.as_bytes())
        await deliver_one(
            web.transport,
            settings.sender_address,
            address,
            self.dkim.sign_wire(wire) if self.dkim else wire,
        )

    async def confirm(self, request: Request) -> Response:
        web = self.web
        verified = web.signer.verify_timed(request.path_params["token"], "confirm", CONFIRM_MAX_AGE)
        payload, issued_at = verified if verified else ("", 0)
        raw_address, choices = read_payload(payload, web.languages)
        address = web.address(raw_address if verified else None)
        if address is None:
            return web.error(
                request,
                400,
                N_(
                    "This confirmation link is not valid or has expired. Subscribe again to get a new one."
                ),
            )
        lang = web.language(request, choices.lang if choices else None)
        gettext = web.gettext(lang)
        context: dict[str, Any] = {
            "heading": gettext(N_("Confirm my subscription")), "email": address,
            "form_token": web.forms.token(request.url.path), "done": False,
        }  # fmt: skip
        if request.method == "GET":
            return web.page("confirm.html", lang, **context)
        if not web.forms.accepts(request, await web.form(request)):
            return web.page("confirm.html", lang, 403, error=gettext(FORM_REFUSED), **context)
        with web.store() as store:
            confirmed = store.subscriptions.confirm(
                address, choices, issued_at=issued_at, source="web"
            )
        if not confirmed:
            return web.error(
                request,
                400,
                N_(
                    "This confirmation link has already been used, or you unsubscribed since. Subscribe again to get a new one."
                ),
                lang,
            )
        return web.page("confirm.html", lang, **{**context, "done": True})
