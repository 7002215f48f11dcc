"""Twilio Messaging (SMS): the inbound-message webhook, status callbacks, the REST
send-message request and answer, and the empty TwiML answer. Pure: no I/O.

Twilio posts form fields (`application/x-www-form-urlencoded`): an inbound message
carries MessageSid, AccountSid, From, To, Body, NumSegments and NumMedia; a status
callback carries MessageSid, MessageStatus (queued, sent, delivered, undelivered,
failed...) and ErrorCode on failure. The signature (X-Twilio-Signature) is checked by
`twilio_signature` before any of this is read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.codecs._fields import object_or_empty
from gateway.codecs.exceptions import SmsWebhookError

__all__ = [
    "EMPTY_TWIML",
    "InboundSms",
    "SendResult",
    "SmsStatus",
    "parse_inbound",
    "parse_send_response",
    "parse_status",
    "send_form",
]

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_BODY = 1600  # Twilio's limit on a message body, in characters

_SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")  # SMxxxx (SMS), MMxxxx (MMS)
_NUMBER = re.compile(r"\+?[0-9A-Za-z:+._\-]{3,64}")
_SMALL_INT = re.compile(r"[0-9]{1,4}")

Form = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class InboundSms:
    message_sid: str  # the dedupe key
    account_sid: str
    sender: str  # the customer's number (From)
    to: str  # our number (To): finds the tenant
    body: str
    num_segments: int | None  # as Twilio counted them on the air
    num_media: int


@dataclass(frozen=True)
class SmsStatus:
    message_sid: str
    status: str
    error_code: int | None
    to: str
    sender: str


def _one(form: Form, name: str) -> str:
    values = form.get(name) or ()
    return values[0].strip() if values else ""


def _required(form: Form, name: str, pattern: re.Pattern[str]) -> str:
    value = _one(form, name)
    if not pattern.fullmatch(value):
        raise SmsWebhookError(f"{name}: missing or malformed")
    return value


def _count(form: Form, name: str) -> int | None:
    value = _one(form, name)
    return int(value) if _SMALL_INT.fullmatch(value) else None


def parse_inbound(form: Form) -> InboundSms:
    body = (form.get("Body") or [""])[0]
    if len(body) > MAX_BODY * 2:  # Twilio never sends this much: not a real message
        raise SmsWebhookError(f"Body: over {MAX_BODY * 2} characters")
    segments = _count(form, "NumSegments")
    return InboundSms(
        message_sid=_required(form, "MessageSid", _SID),
        account_sid=_one(form, "AccountSid")[:64],
        sender=_required(form, "From", _NUMBER), to=_required(form, "To", _NUMBER),
        body=body, num_segments=segments if segments else None,
        num_media=_count(form, "NumMedia") or 0)


def parse_status(form: Form) -> SmsStatus:
    status = _one(form, "MessageStatus") or _one(form, "SmsStatus")
    if not status or len(status) > 40:
        raise SmsWebhookError("MessageStatus: missing or malformed")
    code = _one(form, "ErrorCode")
    return SmsStatus(_required(form, "MessageSid", _SID), status,
                     int(code) if code.isdigit() and len(code) < 10 else None,
                     _one(form, "To")[:64], _one(form, "From")[:64])


def send_form(sender: str, to: str, body: str, status_callback: str | None) -> dict[str, str]:
    """The form of `POST /2010-04-01/Accounts/{sid}/Messages.json`."""
    form = {"From": sender, "To": to, "Body": body[:MAX_BODY]}
    if status_callback:
        form["StatusCallback"] = status_callback
    return form


@dataclass(frozen=True)
class SendResult:
    message_sid: str | None
    num_segments: int | None = None
    error_code: int | None = None
    error_message: str = ""
    retryable: bool = False

    @property
    def ok(self) -> bool:
        return self.message_sid is not None


def parse_send_response(status: int, body: bytes) -> SendResult:
    doc = object_or_empty(body)
    if 200 <= status < 300:
        sid = doc.get("sid")
        if isinstance(sid, str) and _SID.fullmatch(sid):
            segments = doc.get("num_segments")
            count = int(segments) if isinstance(segments, str) and segments.isdigit() else None
            return SendResult(sid, count or None)
        return SendResult(None, error_message="the answer carries no message sid")
    code = doc.get("code") if isinstance(doc.get("code"), int) else None
    message = doc.get("message")
    message = message if isinstance(message, str) else f"HTTP {status}"
    return SendResult(None, None, code, message[:200], retryable=status >= 500 or status == 429)
