"""Phone calls end to end: the simulated caller (acting as Twilio) against the real
gateway, real Redis and PostgreSQL, and the vendor emulators."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import asyncpg

from load.caller import CallResult, CallScript, Endpoint, SimulatedCall
from load.emulators.server import RunningEmulators
from metering.meters import Meter
from metering.ratecard import default_rate_card
from metering.rating import rate_usage
from tests.gateway.helpers import TWILIO_AUTH_TOKEN
from tests.gateway.voice.conftest import ACCOUNT_SID, CALLER, NUMBER, Gateway


def endpoint(gateway: Gateway) -> Endpoint:
    return Endpoint(gateway.base, "https://gw.test", TWILIO_AUTH_TOKEN, ACCOUNT_SID,
                    gateway.emulators.base)


async def place_call(gateway: Gateway, script: CallScript) -> tuple[CallResult, SimulatedCall]:
    async with aiohttp.ClientSession() as http:
        call = SimulatedCall(endpoint(gateway), NUMBER, CALLER, script, http)
        return await call.run(), call


async def call_record(gateway: Gateway, call_sid: str) -> dict[str, Any]:
    """The settled call record, once the sink wrote it."""
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            await gateway.drain_outbox()
            response = await http.get(f"{gateway.base}/v1/calls/{call_sid}",
                                      headers=gateway.auth)
            if response.status == 200:
                record: dict[str, Any] = await response.json()
                return record
            await asyncio.sleep(0.1)
    raise AssertionError("the call record never landed")


def emulated_usage(emulators: RunningEmulators) -> dict[str, int]:
    chat = emulators.config.chat.streamed_usage_sent  # the summary is on its own meter
    return {Meter.VOICE_INPUT_TOKENS.value: sum(u["prompt_tokens"] for u in chat),
            Meter.VOICE_OUTPUT_TOKENS.value: sum(u["completion_tokens"] for u in chat),
            Meter.TTS_CHARACTERS.value: emulators.config.vendors.tts_characters}


async def test_booking_call_books_once_and_bills_exactly_what_was_used(
        gateway: Gateway, pg_pool_of_gateway: asyncpg.Pool) -> None:
    result, _ = await place_call(gateway, CallScript(
        ["I would like to book an appointment tomorrow at 3pm"], max_call_s=30))
    assert result.first_audio_ms is not None and result.turn_latencies_ms
    assert result.ended_by == "caller"
    record = await call_record(gateway, result.call_sid)
    assert record["disposition"] == "caller_hung_up"
    assert [o["kind"] for o in record["outcomes"]] == ["appointment_booked"]
    appointment = await pg_pool_of_gateway.fetchrow(
        "SELECT requested_for, customer FROM appointments")
    assert tuple(appointment) == ("tomorrow at 3pm", CALLER)
    usage = record["usage"]
    for meter, units in emulated_usage(gateway.emulators).items():
        assert usage[meter] == units, meter
    assert usage[Meter.STT_SECONDS.value] > 0 and usage[Meter.CALL_SECONDS.value] > 0
    expected = rate_usage(default_rate_card(), usage).total
    assert record["micro_credits"] == expected
    async with aiohttp.ClientSession() as http:
        balance = await (await http.get(f"{gateway.base}/v1/balance",
                                        headers=gateway.auth)).json()
    assert balance["available_micro_credits"] == 100_000 * 1_000_000 - expected
    assert balance["reserved_micro_credits"] == 0



async def balance_of(gateway: Gateway) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        body: dict[str, Any] = await (await http.get(f"{gateway.base}/v1/balance",
                                                     headers=gateway.auth)).json()
        return body


async def test_barge_in_mid_reply_is_still_billed(gateway: Gateway) -> None:
    # A slow LLM: the caller talks over the reply while it is still streaming, so the
    # provider never reports usage for it. What streamed is counted all the same.
    gateway.emulators.config.chat.timing.tokens_per_s = 6
    result, _ = await place_call(gateway, CallScript(
        ["hello there how are you today", "sorry to interrupt, one more thing"],
        barge_in_at=1, barge_in_after_s=0.3, max_call_s=40))
    assert result.clears >= 1 and len(result.said) == 2
    record = await call_record(gateway, result.call_sid)
    reported = emulated_usage(gateway.emulators)
    usage = record["usage"]
    # The interrupted reply's prompt and streamed words are billed beyond what the
    # provider reported; every TTS character sent is billed.
    assert usage[Meter.VOICE_OUTPUT_TOKENS.value] > reported[Meter.VOICE_OUTPUT_TOKENS.value]
    assert usage[Meter.VOICE_INPUT_TOKENS.value] > reported[Meter.VOICE_INPUT_TOKENS.value]
    assert usage[Meter.TTS_CHARACTERS.value] == reported[Meter.TTS_CHARACTERS.value]
    assert record["micro_credits"] == rate_usage(default_rate_card(), usage).total


async def test_caller_hang_up_settles_at_once(gateway: Gateway) -> None:
    result, _ = await place_call(gateway, CallScript([], hang_up_after_s=1.5))
    assert result.ended_by == "caller"
    # No sweeper, no waiting: the reservation is released as the socket closes.
    for _ in range(20):
        balance = await balance_of(gateway)
        if balance["reserved_micro_credits"] == 0:
            break
        await asyncio.sleep(0.05)
    assert balance["reserved_micro_credits"] == 0
    record = await call_record(gateway, result.call_sid)
    assert record["disposition"] == "caller_hung_up"
    # The gateway counts from the moment the call is set up, a moment after the caller
    # started its clock.
    assert 1_300 <= record["usage"][Meter.CALL_SECONDS.value] < 4_000


async def test_asking_for_a_human_transfers_the_call_to_the_operator(
        gateway: Gateway, pg_pool_of_gateway: asyncpg.Pool) -> None:
    result, _ = await place_call(gateway, CallScript(
        ["can I talk to a human please"], max_call_s=20, agent_silence_s=1.5))
    twilio = [c for c in gateway.emulators.config.vendors.twilio_calls
              if c["sid"] == result.call_sid]
    assert len(twilio) == 1 and "<Dial><Number>+15550100999</Number></Dial>" in twilio[0]["Twiml"]
    record = await call_record(gateway, result.call_sid)
    assert record["disposition"] == "transferred" and record["outcomes"] == []
    handoff = await pg_pool_of_gateway.fetchrow("SELECT session_id, target FROM handoffs")
    assert tuple(handoff) == (record["session_id"], "+15550100999")


async def test_saying_goodbye_ends_the_call_from_the_agent_side(gateway: Gateway) -> None:
    result, _ = await place_call(gateway, CallScript(["okay thanks, goodbye"], max_call_s=20,
                                                     hang_up_when_done=False))
    assert result.ended_by == "gateway"
    record = await call_record(gateway, result.call_sid)
    assert record["disposition"] == "completed"
    hang_ups = [c for c in gateway.emulators.config.vendors.twilio_calls
                if c["sid"] == result.call_sid]
    assert [c.get("Status") for c in hang_ups] == ["completed"]
