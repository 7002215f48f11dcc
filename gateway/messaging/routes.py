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

from api.outages import store_unavailable
from api.problems import Problem, invalid_field
from api.requests import json_object, require_tenant, required_str
from gateway.codecs import sms_webhook, whatsapp
from gateway.codecs.exceptions import (
    SmsWebhookError,
    WhatsAppPayloadError,
    WhatsAppSignatureError,
    WhatsAppSubscriptionError,
)
from gateway.messaging import intake, store
from gateway.messaging.deps import MESSAGING, Messaging
from gateway.messaging.outbound import SendRefused, send_message
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


async def whatsapp_verify(request: web.Request) -> web.Response:
    token = request.app[MESSAGING].settings.whatsapp_verify_token
    try:
        challenge = whatsapp.subscription_challenge(request.query, token)
    except WhatsAppSubscriptionError as exc:
        if exc.reason == "missing":
            raise Problem(400, "bad_request", str(exc)) from exc
        raise Problem(403, "invalid_verify_token", str(exc)) from exc
    return web.Response(text=challenge, content_type="text/plain")


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
    return web.json_response({"messages": result.new, "duplicates": result.duplicates,
                              "statuses": result.statuses, "rejected": result.rejected})


async def _signed_form(request: web.Request) -> dict[str, list[str]]:
    return await signed_twilio_form(request, request.app[MESSAGING].settings, MAX_SMS_BYTES)


def _twiml() -> web.Response:
    return web.Response(text=sms_webhook.EMPTY_TWIML, content_type="text/xml")


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
        raise invalid_field("to", "must be an E.164 number such as +14155550123")
    if channel == "whatsapp":
        to = to.removeprefix("+")
        if not WA_ID.fullmatch(to):
            raise invalid_field("to", "must be the customer's WhatsApp number, digits with "
                                      "the country code")
    return to


async def post_message(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    body = await json_object(request)
    channel = body.get("channel")
    if channel not in ("whatsapp", "sms"):
        raise invalid_field("channel", 'must be "whatsapp" or "sms"')
    to = _recipient(channel, required_str(body, "to", 32))
    text = required_str(body, "text", whatsapp.MAX_TEXT if channel == "whatsapp"
                        else sms_webhook.MAX_BODY)
    try:
        sent = await send_message(request.app[MESSAGING], tenant_id, channel, to, text)
    except SendRefused as exc:
        if exc.vendor_code is not None:
            raise Problem(exc.status, exc.code, exc.detail, vendor_code=exc.vendor_code) from exc
        raise Problem(exc.status, exc.code, exc.detail) from exc
    return web.json_response({"id": sent.vendor_id, "channel": sent.channel, "to": sent.to,
                              "segments": sent.segments,
                              "credits": format_credits(sent.micro_credits),
                              "micro_credits": sent.micro_credits}, status=201)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/whatsapp/webhook", whatsapp_verify)
    app.router.add_post("/whatsapp/webhook", whatsapp_receive)
    app.router.add_post("/twilio/sms", sms_receive)
    app.router.add_post("/twilio/sms/status", sms_status)
    app.router.add_post("/v1/messages", post_message)
