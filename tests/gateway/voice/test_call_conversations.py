"""Phone calls as conversations: the simulated caller (acting as Twilio) against the real
gateway, real Redis and PostgreSQL and the vendor emulators; the conversation read back
through the API, the summary in the call record and the `session.completed` webhook."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import asyncpg
import orjson

from agents.summary import NO_CUSTOMER_WORDS
from agents.voice.call import CSAT_QUESTION
from load.caller import CallScript
from metering.notify.endpoints import create_endpoint
from tests.gateway.voice.conftest import ADMIN, Gateway
from tests.gateway.voice.test_calls import call_record, place_call


async def conversation_of(gateway: Gateway, pool: asyncpg.Pool, call_sid: str
                          ) -> dict[str, Any]:
    """The call's conversation through the API, once it settled."""
    for _ in range(100):
        found = await pool.fetchval("SELECT id FROM conversations WHERE call_sid = $1 "
                                    "AND settled_at IS NOT NULL", call_sid)
        if found is not None:
            async with aiohttp.ClientSession() as http:
                response = await http.get(f"{gateway.base}/v1/conversations/{found}",
                                          headers=gateway.auth)
                assert response.status == 200, await response.text()
                body: dict[str, Any] = await response.json()
                return body
        await asyncio.sleep(0.1)
    raise AssertionError("the call's conversation never settled")


async def test_a_booking_call_is_a_conversation_with_transcript_summary_and_credits(
        gateway: Gateway, pg_pool_of_gateway: asyncpg.Pool) -> None:
    pool = pg_pool_of_gateway
    endpoint = await create_endpoint(pool, __import__("uuid").UUID(gateway.tenant_id),
                                     "http://127.0.0.1:9/hook", ["session.completed"],
                                     allow_private=True)
    assert endpoint.secret
    said = "I would like to book an appointment tomorrow at 3pm"
    result, _ = await place_call(gateway, CallScript([said], max_call_s=30))
    record = await call_record(gateway, result.call_sid)
    conversation = await conversation_of(gateway, pool, result.call_sid)
    assert conversation["channel"] == "phone" and conversation["direction"] == "inbound"
    assert conversation["disposition"] == record["disposition"] == "caller_hung_up"
    assert conversation["customer"]["masked"] == record["caller"]
    assert conversation["micro_credits"] == record["micro_credits"] > 0
    assert [o["kind"] for o in conversation["outcomes"]] == ["appointment_booked"]
    assert conversation["successes"] == 1 and conversation["handoff"] is False
    # First response: the agent's first audio, as the call record measured it.
    assert abs(conversation["first_response_ms"] - record["first_audio_ms"]) <= 2
    turns = conversation["transcript"]
    assert turns[0]["role"] == "agent" and turns[0]["text"]  # the greeting
    assert [t["text"] for t in turns if t["role"] == "customer"] == [said]
    assert any(t["role"] == "agent" and "confirmed" in t["text"] for t in turns)
    assert all(t["started_at"] <= t["ended_at"] for t in turns)
    (booking,) = conversation["tool_calls"]
    assert booking["name"] == "book_appointment"
    assert booking["arguments"]["when"] == "tomorrow at 3pm"
    assert booking["result"]["status"] == "confirmed"
    # The summary is the LLM's, its tokens on their own meter (free on the default card).
    assert conversation["summary"] and "emulator" in conversation["summary"]
    assert record["usage"]["summary_tokens"] > 0
    assert record["charges_micro_credits"]["summary_tokens"] == 0
    body = await pool.fetchval("SELECT body FROM webhook_messages "
                               "WHERE event_type = 'session.completed'")
    event = orjson.loads(bytes(body))["data"]
    assert event["summary"] == conversation["summary"]
    assert event["conversation_id"] == conversation["id"]


async def test_an_abandoned_call_is_a_conversation_without_an_answer(
        gateway: Gateway, pg_pool_of_gateway: asyncpg.Pool) -> None:
    result, _ = await place_call(gateway, CallScript([], hang_up_after_s=0.0))
    assert result.first_audio_ms is None
    conversation = await conversation_of(gateway, pg_pool_of_gateway, result.call_sid)
    assert conversation["disposition"] == "abandoned"
    assert conversation["first_response_ms"] is None
    assert conversation["summary"] == NO_CUSTOMER_WORDS  # no model asked: nothing said
    assert [t for t in conversation["transcript"] if t["role"] == "customer"] == []


async def barge_in_call(gateway: Gateway, pool: asyncpg.Pool) -> dict[str, Any]:
    """A call whose caller talks over the agent's first answer; its conversation.

    A slow LLM and an instant TTS: the reply is long enough to cut, and each clause's
    audio is sent far ahead of the caller, so more of it is sent than heard."""
    gateway.emulators.config.chat.timing.tokens_per_s = 6
    result, _ = await place_call(gateway, CallScript(
        ["hello there how are you today", "sorry to interrupt, one more thing"],
        barge_in_at=1, barge_in_after_s=0.6, max_call_s=40))
    assert result.clears >= 1
    return await conversation_of(gateway, pool, result.call_sid)


async def test_an_interrupted_agent_turn_keeps_what_the_caller_heard(
        gateway: Gateway, pg_pool_of_gateway: asyncpg.Pool) -> None:
    conversation = await barge_in_call(gateway, pg_pool_of_gateway)
    cut = [t for t in conversation["transcript"] if t["interrupted"]]
    assert cut, conversation["transcript"]
    for turn in cut:
        assert turn["role"] == "agent"
        heard = turn["heard_text"]
        assert heard is not None and turn["text"].startswith(heard)
        assert len(heard) < len(turn["text"])
    assert all(t["heard_text"] is None for t in conversation["transcript"]
               if not t["interrupted"])


async def test_the_context_after_a_barge_in_holds_what_the_caller_heard(
        gateway: Gateway, pg_pool_of_gateway: asyncpg.Pool) -> None:
    conversation = await barge_in_call(gateway, pg_pool_of_gateway)
    # The first cut is the barge-in's (a later one is the hang-up's).
    cut = [t for t in conversation["transcript"] if t["interrupted"]]
    assert cut, conversation["transcript"]
    heard = cut[0]["heard_text"]
    assert heard is not None and len(heard) < len(cut[0]["text"])
    # The request that answered the caller's second utterance: the cut reply is in its
    # context as heard, never as sent.
    answers = [body for body in gateway.emulators.config.chat.requests
               if body.get("stream") and any("sorry to interrupt" in str(m.get("content"))
                                             for m in body["messages"])]
    assert answers
    replies = [m.get("content") for m in answers[0]["messages"] if m["role"] == "assistant"]
    assert cut[0]["text"] not in replies
    if heard:
        assert replies[-1] == heard
    else:  # nothing heard: the reply is not in the context at all
        assert all(cut[0]["text"][:12] not in str(r) for r in replies[1:])


async def test_csat_after_a_call_records_the_keypad_rating_once(
        gateway: Gateway, pg_pool_of_gateway: asyncpg.Pool) -> None:
    async with aiohttp.ClientSession() as http:
        response = await http.patch(f"{gateway.base}/admin/tenants/{gateway.tenant_id}/settings",
                                    json={"csat_enabled": True}, headers=ADMIN)
        assert response.status == 200, await response.text()
        assert (await response.json())["csat_enabled"] is True
    result, _ = await place_call(gateway, CallScript(
        ["okay thanks, goodbye"], keypad="4", max_call_s=30, hang_up_when_done=False))
    assert result.ended_by == "gateway"  # the agent hung up after the rating
    conversation = await conversation_of(gateway, pg_pool_of_gateway, result.call_sid)
    assert conversation["rating"] == 4
    assert conversation["resolved"] is True and conversation["disposition"] == "completed"
    (ended,) = conversation["tool_calls"]
    assert ended["name"] == "end_call" and ended["arguments"] == {"resolved": True}
    agent = [t for t in conversation["transcript"] if t["role"] == "agent"]
    # Everything the agent said after the caller's goodbye is one turn: the rating
    # question, then the thanks.
    assert CSAT_QUESTION in agent[-1]["text"]
    assert agent[-1]["text"].endswith("Thank you for your rating. Goodbye.")
    assert not any(t["interrupted"] for t in agent)


async def test_a_masked_tenant_keeps_no_number_in_the_transcript_or_summary(
        gateway: Gateway, pg_pool_of_gateway: asyncpg.Pool) -> None:
    async with aiohttp.ClientSession() as http:
        response = await http.patch(f"{gateway.base}/v1/settings",
                                    json={"mask_transcripts": True}, headers=gateway.auth)
        assert response.status == 200, await response.text()
    said = "please call me back at 555 123 4567 or write to jane.doe@example.com"
    result, _ = await place_call(gateway, CallScript([said], max_call_s=30))
    conversation = await conversation_of(gateway, pg_pool_of_gateway, result.call_sid)
    texts = [t["text"] for t in conversation["transcript"]] + [conversation["summary"]]
    assert any("***-**67" in t or "*** **67" in t for t in texts)
    for text in texts:
        assert "123 4567" not in text and "jane.doe" not in text, text
    stored = await pg_pool_of_gateway.fetchval(
        "SELECT transcript::text || summary FROM conversations WHERE call_sid = $1",
        result.call_sid)
    assert "123 4567" not in stored and "jane.doe" not in stored  # never stored unmasked
