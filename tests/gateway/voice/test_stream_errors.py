"""Bad input on the phone channel: unsigned webhooks, bad or replayed session tokens,
malformed, oversized and out-of-order media-stream messages. Each gets a precise answer,
the session (if one opened) is settled, and nothing is left behind: no live session, no
reservation, no task."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import aiohttp
import orjson
import pytest

from api.context import PG_POOL
from gateway.codecs import session_token
from gateway.state import SESSIONS
from gateway.voice.state import STREAM_TOKEN_KEY
from load import twilio_wire
from load.caller import CallScript, SimulatedCall
from tests.gateway.helpers import TWILIO_AUTH_TOKEN
from tests.gateway.voice.conftest import ACCOUNT_SID, CALLER, NUMBER, Gateway, start_gateway
from tests.gateway.voice.test_calls import balance_of, call_record, endpoint

FULL = 100_000 * 1_000_000


async def _twiml(gateway: Gateway, http: aiohttp.ClientSession,
                 to: str = NUMBER) -> tuple[SimulatedCall, twilio_wire.Twiml]:
    call = SimulatedCall(endpoint(gateway), to, CALLER, CallScript(), http)
    return call, await call.fetch_twiml()


async def _stream(gateway: Gateway, http: aiohttp.ClientSession,
                  messages: list[str]) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(f"{gateway.base}/twilio/stream")
    for message in messages:
        await ws.send_str(message)
    return ws


async def _closed_with(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    async with asyncio.timeout(10):
        async for _ in ws:
            pass
    return ws.close_code


async def _nothing_left(gateway: Gateway) -> None:
    app = gateway.server.app
    for _ in range(50):
        tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("call-")]
        if len(app[SESSIONS]) == 0 and not tasks:
            break
        await asyncio.sleep(0.05)
    assert len(app[SESSIONS]) == 0
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("call-")]
    assert (await balance_of(gateway))["reserved_micro_credits"] == 0


def _start(call: SimulatedCall, parameters: dict[str, str]) -> str:
    return twilio_wire.start(call.stream_sid, call.result.call_sid, ACCOUNT_SID, parameters)


async def test_webhook_without_a_valid_signature_is_403(gateway: Gateway) -> None:
    form = {"CallSid": "CA1", "To": NUMBER, "From": CALLER}
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"X-Twilio-Signature": "bm90IGl0"},
                        {"X-Twilio-Signature": twilio_wire.signature(
                            "https://gw.test/twilio/voice", form, "another-token")}):
            response = await http.post(f"{gateway.base}/twilio/voice", data=form,
                                       headers=headers)
            assert response.status == 403
            assert (await response.json())["code"] == "invalid_signature"
        signed = twilio_wire.signature("https://gw.test/twilio/voice", form, TWILIO_AUTH_TOKEN)
        tampered = await http.post(f"{gateway.base}/twilio/voice",
                                   data={**form, "To": "+15550100002"},
                                   headers={"X-Twilio-Signature": signed})
        assert tampered.status == 403


async def test_unknown_number_and_paused_tenant_are_told_and_hung_up(
        gateway: Gateway, redis_url: str, database_url: str, key_prefix: str) -> None:
    async with aiohttp.ClientSession() as http:
        _, twiml = await _twiml(gateway, http, to="+15559999999")
        assert twiml.stream_url is None and twiml.hangs_up
        assert "not in service" in twiml.said[0]
    broke = await start_gateway(redis_url, database_url, key_prefix + "b:",
                                gateway.emulators, 0, number="+15550100002")
    try:
        async with aiohttp.ClientSession() as http:
            _, twiml = await _twiml(broke, http, to="+15550100002")
    finally:
        await broke.server.close()
    assert twiml.stream_url is None and "not available" in twiml.said[0]


async def test_bad_expired_and_replayed_tokens_close_1008_and_bill_nothing(
        gateway: Gateway) -> None:
    key = gateway.server.app[STREAM_TOKEN_KEY]
    async with aiohttp.ClientSession() as http:
        call, twiml = await _twiml(gateway, http)
        token = twiml.parameters["token"]
        expired = session_token.issue(key, {"tenant": gateway.tenant_id,
                                            "call": call.result.call_sid, "to": NUMBER},
                                      now_s=time.time() - 120)
        other_call = session_token.issue(key, {"tenant": gateway.tenant_id, "call": "CAother",
                                               "to": NUMBER}, now_s=time.time())
        for bad in (token[:-2] + "xx", "garbage", "", expired, other_call):
            ws = await _stream(gateway, http, [twilio_wire.connected(),
                                               _start(call, {"token": bad})])
            assert await _closed_with(ws) == 1008, bad
        # The genuine token works once...
        ws = await _stream(gateway, http, [twilio_wire.connected(),
                                           _start(call, {"token": token})])
        await asyncio.sleep(0.5)
        await ws.send_str(twilio_wire.stop(call.stream_sid, 5, call.result.call_sid,
                                           ACCOUNT_SID))
        await _closed_with(ws)
        # ...and a replay of it is refused.
        replay = await _stream(gateway, http, [twilio_wire.connected(),
                                               _start(call, {"token": token})])
        assert await _closed_with(replay) == 1008
    await _nothing_left(gateway)
    await gateway.drain_outbox()
    sessions = await gateway.server.app[PG_POOL].fetchval("SELECT count(*) FROM sessions")
    assert sessions == 1  # only the genuine stream opened (and settled) a session


def _media(call: SimulatedCall, seq: int, payload: str) -> str:
    return orjson.dumps({"event": "media", "sequenceNumber": str(seq),
                         "streamSid": call.stream_sid,
                         "media": {"track": "inbound", "chunk": str(seq), "timestamp": "20",
                                   "payload": payload}}).decode()


GOOD_AUDIO = base64.b64encode(b"\xff" * 160).decode()

BAD_AFTER_START: list[tuple[str, Any, int]] = [
    ("not json", "{oops", 1007),
    ("json array", "[1, 2]", 1007),
    ("bad base64", "MEDIA:!!!not base64!!!", 1007),
    ("oversized", "MEDIA:" + base64.b64encode(b"\xff" * 6000).decode(), 1009),
    ("second start", "START", 1002),
    ("sequence goes back", "SEQ1", 1002),
]


@pytest.mark.parametrize(("case", "message", "code"), BAD_AFTER_START)
async def test_bad_message_mid_call_closes_and_settles(gateway: Gateway, case: str,
                                                       message: str, code: int) -> None:
    async with aiohttp.ClientSession() as http:
        call, twiml = await _twiml(gateway, http)
        ws = await _stream(gateway, http, [twilio_wire.connected(),
                                           _start(call, twiml.parameters),
                                           _media(call, 2, GOOD_AUDIO)])
        await asyncio.sleep(0.5)  # the call is live: a reservation is held
        assert (await balance_of(gateway))["reserved_micro_credits"] > 0
        if message == "START":
            message = _start(call, twiml.parameters)
        elif message == "SEQ1":
            message = _media(call, 1, GOOD_AUDIO)
        elif message.startswith("MEDIA:"):
            message = _media(call, 3, message.removeprefix("MEDIA:"))
        await ws.send_str(message)
        assert await _closed_with(ws) == code, case
    await _nothing_left(gateway)
    record = await call_record(gateway, call.result.call_sid)
    assert record["disposition"] == "error" and record["status"] == "settled"
    balance = await balance_of(gateway)
    assert balance["available_micro_credits"] == FULL - record["micro_credits"]


async def test_media_before_start_or_no_start_closes_without_a_session(
        gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as http:
        call, _ = await _twiml(gateway, http)
        early = await _stream(gateway, http, [twilio_wire.connected(),
                                              _media(call, 2, GOOD_AUDIO)])
        assert await _closed_with(early) == 1002
        silent = await _stream(gateway, http, [twilio_wire.connected()])
        await silent.close()
    await _nothing_left(gateway)
    assert (await balance_of(gateway))["available_micro_credits"] == FULL


async def test_status_callbacks_are_recorded_once(gateway: Gateway) -> None:
    form = {"CallSid": "CA" + "9" * 32, "CallStatus": "completed", "CallDuration": "42",
            "To": NUMBER, "From": CALLER, "AccountSid": ACCOUNT_SID}
    signed = twilio_wire.signature("https://gw.test/twilio/status", form, TWILIO_AUTH_TOKEN)
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            response = await http.post(f"{gateway.base}/twilio/status", data=form,
                                       headers={"X-Twilio-Signature": signed})
            assert response.status == 204
        unsigned = await http.post(f"{gateway.base}/twilio/status", data=form)
        assert unsigned.status == 403
    rows = await gateway.server.app[PG_POOL].fetch(
        "SELECT status, duration_s, tenant_id::text, payload::text FROM call_status_events")
    assert [(r["status"], r["duration_s"], r["tenant_id"]) for r in rows] == [
        ("completed", 42, gateway.tenant_id)]
    assert CALLER not in rows[0]["payload"]
