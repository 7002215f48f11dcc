"""One conversation per call, ever: a replayed signed webhook, a second media stream (even
with a freshly issued valid token) and a credit session that existed before are refused,
logged and counted, and nothing more is reserved or billed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from api.context import PG_POOL, REDIS
from gateway.codecs import session_token
from gateway.state import METRICS, SETTINGS
from gateway.voice.replay import CALL_CLAIM_TTL_S, claim_key
from gateway.voice.state import STREAM_TOKEN_KEY
from load import twilio_wire
from load.caller import CallScript, SimulatedCall
from tests.gateway.voice.conftest import ACCOUNT_SID, CALLER, NUMBER, Gateway
from tests.gateway.voice.test_calls import balance_of, call_record, endpoint, place_call
from tests.gateway.voice.test_stream_errors import (
    FULL,
    GOOD_AUDIO,
    _closed_with,
    _media,
    _nothing_left,
    _start,
    _stream,
    _twiml,
)
from tests.prom import count


async def replay_webhook(gateway: Gateway, http: aiohttp.ClientSession,
                         call_sid: str) -> twilio_wire.Twiml:
    """The very form Twilio posted for the call, with its signature, posted again."""
    replayer = SimulatedCall(endpoint(gateway), NUMBER, CALLER, CallScript(), http)
    replayer.result.call_sid = call_sid
    return await replayer.fetch_twiml()


def fresh_token(gateway: Gateway, call_sid: str) -> str:
    """A valid stream token for the call, never used: as if the webhook issued another."""
    return session_token.issue(gateway.server.app[STREAM_TOKEN_KEY],
                               {"tenant": gateway.tenant_id, "call": call_sid, "to": NUMBER,
                                "from": CALLER}, now_s=time.time(), ttl_s=60)


def replays(gateway: Gateway, stage: str) -> float:
    return count(gateway.server.app[METRICS].replays, channel="phone", stage=stage)


async def reserved_now(gateway: Gateway) -> int:
    for _ in range(50):
        reserved: int = (await balance_of(gateway))["reserved_micro_credits"]
        if reserved > 0:
            return reserved
        await asyncio.sleep(0.05)
    raise AssertionError("the call never reserved credit")


async def sessions_recorded(gateway: Gateway) -> int:
    await gateway.drain_outbox()
    count: int = await gateway.server.app[PG_POOL].fetchval("SELECT count(*) FROM sessions")
    return count


def assert_refused(twiml: twilio_wire.Twiml) -> None:
    assert twiml.stream_url is None and twiml.parameters == {} and twiml.hangs_up
    assert "already answered" in twiml.said[0]


async def test_a_webhook_replayed_while_the_call_is_live_is_hung_up(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as http:
        call, twiml = await _twiml(gateway, http)
        ws = await _stream(gateway, http, [twilio_wire.connected(),
                                           _start(call, twiml.parameters),
                                           _media(call, 2, GOOD_AUDIO)])
        reserved = await reserved_now(gateway)
        assert_refused(await replay_webhook(gateway, http, call.result.call_sid))
        assert (await balance_of(gateway))["reserved_micro_credits"] == reserved
        await ws.send_str(twilio_wire.stop(call.stream_sid, 3, call.result.call_sid,
                                           ACCOUNT_SID))
        await _closed_with(ws)
        scraped = await (await http.get(f"{gateway.base}/metrics")).text()
    assert 'voicegw_replays_total{channel="phone",stage="webhook"} 1' in scraped
    await _nothing_left(gateway)
    record = await call_record(gateway, call.result.call_sid)
    assert await sessions_recorded(gateway) == 1
    assert (await balance_of(gateway))["available_micro_credits"] == \
        FULL - record["micro_credits"]
    # The claim outlives the call and its settlement, under the configured prefix.
    app = gateway.server.app
    key = claim_key(app[SETTINGS].redis_prefix, call.result.call_sid, "webhook")
    assert 0 < await app[REDIS].ttl(key) <= CALL_CLAIM_TTL_S


async def test_a_webhook_replayed_after_the_call_settled_is_hung_up(gateway: Gateway) -> None:
    result, _ = await place_call(gateway, CallScript([], hang_up_after_s=1.0))
    record = await call_record(gateway, result.call_sid)
    assert record["micro_credits"] > 0
    before = await balance_of(gateway)
    app = gateway.server.app
    async with aiohttp.ClientSession() as http:
        assert_refused(await replay_webhook(gateway, http, result.call_sid))
        # Long after, the claim has expired: the call's record still refuses it.
        await app[REDIS].delete(claim_key(app[SETTINGS].redis_prefix, result.call_sid,
                                          "webhook"))
        assert_refused(await replay_webhook(gateway, http, result.call_sid))
    assert replays(gateway, "webhook") == 2
    assert await balance_of(gateway) == before
    assert await sessions_recorded(gateway) == 1


async def test_a_second_stream_of_a_call_is_closed_1008_even_with_a_fresh_token(
        gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as http:
        call, twiml = await _twiml(gateway, http)
        first = await _stream(gateway, http, [twilio_wire.connected(),
                                              _start(call, twiml.parameters),
                                              _media(call, 2, GOOD_AUDIO)])
        reserved = await reserved_now(gateway)
        second = await _stream(gateway, http, [
            twilio_wire.connected(), _start(call, {"token": fresh_token(
                gateway, call.result.call_sid)})])
        assert await _closed_with(second) == 1008
        assert second.close_code == 1008 and not first.closed
        assert (await balance_of(gateway))["reserved_micro_credits"] == reserved
        await first.send_str(twilio_wire.stop(call.stream_sid, 3, call.result.call_sid,
                                              ACCOUNT_SID))
        await _closed_with(first)
        await _nothing_left(gateway)
        record = await call_record(gateway, call.result.call_sid)
        settled = await balance_of(gateway)
        # After the call settled, the same: refused, and nothing reserved or billed.
        third = await _stream(gateway, http, [
            twilio_wire.connected(), _start(call, {"token": fresh_token(
                gateway, call.result.call_sid)})])
        assert await _closed_with(third) == 1008
    assert replays(gateway, "stream") == 2
    await _nothing_left(gateway)
    assert await balance_of(gateway) == settled
    assert settled["available_micro_credits"] == FULL - record["micro_credits"]
    assert await sessions_recorded(gateway) == 1


async def test_a_stream_whose_credit_session_ended_is_closed_1008(gateway: Gateway) -> None:
    result, _ = await place_call(gateway, CallScript([], hang_up_after_s=1.0))
    await call_record(gateway, result.call_sid)
    before = await balance_of(gateway)
    app = gateway.server.app
    # Even past the stream claim (expired, or lost with a Redis that was replaced), the
    # credit store never reopens the call's session.
    await app[REDIS].delete(claim_key(app[SETTINGS].redis_prefix, result.call_sid, "stream"))
    async with aiohttp.ClientSession() as http:
        call = SimulatedCall(endpoint(gateway), NUMBER, CALLER, CallScript(), http)
        call.result.call_sid = result.call_sid
        ws = await _stream(gateway, http, [
            twilio_wire.connected(), _start(call, {"token": fresh_token(gateway,
                                                                        result.call_sid)})])
        assert await _closed_with(ws) == 1008
    assert replays(gateway, "session") == 1
    await _nothing_left(gateway)
    after: dict[str, Any] = await balance_of(gateway)
    assert after == before
    assert await sessions_recorded(gateway) == 1


async def test_a_webhook_that_failed_before_answering_leaves_the_call_answerable(
        gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as http:
        call = SimulatedCall(endpoint(gateway), "+1555\x000100001", CALLER, CallScript(), http)
        with pytest.raises(RuntimeError, match="answered [45]"):
            await call.fetch_twiml()  # PostgreSQL refuses a NUL in `To`: nothing answered
        retried = await replay_webhook(gateway, http, call.result.call_sid)
    assert retried.stream_url is not None and "token" in retried.parameters
    assert replays(gateway, "webhook") == 0
