"""Twilio's voice webhooks: `POST /twilio/voice` (a call comes in) and
`POST /twilio/status` (status callbacks).

The signature is checked before anything else is read. The answer is TwiML: a spoken
refusal for an unknown number, a paused tenant or a full gateway; otherwise a
`<Connect><Stream>` to `/twilio/stream` carrying a signed session token valid for a
minute and good for one stream. Nothing is reserved here: the stream reserves the first
slice when it starts, so a call Twilio never connects strands no credit. A call is
answered once, ever: a replayed webhook is told so and hung up (gateway.voice.replay).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp import web

from agents.voice.services import VoiceProviders, openai_http_client
from api.context import CREDIT_STORE, PG_POOL, REDIS
from api.operations import FORM, Header, Reply, add, operation
from api.problems import Problem
from api.webhook_models import TwilioCallStatusForm, TwilioVoiceForm
from gateway.codecs import session_token, twiml
from gateway.state import METRICS, SESSIONS, SETTINGS
from gateway.twilio_auth import signed_twilio_form
from gateway.voice.capacity import CallCapacity
from gateway.voice.replay import answered_once, is_call_sid, refused_replay, release_webhook
from gateway.voice.state import (
    CALL_CAPACITY,
    OPENAI_HTTP,
    STREAM_TOKEN_KEY,
    TWILIO_CALLS,
    VENDOR_HTTP,
    VOICE_PROVIDERS,
)
from gateway.voice.twilio_rest import TwilioCalls
from metering.channels import can_run
from metering.tenants import tenant_for_number

log = logging.getLogger("voicegw.voice")

STREAM_TOKEN_TTL_S = 60
NOT_IN_SERVICE = "The number you have called is not in service. Goodbye."
UNAVAILABLE = "This service is not available at the moment. Please try again later. Goodbye."
BUSY = "All our lines are busy. Please call again in a few minutes. Goodbye."
ANSWERED_BEFORE = "This call was already answered. Goodbye."


def _twiml(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/xml")


async def signed_form(request: web.Request) -> dict[str, list[str]]:
    """The webhook's form fields, once its X-Twilio-Signature proved Twilio sent them."""
    return await signed_twilio_form(request, request.app[SETTINGS])


def _field(params: dict[str, list[str]], name: str) -> str:
    values = params.get(name) or [""]
    return values[0].strip()


def stream_url(public_url: str) -> str:
    parts = urlsplit(public_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/twilio/stream"


_SIGNATURE = (Header("X-Twilio-Signature", "Twilio's signature of the URL and the form",
                     required=False),)
_VOICE_ERRORS = {400: ("malformed_payload",), 403: ("invalid_signature",),
                 422: ("invalid_field",)}


@operation("POST", "/twilio/voice", "Twilio voice webhook: a call comes in; answers TwiML",
           "webhooks", security="twilio", body=TwilioVoiceForm, body_media=FORM,
           headers=_SIGNATURE, errors=_VOICE_ERRORS,
           responses={200: Reply("TwiML: <Connect><Stream> to /twilio/stream, or a spoken "
                                 "refusal (unknown number, paused tenant, full gateway, replay)",
                                 media="text/xml", schema={"type": "string"})})
async def voice_webhook(request: web.Request) -> web.Response:
    params = await signed_form(request)
    call_sid, to, caller = (_field(params, n) for n in ("CallSid", "To", "From"))
    if not is_call_sid(call_sid) or not to:
        raise Problem(422, "invalid_field", "CallSid and To are required", field="CallSid")
    app = request.app
    redis, prefix = app[REDIS], app[SETTINGS].redis_prefix
    # A signature has no timestamp: whoever saw this webhook can post it again. Each call
    # is answered once, whatever the answer was (gateway.voice.replay).
    if not await answered_once(redis, app[PG_POOL], prefix, call_sid):
        refused_replay(app[METRICS], call_sid, "webhook")
        return _twiml(twiml.say_and_hangup(ANSWERED_BEFORE))
    try:
        return await _answer(request, call_sid, to, caller)
    except Exception:
        await release_webhook(redis, prefix, call_sid)  # nothing was answered
        raise


async def _answer(request: web.Request, call_sid: str, to: str, caller: str) -> web.Response:
    number = await tenant_for_number(request.app[PG_POOL], to)
    if number is None:
        log.info("call to a number nobody holds")
        return _twiml(twiml.say_and_hangup(NOT_IN_SERVICE))
    tenant = str(number.tenant_id)
    balance = await request.app[CREDIT_STORE].balance(tenant)
    if not can_run("phone", balance.available):
        log.info("call refused: tenant paused", extra={"tenant_id": tenant})
        return _twiml(twiml.say_and_hangup(UNAVAILABLE))
    sessions = request.app[SESSIONS]
    capacity = request.app[CALL_CAPACITY]
    refusal = ("draining", "shutting down") if sessions.draining else \
        capacity.refusal(sessions.count("phone"))
    if refusal is not None:
        log.warning("call refused: at capacity (%s)", refusal[1], extra={"tenant_id": tenant})
        request.app[METRICS].calls_refused.labels(reason=refusal[0]).inc()
        return _twiml(twiml.say_and_hangup(BUSY))
    capacity.admitted(call_sid)
    token = session_token.issue(
        request.app[STREAM_TOKEN_KEY],
        {"tenant": tenant, "call": call_sid, "to": to, "from": caller[:32]},
        now_s=time.time(), ttl_s=STREAM_TOKEN_TTL_S)
    url = stream_url(request.app[SETTINGS].public_url)
    return _twiml(twiml.connect_stream(url, {"token": token}))


@operation("POST", "/twilio/status", "Twilio call status callback (recorded once per status)",
           "webhooks", security="twilio", body=TwilioCallStatusForm, body_media=FORM,
           headers=_SIGNATURE, errors=_VOICE_ERRORS,
           responses={204: Reply("recorded")})
async def status_callback(request: web.Request) -> web.Response:
    """Records each (call, status) once; Twilio retries callbacks."""
    params = await signed_form(request)
    call_sid, status = _field(params, "CallSid"), _field(params, "CallStatus")
    if not call_sid or not status:
        raise Problem(422, "invalid_field", "CallSid and CallStatus are required",
                      field="CallStatus")
    pool = request.app[PG_POOL]
    number = await tenant_for_number(pool, _field(params, "To"))
    duration = _field(params, "CallDuration")
    payload = {name: values[0] for name, values in params.items()
               if name not in ("From", "Caller")}  # no end-customer numbers at rest here
    await pool.execute(
        """INSERT INTO call_status_events (call_sid, status, tenant_id, duration_s, payload)
           VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT DO NOTHING""",
        call_sid[:64], status[:32], None if number is None else number.tenant_id,
        int(duration) if duration.isdigit() else None, orjson.dumps(payload).decode())
    return web.Response(status=204)


async def _voice_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    http = aiohttp.ClientSession()
    app[VENDOR_HTTP] = http
    app[OPENAI_HTTP] = openai_http = openai_http_client()
    app[VOICE_PROVIDERS] = VoiceProviders(
        openai_api_key=settings.openai_api_key, openai_base_url=settings.openai_base_url,
        elevenlabs_api_key=settings.elevenlabs_api_key,
        elevenlabs_base_url=settings.elevenlabs_base_url, llm_model=settings.llm_model,
        stt_model=settings.stt_model, tts_model=settings.tts_model)
    app[TWILIO_CALLS] = TwilioCalls(http, settings.twilio_api_base,
                                    settings.twilio_account_sid, settings.twilio_auth_token)
    # Every gateway derives the same key from the shared admin token: a stream may land
    # on another process or host than the webhook that issued its token.
    app[STREAM_TOKEN_KEY] = session_token.derive_key(settings.admin_token, "twilio-stream")
    app[CALL_CAPACITY] = capacity = CallCapacity(settings.max_calls, settings.call_cpu_limit,
                                                 settings.call_lag_limit_ms)
    sampling = asyncio.create_task(capacity.run(), name="voice-capacity")
    yield
    sampling.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampling
    await http.close()
    await openai_http.aclose()


def add_voice_routes(app: web.Application) -> None:
    from gateway.voice.stream import media_stream

    app.cleanup_ctx.append(_voice_ctx)
    add(app, voice_webhook, status_callback, media_stream)
