"""WhatsApp: the text agent's tools, a paused tenant, and messages a tenant sends itself."""

from __future__ import annotations

import orjson
import pytest

from agents.text_agent import HANDOFF_NOTICE
from load.messages import whatsapp_text
from tests.gateway.messaging_env import MessagingEnv, one_message
from tests.pg_outage import pool_on_a_closed_port
from tests.prom import sample

CUSTOMER = "4915112345678"


async def test_a_booking_on_whatsapp_is_a_success_event(messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(1000)
    env.open_window(CUSTOMER)
    await env.post_whatsapp(one_message([whatsapp_text(
        CUSTOMER, "I would like to book an appointment tomorrow at 3pm")]))
    await env.settle()
    (event,) = await env.fetch("SELECT channel, kind, session_id FROM success_events")
    assert event["channel"] == "whatsapp" and event["kind"] == "appointment_booked"
    (booking,) = await env.fetch("SELECT customer, requested_for FROM appointments")
    assert booking == {"customer": CUSTOMER, "requested_for": "tomorrow at 3pm"}
    (reply,) = env.graph_sent(CUSTOMER)
    assert "confirmed" in reply["text"]
    (session,) = await env.fetch("SELECT session_id, usage->>'tool_calls' AS tools "
                                 "FROM sessions")
    assert session["session_id"] == event["session_id"] and session["tools"] == "1"


async def test_a_booking_that_cannot_be_saved_is_not_confirmed_and_is_on_record(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(1000)
    env.open_window(CUSTOMER)
    # The agent's tools lose their store (a pool nothing answers); the rest keeps working.
    dead = await pool_on_a_closed_port()
    env.m.agent.pool = dead
    try:
        await env.post_whatsapp(one_message([whatsapp_text(
            CUSTOMER, "I would like to book an appointment tomorrow at 3pm")]))
        await env.settle()
    finally:
        await dead.close()
    (reply,) = env.graph_sent(CUSTOMER)
    assert "did not go through" in reply["text"] and "confirmed" not in reply["text"]
    assert await env.count("success_events") == 0
    (session,) = await env.fetch("SELECT details->'tool_failures' AS failures, "
                                 "details->'tool_outcomes' AS outcomes FROM sessions")
    assert orjson.loads(session["outcomes"]) == []
    assert orjson.loads(session["failures"]) == [
        {"tool": "book_appointment", "call_id": "t0", "error": "ConnectionRefusedError",
         "attempts": 3}]
    metrics = await (await env.client.get("/metrics")).text()
    assert sample(metrics, "voicegw_tool_failures_total", channel="whatsapp",
                  tool="book_appointment") == 1


async def test_a_transfer_tells_the_customer_a_person_will_write(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(1000)
    env.open_window(CUSTOMER)
    await env.post_whatsapp(one_message([whatsapp_text(CUSTOMER, "Can I talk to a person?")]))
    await env.settle()
    (handoff,) = await env.fetch("SELECT channel, target FROM handoffs")
    assert handoff == {"channel": "whatsapp", "target": None}
    assert [m["text"] for m in env.graph_sent(CUSTOMER)] == [HANDOFF_NOTICE]


async def test_the_next_reply_remembers_the_conversation(messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(1000)
    env.open_window(CUSTOMER)
    for text in ("first question", "second question"):
        await env.post_whatsapp(one_message([whatsapp_text(CUSTOMER, text)]))
        await env.settle()
    last = env.emulators.config.chat.requests[-1]["messages"]
    said = [m["content"] for m in last if m["role"] in ("user", "assistant")]
    assert said[0] == "first question" and said[-1] == "second question"
    assert len(said) == 3  # question, reply, question


@pytest.mark.parametrize("notice", [None, "We are closed for now; we will write back soon."])
async def test_a_paused_tenant_gets_no_ai_reply(messaging_env: MessagingEnv,
                                               notice: str | None) -> None:
    env = messaging_env
    await env.configure(paused_notice=notice)
    env.open_window(CUSTOMER)
    for text in ("hello?", "anyone there?"):
        await env.post_whatsapp(one_message([whatsapp_text(CUSTOMER, text)]))
        await env.settle()
    assert env.emulators.config.chat.requests == []  # no LLM call at all
    assert [m["text"] for m in env.graph_sent(CUSTOMER)] == ([notice] if notice else [])
    states = [r["state"] for r in await env.fetch(
        "SELECT state FROM messages WHERE direction = 'in'")]
    assert states == ["paused", "paused"]  # still recorded
    assert await env.count("sessions") == 0
    billed = await env.m.pool.fetchval("SELECT coalesce(sum(micro_credits), 0) "
                                       "FROM ledger_entries")
    assert billed == 0
    balance = await (await env.client.get("/v1/balance", headers=env.auth)).json()
    assert balance["paused"] is True and balance["available_micro_credits"] == 0


async def test_after_a_top_up_a_new_pause_sends_the_notice_again(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.configure(paused_notice="Paused.")
    env.open_window(CUSTOMER)
    await env.post_whatsapp(one_message([whatsapp_text(CUSTOMER, "one")]))
    await env.settle()
    await env.topup(1)  # a new episode; 1 credit runs out within one exchange
    await env.post_whatsapp(one_message([whatsapp_text(CUSTOMER, "two")]))
    await env.settle()
    balance = await env.m.credits.balance(str(env.tenant))
    assert balance.available <= 0
    await env.post_whatsapp(one_message([whatsapp_text(CUSTOMER, "three")]))
    await env.settle()
    texts = [m["text"] for m in env.graph_sent(CUSTOMER)]
    assert texts[0] == "Paused." and texts[-1] == "Paused." and len(texts) == 3
    assert await env.count("paused_notices") == 2
