"""HTTP endpoints of the messaging channels. Thin: read and authenticate the request,
call one service, map the result.

- `GET /whatsapp/webhook`: Meta's verify handshake (200 with the challenge, or 403).
- `POST /whatsapp/webhook`: X-Hub-Signature-256 checked on the raw body before anything
  is parsed (401 missing, 403 wrong, nothing stored); stored, answered 200, then
  processed in the background.
- `POST /twilio/sms`, `POST /twilio/sms/status`: X-Twilio-Signature checked first, by the
  same check as the voice webhooks (`gateway.twilio_auth`: 403 `invalid_signature`,
  missing or wrong); the answer to an inbound message is empty TwiML (the reply goes out
  through the REST API).
- `POST /v1/messages`: a tenant sends a free-form message (API key).

A signed body we cannot read is kept in `webhook_rejects` and answered 400. While the
store is unreachable or the worker is full, webhooks are answered 503: the vendors retry.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import orjson
from aiohttp import web
from redis.exceptions import RedisError

from api.errors import InvalidField
from api.operations import FORM, Header, Reply, add, operation, respond
from api.outages import store_unavailable
from api.problems import Problem
from api.requests import parse_body, require_tenant
from api.webhook_models import (
    MessageSent,
    SendMessage,
    TwilioSmsForm,
    TwilioSmsStatusForm,
    WebhookAccepted,
    WhatsAppVerifyQuery,
    WhatsAppWebhook,
)
from gateway.codecs import sms_webhook, whatsapp
from gateway.codecs.exceptions import (
    SmsWebhookError,
    WhatsAppPayloadError,
    WhatsAppSignatureError,
    WhatsAppSubscriptionError,
)
from gateway.messaging import intake, store
from gateway.messaging.deps import MESSAGING, Messaging
from gateway.messaging.outbound import send_message
from gateway.twilio_auth import signed_twilio_form
from metering.money import format_credits

log = logging.getLogger("voicegw.messaging")

MAX_WHATSAPP_BYTES = 3 * 1024 * 1024  # Meta batches up to 1,000 updates (~3 MB)
MAX_SMS_BYTES = 64 * 1024  # a Twilio form is a few KB
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
WA_ID = re.compile(r"[1-9][0-9]{5,19}")
T = TypeVar("T")
_UNAVAILABLE = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
                RedisError)


async def read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, "payload_too_large", f"webhook bodies are limited to {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise Problem(413, "payload_too_large", f"webhook bodies are limited to {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _ready(request: web.Request, jobs: int = 1) -> Messaging:
    m = request.app[MESSAGING]
    if not m.worker.has_room(jobs):
        raise Problem(503, "overloaded", "too many messages waiting; retry later",
                      headers={"Retry-After": "5"})
    return m


async def _stored(work: Callable[[], Awaitable[T]]) -> T:
    try:
        return await work()
    except _UNAVAILABLE as exc:
        log.warning("message store unavailable: %s", exc)
        raise store_unavailable("the message store is unreachable; retry later") from exc


_TWIML = Reply("empty TwiML (replies go out through the REST API)", media="text/xml",
                schema={"type": "string"})
_STORED = {503: ("store_unavailable", "overloaded", "channel_not_configured")}


@operation("GET", "/whatsapp/webhook", "Meta's verify handshake: answers the challenge",
           "webhooks", query=WhatsAppVerifyQuery,
           responses={200: Reply("the challenge, as sent", media="text/plain",
                                 schema={"type": "string"})},
           errors={400: ("bad_request",), 403: ("invalid_verify_token",)})
async def whatsapp_verify(request: web.Request) -> web.Response:
    token = request.app[MESSAGING].settings.whatsapp_verify_token
    try:
        challenge = whatsapp.subscription_challenge(request.query, token)
    except WhatsAppSubscriptionError as exc:
        if exc.reason == "missing":
            raise Problem(400, "bad_request", str(exc)) from exc
        raise Problem(403, "invalid_verify_token", str(exc)) from exc
    return web.Response(text=challenge, content_type="text/plain")


@operation("POST", "/whatsapp/webhook", "WhatsApp Cloud API webhook (X-Hub-Signature-256)",
           "webhooks", security="whatsapp", body=WhatsAppWebhook,
           headers=(Header("X-Hub-Signature-256", "sha256=<hex HMAC of the raw body>",
                           required=False),),
           responses={200: Reply("stored; processed in the background", WebhookAccepted)},
           errors={400: ("malformed_payload",), 401: ("missing_signature",),
                   403: ("invalid_signature",), **_STORED},
           description="The signature is checked on the raw body before anything is parsed; "
                       "a signed body that cannot be read is kept and answered 400.")
async def whatsapp_receive(request: web.Request) -> web.Response:
    m = request.app[MESSAGING]
    secret = m.settings.whatsapp_app_secret
    if not secret:
        raise Problem(503, "channel_not_configured", "VOICEGW_WHATSAPP_APP_SECRET is not set")
    body = await read_body(request, MAX_WHATSAPP_BYTES)
    try:
        whatsapp.verify_signature(body, request.headers.get(whatsapp.SIGNATURE_HEADER), secret)
    except WhatsAppSignatureError as exc:
        if exc.missing:
            raise Problem(401, "missing_signature", str(exc)) from exc
        raise Problem(403, "invalid_signature", str(exc)) from exc
    try:
        batch = whatsapp.parse_webhook(body)
    except WhatsAppPayloadError as exc:
        reject = [(str(exc), body.decode("utf-8", "replace"))]
        await _stored(lambda: store.record_rejects(m.pool, "whatsapp", reject))
        raise Problem(400, "malformed_payload", str(exc)) from exc
    _ready(request, len(batch.messages))
    result = await _stored(lambda: intake.accept_whatsapp(m, batch))
    return respond(WebhookAccepted(messages=result.new, duplicates=result.duplicates,
                                   statuses=result.statuses, rejected=result.rejected))


async def _signed_form(request: web.Request) -> dict[str, list[str]]:
    return await signed_twilio_form(request, request.app[MESSAGING].settings, MAX_SMS_BYTES)


def _twiml() -> web.Response:
    return web.Response(text=sms_webhook.EMPTY_TWIML, content_type="text/xml")


_TWILIO_ERRORS = {400: ("malformed_payload",), 401: ("missing_signature",),
                  403: ("invalid_signature",), **_STORED}
_SIGNATURE = (Header("X-Twilio-Signature", "Twilio's signature of the URL and the form",
                     required=False),)


@operation("POST", "/twilio/sms", "Twilio inbound SMS webhook (X-Twilio-Signature)",
           "webhooks", security="twilio", body=TwilioSmsForm, body_media=FORM,
           headers=_SIGNATURE, responses={200: _TWIML}, errors=_TWILIO_ERRORS)
async def sms_receive(request: web.Request) -> web.Response:
    m = request.app[MESSAGING]
    params = await _signed_form(request)
    try:
        sms = sms_webhook.parse_inbound(params)
    except SmsWebhookError as exc:
        reject = [(str(exc), orjson.dumps(params).decode())]
        await _stored(lambda: store.record_rejects(m.pool, "sms", reject))
        raise Problem(400, "malformed_payload", str(exc)) from exc
    _ready(request)
    await _stored(lambda: intake.accept_sms(m, sms, params))
    return _twiml()


@operation("POST", "/twilio/sms/status", "Twilio message status callback", "webhooks",
           security="twilio", body=TwilioSmsStatusForm, body_media=FORM, headers=_SIGNATURE,
           responses={200: _TWIML}, errors=_TWILIO_ERRORS)
async def sms_status(request: web.Request) -> web.Response:
    m = request.app[MESSAGING]
    params = await _signed_form(request)
    try:
        status = sms_webhook.parse_status(params)
    except SmsWebhookError as exc:
        raise Problem(400, "malformed_payload", str(exc)) from exc
    await _stored(lambda: intake.accept_sms_status(m, status, params))
    return _twiml()


def _recipient(channel: str, raw: str) -> str:
    to = raw.strip()
    if channel == "sms" and not E164.fullmatch(to):
        raise InvalidField("to", "must be an E.164 number such as +14155550123")
    if channel == "whatsapp":
        to = to.removeprefix("+")
        if not WA_ID.fullmatch(to):
            raise InvalidField("to", "must be the customer's WhatsApp number, digits with "
                                     "the country code")
    return to


@operation("POST", "/v1/messages",
           "Send a free-form WhatsApp (inside the 24-hour window) or SMS message", "messaging",
           security="tenant", body=SendMessage,
           responses={201: Reply("sent and billed", MessageSent)},
           errors={402: ("insufficient_credits",),
                   409: ("whatsapp_window_closed", "no_sender_number"),
                   502: ("vendor_error",)},
           description="Billed like any other message (`sms_sent_segments`, "
                       "`whatsapp_messages`); a refused message costs nothing. 409 "
                       "`whatsapp_window_closed` carries `vendor_code` 131047 when Meta "
                       "refused.")
async def post_message(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    body = await parse_body(request, SendMessage)
    to = _recipient(body.channel, body.to)
    if body.channel == "sms" and len(body.text) > sms_webhook.MAX_BODY:
        raise InvalidField("text", f"String should have at most {sms_webhook.MAX_BODY} "
                                   "characters")
    # SendRefused is a problem: the middleware answers it.
    sent = await send_message(request.app[MESSAGING], tenant_id, body.channel, to, body.text)
    return respond(MessageSent(id=sent.vendor_id, channel=sent.channel,  # type: ignore[arg-type]
                               to=sent.to, segments=sent.segments,
                               credits=format_credits(sent.micro_credits),
                               micro_credits=sent.micro_credits), 201)


def add_routes(app: web.Application) -> None:
    add(app, whatsapp_verify, whatsapp_receive, sms_receive, sms_status, post_message)
