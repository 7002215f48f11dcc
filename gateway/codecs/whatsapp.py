"""WhatsApp Cloud API: webhook signatures, the verify handshake, webhook payloads parsed
into typed events, and the Graph API's send-message request and answer.

Meta signs every webhook POST with `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the
raw body, keyed with the app secret>`; the signature is checked on the bytes as received,
before they are parsed. A webhook is a batch: `entry[]` (one per business account), each
with `changes[]`, each change's `value` holding `messages[]` from customers and/or
`statuses[]` of messages we sent (sent, delivered, read, failed with `errors[]`, with a
`pricing` and, on older API versions, a `conversation` object).

An envelope that is not a webhook raises `WhatsAppPayloadError`. Inside a good envelope,
an item we cannot use (a message without an id, a change of another field) does not spoil
the batch: it comes back in `skipped` with the reason, for the caller to record.
Message types other than text (image, reaction, sticker, location...) are events like
any other, with `text` None. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.codecs._fields import object_or_empty
from gateway.codecs.exceptions import (
    WhatsAppPayloadError,
    WhatsAppSignatureError,
    WhatsAppSubscriptionError,
)

__all__ = [
    "SIGNATURE_HEADER",
    "InboundMessage",
    "Pricing",
    "SendResult",
    "Skipped",
    "StatusError",
    "StatusUpdate",
    "WebhookBatch",
    "parse_send_response",
    "parse_webhook",
    "sign",
    "subscription_challenge",
    "text_message",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Hub-Signature-256"
WINDOW_CLOSED = 131047  # "Re-engagement message": more than 24 hours since the customer wrote
MAX_TEXT = 4096  # WhatsApp's limit on a text message body

_ID = re.compile(r"[A-Za-z0-9._=+/:\-]{1,200}")
_ADDRESS = re.compile(r"[A-Za-z0-9._:+\-]{1,64}")
_DECIMAL = re.compile(r"[0-9]{1,12}")
# Types whose words the agent can read; everything else is recorded and acknowledged.
_TEXT_TYPES = ("text", "button", "interactive")


@dataclass(frozen=True)
class InboundMessage:
    phone_number_id: str  # the business number the customer wrote to
    message_id: str  # the wamid: the dedupe key
    customer: str  # the sender's WhatsApp id
    timestamp_s: int
    kind: str  # text, image, reaction, ... as Meta names it
    text: str | None  # what the customer wrote, for the types that carry words
    profile_name: str | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class StatusError:
    code: int
    title: str
    details: str | None = None


@dataclass(frozen=True)
class Pricing:
    billable: bool | None
    pricing_model: str | None
    category: str | None
    conversation_id: str | None
    conversation_origin: str | None


@dataclass(frozen=True)
class StatusUpdate:
    phone_number_id: str
    message_id: str
    status: str  # sent | delivered | read | failed | deleted | ...
    timestamp_s: int
    recipient: str | None
    errors: tuple[StatusError, ...]
    pricing: Pricing | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Skipped:
    reason: str
    raw: Any = field(repr=False)


@dataclass(frozen=True)
class WebhookBatch:
    messages: tuple[InboundMessage, ...]
    statuses: tuple[StatusUpdate, ...]
    skipped: tuple[Skipped, ...]


# -- signatures and the handshake ----------------------------------------------------------


def sign(body: bytes, app_secret: str) -> str:
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(body: bytes, header: str | None, app_secret: str) -> None:
    if not header or not header.strip():
        raise WhatsAppSignatureError(f"{SIGNATURE_HEADER} header missing", missing=True)
    if not app_secret or not header.isascii():
        raise WhatsAppSignatureError(f"{SIGNATURE_HEADER} does not match", missing=False)
    expected = sign(body, app_secret).encode()
    if not hmac.compare_digest(expected, header.strip().lower().encode()):
        raise WhatsAppSignatureError(f"{SIGNATURE_HEADER} does not match", missing=False)


def subscription_challenge(params: Mapping[str, str], verify_token: str) -> str:
    """The challenge to echo when `hub.mode=subscribe` and `hub.verify_token` is ours."""
    mode, token, challenge = (params.get(f"hub.{n}", "") for n in
                              ("mode", "verify_token", "challenge"))
    if not mode or not token or not challenge:
        raise WhatsAppSubscriptionError(
            "missing", "hub.mode, hub.verify_token and hub.challenge are required")
    if mode != "subscribe" or not verify_token or not hmac.compare_digest(
            token.encode(), verify_token.encode()):
        raise WhatsAppSubscriptionError("mismatch", "hub.verify_token does not match")
    return challenge


# -- webhook payloads ----------------------------------------------------------------------


class _BadItem(ValueError):
    """One item of a good envelope cannot be used; becomes a `Skipped`."""


def _str(obj: Mapping[str, Any], key: str, where: str, pattern: re.Pattern[str] | None = None
         ) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
        raise _BadItem(f"{where}.{key}: missing or malformed")
    return value


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) else None


def _obj(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def _list(obj: Mapping[str, Any], key: str) -> list[Any]:
    value = obj.get(key)
    return value if isinstance(value, list) else []


def _words(message: dict[str, Any], kind: str) -> str | None:
    if kind == "text":
        body = _obj(message, "text").get("body")
        if not isinstance(body, str):
            raise _BadItem("message.text.body: missing")
        return body
    if kind == "button":
        return _opt_str(_obj(message, "button"), "text")
    if kind == "interactive":
        interactive = _obj(message, "interactive")
        reply = _obj(interactive, "button_reply") or _obj(interactive, "list_reply")
        return _opt_str(reply, "title")
    return None


def _message(raw: Any, phone_number_id: str, names: dict[str, str]) -> InboundMessage:
    if not isinstance(raw, dict):
        raise _BadItem("message: not an object")
    kind = _str(raw, "type", "message")
    customer = _str(raw, "from", "message", _ADDRESS)
    return InboundMessage(
        phone_number_id=phone_number_id, message_id=_str(raw, "id", "message", _ID),
        customer=customer, timestamp_s=int(_str(raw, "timestamp", "message", _DECIMAL)),
        kind=kind[:40], text=_words(raw, kind) if kind in _TEXT_TYPES else None,
        profile_name=names.get(customer), raw=raw)


def _errors(raw: dict[str, Any]) -> tuple[StatusError, ...]:
    found: list[StatusError] = []
    for item in _list(raw, "errors"):
        if isinstance(item, dict) and isinstance(item.get("code"), int):
            title = _opt_str(item, "title") or _opt_str(item, "message") or ""
            found.append(StatusError(item["code"], title,
                                     _opt_str(_obj(item, "error_data"), "details")))
    return tuple(found)


def _pricing(raw: dict[str, Any]) -> Pricing | None:
    pricing, conversation = _obj(raw, "pricing"), _obj(raw, "conversation")
    if not pricing and not conversation:
        return None
    billable = pricing.get("billable")
    return Pricing(billable if isinstance(billable, bool) else None,
                   _opt_str(pricing, "pricing_model"), _opt_str(pricing, "category"),
                   _opt_str(conversation, "id"), _opt_str(_obj(conversation, "origin"), "type"))


def _status(raw: Any, phone_number_id: str) -> StatusUpdate:
    if not isinstance(raw, dict):
        raise _BadItem("status: not an object")
    return StatusUpdate(
        phone_number_id=phone_number_id, message_id=_str(raw, "id", "status", _ID),
        status=_str(raw, "status", "status")[:40],
        timestamp_s=int(_str(raw, "timestamp", "status", _DECIMAL)),
        recipient=_opt_str(raw, "recipient_id"), errors=_errors(raw), pricing=_pricing(raw),
        raw=raw)


def _envelope(body: bytes | str) -> list[Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WhatsAppPayloadError(f"the body is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise WhatsAppPayloadError("the body is not a JSON object")
    if doc.get("object") != "whatsapp_business_account":
        raise WhatsAppPayloadError('"object" is not "whatsapp_business_account"')
    entries = doc.get("entry")
    if not isinstance(entries, list):
        raise WhatsAppPayloadError('"entry" is not a list')
    return entries


def _changes(entries: list[Any], skipped: list[Skipped]) -> list[dict[str, Any]]:
    values: list[dict[str, Any]] = []
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            skipped.append(Skipped("entry without a changes list", entry))
            continue
        for change in changes:
            if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                skipped.append(Skipped("change without a value object", change))
            elif change.get("field") != "messages":
                skipped.append(Skipped(f"field {str(change.get('field'))[:40]!r} not handled",
                                       change))
            else:
                values.append(change["value"])
    return values


def parse_webhook(body: bytes | str) -> WebhookBatch:
    """Every message and status of a (signed) webhook body, in the order Meta sent them."""
    skipped: list[Skipped] = []
    messages: list[InboundMessage] = []
    statuses: list[StatusUpdate] = []
    for value in _changes(_envelope(body), skipped):
        phone_number_id = _opt_str(_obj(value, "metadata"), "phone_number_id")
        if phone_number_id is None or not _ID.fullmatch(phone_number_id):
            skipped.append(Skipped("value.metadata.phone_number_id: missing or malformed",
                                   value))
            continue
        names = {c["wa_id"]: _opt_str(_obj(c, "profile"), "name") or ""
                 for c in _list(value, "contacts")
                 if isinstance(c, dict) and isinstance(c.get("wa_id"), str)}
        for raw in _list(value, "messages"):
            try:
                messages.append(_message(raw, phone_number_id, names))
            except _BadItem as exc:
                skipped.append(Skipped(str(exc), raw))
        for raw in _list(value, "statuses"):
            try:
                statuses.append(_status(raw, phone_number_id))
            except _BadItem as exc:
                skipped.append(Skipped(str(exc), raw))
        if isinstance(value.get("errors"), list):
            skipped.append(Skipped("value.errors reported by Meta", value["errors"]))
    return WebhookBatch(tuple(messages), tuple(statuses), tuple(skipped))


# -- the Graph API's send-message call -----------------------------------------------------


def text_message(to: str, body: str) -> dict[str, Any]:
    """The JSON body of `POST /{phone_number_id}/messages` for a free-form text."""
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
            "type": "text", "text": {"preview_url": False, "body": body[:MAX_TEXT]}}


@dataclass(frozen=True)
class SendResult:
    message_id: str | None  # the wamid when accepted
    error_code: int | None = None
    error_title: str = ""
    retryable: bool = False  # a 5xx or a throttle: the same request may succeed later

    @property
    def ok(self) -> bool:
        return self.message_id is not None

    @property
    def window_closed(self) -> bool:
        return self.error_code == WINDOW_CLOSED


def parse_send_response(status: int, body: bytes) -> SendResult:
    doc = object_or_empty(body)
    if 200 <= status < 300:
        messages = _list(doc, "messages")
        first = messages[0] if messages and isinstance(messages[0], dict) else {}
        message_id = _opt_str(first, "id")
        if message_id and _ID.fullmatch(message_id):
            return SendResult(message_id)
        return SendResult(None, None, "the answer carries no message id", retryable=False)
    error = _obj(doc, "error")
    code = error.get("code") if isinstance(error.get("code"), int) else None
    title = _opt_str(error, "message") or f"HTTP {status}"
    return SendResult(None, code, title[:200], retryable=status >= 500 or status == 429)
