"""`GET /twilio/stream`: the media-stream websocket of one call, from `start` to the
settled call record.

Order of business: read until `start` (anything else first, or nothing within
`START_TIMEOUT_S`, closes the socket); check the session token before anything runs (bad,
expired, for another call, or used before: close 1008, nothing billed); refuse a second
stream of the call, or a credit session that existed before (close 1008: one conversation
per call, ever); open the credit session (Gy INITIAL); run the agent while this handler
reads the socket; on `stop`, a closed socket, a protocol error, the goodbye or shutdown,
end the pipeline and settle (Gy TERMINATE) with the call record. Every exit path
settles: `finally` does it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import time
import uuid
from dataclasses import replace

from aiohttp import WSCloseCode, WSMsgType, web

from agents.voice.call import CallSetup, VoiceCall
from api.context import CREDIT_STORE, PG_POOL, REDIS
from api.operations import Reply, operation
from api.outages import is_store_outage
from gateway.codecs import session_token
from gateway.codecs.exceptions import MediaStreamError, TokenError
from gateway.codecs.twilio_media import (
    Dtmf,
    Mark,
    Media,
    MediaStreamParser,
    Start,
    Stop,
    encode_clear,
    encode_mark,
    media_encoder,
)
from gateway.logs import call_id_var, tenant_id_var
from gateway.sessions import LiveSession
from gateway.state import METRICS, SESSIONS, SETTINGS
from gateway.voice.conversation import (
    CallConversation,
    call_settings,
    open_call,
    summarize_and_settle,
)
from gateway.voice.replay import call_session_id, claim, refused_replay
from gateway.voice.state import (
    CALL_CAPACITY,
    OPENAI_HTTP,
    STREAM_TOKEN_KEY,
    TWILIO_CALLS,
    VENDOR_HTTP,
    VOICE_PROVIDERS,
)
from metering.agent_configs import agent_config_for
from metering.cards import card_for_tenant
from metering.control import PHONE_POLICY, CreditSession
from metering.outcomes import Origin
from metering.tenants import tenant_for_number

log = logging.getLogger("voicegw.stream")

START_TIMEOUT_S = 10.0
MAX_WS_MESSAGE = 64 * 1024  # aiohttp's own cap; the codec's tighter one answers first
TOKEN_REPLAY_TTL_S = 3600
TOKEN_CHECK_RETRY_S = 0.5


class TwilioChannel:
    """Agent audio, marks and clears onto the socket, as Twilio's messages."""

    def __init__(self, ws: web.WebSocketResponse, stream_sid: str) -> None:
        self._ws = ws
        self._sid = stream_sid
        self._media = media_encoder(stream_sid)

    async def _send(self, text: str) -> None:
        if not self._ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._ws.send_str(text)

    async def send_audio(self, mulaw: bytes) -> None:
        await self._send(self._media(mulaw))

    async def send_mark(self, name: str) -> None:
        await self._send(encode_mark(self._sid, name))

    async def send_clear(self) -> None:
        await self._send(encode_clear(self._sid))


def mask_number(number: str) -> str:
    return number[:5] + "***" + number[-4:] if len(number) > 9 else "***"


def caller_hash(tenant: str, number: str) -> str:
    """Stable per tenant (sessions per end customer), useless across tenants."""
    return hashlib.sha256(f"{tenant}:{number}".encode()).hexdigest()[:24]


async def _close(ws: web.WebSocketResponse, code: int, reason: str) -> None:
    if not ws.closed:
        await ws.close(code=code, message=reason[:120].encode())


async def _read_start(ws: web.WebSocketResponse, parser: MediaStreamParser) -> Start | None:
    async with asyncio.timeout(START_TIMEOUT_S):
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            event = parser.receive(msg.data)
            if isinstance(event, Start):
                return event
    return None


async def _claims(request: web.Request, start: Start) -> dict[str, object]:
    """The token's claims, once it is valid, for this call, and used for the first time."""
    token = start.custom_parameters.get("token", "")
    claims = session_token.verify(request.app[STREAM_TOKEN_KEY], token, now_s=time.time())
    if claims.get("call") != start.call_sid:
        raise TokenError("malformed", "the token was issued for another call")
    key = f"{request.app[SETTINGS].redis_prefix}streamtoken:{claims['nonce']}"
    try:
        first_use = await request.app[REDIS].set(key, start.call_sid, nx=True,
                                                 ex=TOKEN_REPLAY_TTL_S)
    except Exception as exc:
        if not is_store_outage(exc):
            raise
        # Once more after a pause: a call that starts while Redis restarts still starts.
        await asyncio.sleep(TOKEN_CHECK_RETRY_S)
        first_use = await request.app[REDIS].set(key, start.call_sid, nx=True,
                                                 ex=TOKEN_REPLAY_TTL_S)
    if not first_use:
        raise TokenError("malformed", "the token was used before")
    return claims


async def _close_on_outage(ws: web.WebSocketResponse, exc: Exception) -> None:
    """A store that is down: 1011 (try again later), not a protocol error; anything else
    is a bug and goes on up."""
    if not is_store_outage(exc):
        raise exc
    log.warning("stream ended: a store is unavailable: %r", exc)
    await _close(ws, WSCloseCode.INTERNAL_ERROR, "store unavailable, try again")


@operation(
    "GET", "/twilio/stream", "Twilio Media Streams websocket (opened by the TwiML of "
    "/twilio/voice)", "webhooks",
    responses={101: Reply("Switching Protocols: a websocket carrying Twilio's media stream "
                          "messages (JSON text frames: connected, start with the signed "
                          "session token, media, mark, stop); refusals close it with 1008")},
    errors={400: ("bad_request",)},
    description="Not plain HTTP: send `Upgrade: websocket`. A GET without it is a 400.")
async def media_stream(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(max_msg_size=MAX_WS_MESSAGE, heartbeat=30)
    await ws.prepare(request)
    parser = MediaStreamParser()
    try:
        start = await _read_start(ws, parser)
        if start is None:
            await _close(ws, WSCloseCode.POLICY_VIOLATION, "no start")
            return ws
        claims = await _claims(request, start)
    except MediaStreamError as exc:
        await _close(ws, exc.close_code, str(exc))
        return ws
    except TokenError as exc:
        log.warning("stream refused: %s", exc)
        await _close(ws, WSCloseCode.POLICY_VIOLATION, f"session token {exc.reason}")
        return ws
    except TimeoutError:
        await _close(ws, WSCloseCode.POLICY_VIOLATION, "no start within the time allowed")
        return ws
    except Exception as exc:
        await _close_on_outage(ws, exc)
        return ws
    try:
        # One stream per call, ever, whatever token it carries (gateway.voice.replay).
        if not await claim(request.app[REDIS], request.app[SETTINGS].redis_prefix,
                           start.call_sid, "stream"):
            refused_replay(request.app[METRICS], start.call_sid, "stream")
            await _close(ws, WSCloseCode.POLICY_VIOLATION, "the call was streamed before")
            return ws
        await _run_call(request, ws, parser, start, claims)
    except Exception as exc:
        await _close_on_outage(ws, exc)
    return ws


async def _run_call(request: web.Request, ws: web.WebSocketResponse,
                    parser: MediaStreamParser, start: Start, claims: dict[str, object]) -> None:
    app = request.app
    app[CALL_CAPACITY].started(start.call_sid)  # admitted by the webhook, live from here
    tenant, caller, to = str(claims["tenant"]), str(claims.get("from", "")), str(claims["to"])
    tenant_id_var.set(tenant)
    call_id_var.set(start.call_sid)
    pool = app[PG_POOL]
    session_id = call_session_id(start.call_sid)
    policy = replace(PHONE_POLICY,
                     record_every_ms=int(app[SETTINGS].usage_report_s * 1000))
    # The disposition here is what the record says only if the call is swept (its gateway
    # died before settling it); the call's own record replaces it when it settles.
    credit = CreditSession(
        app[CREDIT_STORE], await card_for_tenant(pool, uuid.UUID(tenant)), policy,
        tenant, session_id, lambda: int(time.time() * 1000),
        meta={"call_sid": start.call_sid, "number": to, "caller": mask_number(caller),
              "caller_hash": caller_hash(tenant, caller), "disposition": "gateway_lost"})
    # Everything that reads a store comes before the reservation: after it, nothing may
    # fail before `_supervise` owns the settlement.
    number = await tenant_for_number(pool, to)
    config = await agent_config_for(pool, uuid.UUID(tenant))
    conversation = CallConversation(uuid.UUID(tenant), start.call_sid,
                                    await call_settings(app, uuid.UUID(tenant)),
                                    dt.datetime.now(dt.UTC))
    calls = app[TWILIO_CALLS]
    grant = await credit.start()
    if grant.replayed:  # the call's session exists: never a second conversation on it
        refused_replay(app[METRICS], start.call_sid, "session")
        await _close(ws, WSCloseCode.POLICY_VIOLATION, f"credit session {grant.status}")
        return
    if not grant.ok:
        log.info("call refused at start: %s", grant.status)
        with contextlib.suppress(Exception):
            await calls.control(start.call_sid).hang_up()
        await _close(ws, WSCloseCode.OK, "no credit")
        return
    await open_call(app, conversation, session_id=session_id,
                    customer_hash=caller_hash(tenant, caller),
                    customer_masked=mask_number(caller))
    setup = CallSetup(Origin(uuid.UUID(tenant), session_id, "phone", caller), config,
                      app[VOICE_PROVIDERS], None if number is None else number.operator_number,
                      csat=conversation.settings.csat_enabled)
    metrics = app[METRICS]
    call = VoiceCall(setup, TwilioChannel(ws, start.stream_sid), calls.control(start.call_sid),
                     credit, pool, app[VENDOR_HTTP], app[OPENAI_HTTP],
                     on_tool_failure=lambda f: metrics.tool_failures.labels(
                         channel=f.channel, tool=f.tool).inc(),
                     on_turn_latency=metrics.turn_latency.observe)
    await _supervise(app, ws, parser, call, session_id, conversation)


async def _supervise(app: web.Application, ws: web.WebSocketResponse,
                     parser: MediaStreamParser, call: VoiceCall, session_id: str,
                     conversation: CallConversation) -> None:
    sessions = app[SESSIONS]

    async def close(reason: str) -> None:
        await call.shut_down()

    running: asyncio.Task[None] | None = None
    try:
        sessions.add(LiveSession(session_id, "phone", close))  # refused while draining
        app[METRICS].active_calls.set(sessions.count("phone"))
        running = asyncio.create_task(call.run(), name=f"call-{session_id}")
        ended_by = await _read_until_end(ws, parser, call, running)
        if ended_by == "protocol_error":
            call.fail("error")
        await call.caller_hung_up()
        await running
    except BaseException:
        call.fail("error")
        if running is not None:
            running.cancel()
            with contextlib.suppress(BaseException):
                await running
        raise
    finally:
        try:
            # The summary goes into the record (and the webhook); then the conversation.
            await summarize_and_settle(app, conversation, call)
            log.info("call settled", extra={"event": call.disposition,
                                            "duration_ms": call.usage.call_ms()})
        finally:
            sessions.remove(session_id)
            app[METRICS].active_calls.set(sessions.count("phone"))
            await _close(ws, WSCloseCode.OK, "call ended")


async def _read_until_end(ws: web.WebSocketResponse, parser: MediaStreamParser,
                          call: VoiceCall, running: asyncio.Task[None]) -> str:
    """Feeds the call from the socket until `stop`, a close, an error, or the call ends;
    says which. One reader task per call, waited for once beside the call (not a future
    and a wait per 20 ms frame)."""
    reading = asyncio.create_task(_read_socket(ws, parser, call), name="stream-reader")
    try:
        await asyncio.wait({reading, running}, return_when=asyncio.FIRST_COMPLETED)
        if reading.done():
            return reading.result()
        return "call_ended"  # on our side: goodbye, transfer, error
    finally:
        if not reading.done():
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading


async def _read_socket(ws: web.WebSocketResponse, parser: MediaStreamParser,
                       call: VoiceCall) -> str:
    while True:
        msg = await ws.receive()
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return "closed"
        try:
            event = parser.receive(msg.data)
        except MediaStreamError as exc:
            log.warning("stream closed on a protocol error: %s", exc)
            await _close(ws, exc.close_code, str(exc))
            return "protocol_error"
        if isinstance(event, Media):
            if event.track in ("inbound", "inbound_track"):
                await call.feed_audio(event.payload, event.timestamp_ms)
        elif isinstance(event, Mark):
            call.on_mark(event.name)
        elif isinstance(event, Dtmf):
            await call.feed_dtmf(event.digit)
        elif isinstance(event, Stop):
            return "stop"
