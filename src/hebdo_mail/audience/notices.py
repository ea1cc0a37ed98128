"""Notices of sending providers, as JSON (a webhook saved to a file, or mailed): Amazon SES,
SendGrid, Mailgun and Postmark. Bounces and complaints are read; delivery notices set aside."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .returned_mail import Returned, Verdict


def looks_like_json(text: str) -> bool:
    start = text.lstrip()[:1]
    return start in ("{", "[") and any(
        key in text[:20000]
        for key in (
            '"notificationType"',
            '"eventType"',
            '"event"',
            '"RecordType"',
            '"event-data"',
            '"reason"',
        )
    )


def read(text: str, returned: Returned) -> Verdict:
    from .returned_mail import Unreadable

    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    try:
        data, _ = json.JSONDecoder().raw_decode(text[start:]) if start >= 0 else (None, 0)
    except ValueError:
        return Unreadable("a JSON notice that cannot be parsed")
    events = data if isinstance(data, list) else [data]
    verdicts = [v for e in events if isinstance(e, dict) and (v := _one(e, returned)) is not None]
    return _merge(verdicts) or Unreadable("a JSON notice of no known provider")


def _merge(verdicts: list[Verdict]) -> Verdict | None:
    from .returned_mail import Bounce

    bounces = [v for v in verdicts if isinstance(v, Bounce)]
    if bounces:
        failures = tuple(f for b in bounces for f in b.failures)
        return Bounce(failures, bounces[0].returned)
    return verdicts[0] if verdicts else None


def _one(event: dict[str, Any], returned: Returned) -> Verdict | None:
    if "event-data" in event and isinstance(event["event-data"], dict):
        event = event["event-data"]
    kind = str(
        event.get("notificationType") or event.get("eventType") or event.get("RecordType")
        or event.get("event") or ""
    ).lower()  # fmt: skip
    message_id = _message_id(event)
    if message_id:
        returned = _with_message_id(returned, message_id)
    if kind in ("delivery", "delivered", "send", "open", "click", "processed", "accepted"):
        return _ignored(f"a delivery notice ({kind}), not a failure")
    if kind in ("complaint", "spamcomplaint", "spamreport", "complained"):
        return _complaint(event, returned)
    if not kind and "email" in event and ("reason" in event or "status" in event):
        kind = "bounce"  # SendGrid's list of bounces
    if kind in ("bounce", "dropped", "failed", "deferred", "delay", "blocked"):
        return _bounce(event, kind, returned)
    return None


def _bounce(event: dict[str, Any], kind: str, returned: Returned) -> Verdict:
    from .failures import Failure, Said, failure_of
    from .returned_mail import Bounce

    failures: list[Failure] = []
    if isinstance(event.get("bounce"), dict):  # SES
        details = event["bounce"]
        permanent = str(details.get("bounceType", "")).lower() == "permanent"
        for r in details.get("bouncedRecipients") or []:
            if isinstance(r, dict):
                diagnostic = str(r.get("diagnosticCode") or details.get("bounceSubType") or "")
                status = str(r.get("status") or ("5.0.0" if permanent else "4.0.0"))
                failures.append(
                    failure_of(Said(str(r.get("emailAddress", "")), diagnostic, status))
                )
    elif "Email" in event:  # Postmark
        diagnostic = f"{event.get('Details', '')} {event.get('Description', '')}"
        status = "5.0.0" if "hard" in str(event.get("Type", "")).lower() else ""
        failures.append(failure_of(Said(str(event["Email"]), diagnostic, status)))
    else:  # SendGrid, Mailgun
        delivery = (
            event.get("delivery-status") if isinstance(event.get("delivery-status"), dict) else {}
        )
        assert isinstance(delivery, dict)
        diagnostic = " ".join(
            str(x) for x in (
                delivery.get("code", ""), delivery.get("message", ""),
                delivery.get("description", ""), event.get("status", ""), event.get("reason", ""),
            ) if x
        )  # fmt: skip
        delayed = kind in ("deferred", "delay") or event.get("severity") == "temporary"
        address = str(event.get("email") or event.get("recipient") or "")
        failures.append(failure_of(Said(address, diagnostic, delayed=delayed)))
    return Bounce(tuple(f for f in failures if f.recipient), returned)


def _complaint(event: dict[str, Any], returned: Returned) -> Verdict:
    from .returned_mail import Complaint

    details = event.get("complaint") if isinstance(event.get("complaint"), dict) else None
    if details:
        recipients = [r.get("emailAddress") for r in details.get("complainedRecipients") or []]
        feedback = str(details.get("complaintFeedbackType") or "abuse")
    else:
        recipients = [event.get("email") or event.get("Email") or event.get("recipient")]
        feedback = "abuse"
    recipient = next((str(r) for r in recipients if r), None)
    return Complaint(recipient, feedback, returned)


def _message_id(event: dict[str, Any]) -> str:
    mail = event.get("mail") if isinstance(event.get("mail"), dict) else {}
    assert isinstance(mail, dict)
    for header in mail.get("headers") or []:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == "message-id":
            return str(header.get("value", ""))
    common = mail.get("commonHeaders") if isinstance(mail.get("commonHeaders"), dict) else {}
    message = event.get("message") if isinstance(event.get("message"), dict) else {}
    headers = message.get("headers") if isinstance(message, dict) else {}
    for value in (
        (common or {}).get("messageId"),
        (headers or {}).get("message-id") if isinstance(headers, dict) else None,
        event.get("smtp-id"), event.get("MessageID"),
    ):  # fmt: skip
        if value:
            return str(value)
    return ""


def _with_message_id(returned: Returned, message_id: str) -> Returned:
    from dataclasses import replace

    value = message_id if message_id.startswith("<") else f"<{message_id}>"
    return replace(returned, message_id=value)


def _ignored(why: str) -> Verdict:
    from .returned_mail import Ignored

    return Ignored(why)
