"""WhatsApp end to end: signed webhooks into the real app, replies through the Graph API
emulator, the LLM emulator, real Redis and PostgreSQL, the outbox drained to the ledger."""

from __future__ import annotations

import asyncio

import orjson

from load.messages import (
    new_wamid,
    whatsapp_status,
    whatsapp_text,
    whatsapp_value,
    whatsapp_webhook,
)
from tests.gateway.messaging_env import PHONE_NUMBER_ID, MessagingEnv, one_message

CUSTOMER = "4915112345678"


async def test_verify_handshake(messaging_env: MessagingEnv) -> None:
    client = messaging_env.client
    ok = await client.get("/whatsapp/webhook", params={
        "hub.mode": "subscribe", "hub.verify_token": "test-verify-token",
        "hub.challenge": "1158201444"})
    assert ok.status == 200 and await ok.text() == "1158201444"
    wrong = await client.get("/whatsapp/webhook", params={
        "hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"})
    assert wrong.status == 403
    assert (await wrong.json())["code"] == "invalid_verify_token"
    missing = await client.get("/whatsapp/webhook", params={"hub.mode": "subscribe"})
    assert missing.status == 400


async def test_a_message_gets_one_reply_billed_in_tokens(messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(1000)
    env.open_window(CUSTOMER)
    wamid = new_wamid()
    response = await env.post_whatsapp(one_message([whatsapp_text(CUSTOMER, "hello there",
                                                                   wamid)]))
    assert response.status == 200
    assert await response.json() == {"messages": 1, "duplicates": 0, "statuses": 0,
                                     "rejected": 0}
    await env.settle()
    (sent,) = env.graph_sent(CUSTOMER)
    assert "voicegw emulator" in sent["text"] and sent["phone_number_id"] == PHONE_NUMBER_ID
    inbound = await env.fetch("SELECT state, reply_id, session_id FROM messages "
                              "WHERE vendor_id = $1", wamid)
    assert inbound == [{"state": "replied", "reply_id": sent["id"],
                        "session_id": f"wa-{wamid}"}]
    (session,) = await env.fetch("SELECT channel, usage, micro_credits FROM sessions")
    assert session["channel"] == "whatsapp"
    usage = orjson.loads(session["usage"])
    assert usage["whatsapp_messages"] == 1 and usage["chat_input_tokens"] > 0
    assert usage["chat_output_tokens"] > 0
    # 40 and 200 credits per 1,000 tokens: 40,000 and 200,000 micro-credits a token.
    expected = usage["chat_input_tokens"] * 40_000 + usage["chat_output_tokens"] * 200_000
    assert session["micro_credits"] == expected
    charges = await env.fetch("SELECT event_id, micro_credits FROM ledger_entries "
                              "WHERE kind = 'charge'")
    assert charges == [{"event_id": f"wa-{wamid}:in", "micro_credits": 0}]
    counted = await env.fetch("SELECT units FROM usage_events WHERE meter = "
                              "'whatsapp_messages' ORDER BY event_id")
    assert [row["units"] for row in counted] == [1, 1]  # in and out, free


async def test_the_same_webhook_twice_gives_one_reply_and_one_charge(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(1000)
    env.open_window(CUSTOMER)
    payload = one_message([whatsapp_text(CUSTOMER, "hi")])
    first = await env.post_whatsapp(payload)
    await env.settle()
    again = await env.post_whatsapp(payload)
    assert (await first.json())["messages"] == 1
    assert await again.json() == {"messages": 0, "duplicates": 1, "statuses": 0, "rejected": 0}
    concurrent = await asyncio.gather(*(env.post_whatsapp(payload) for _ in range(5)))
    assert all(r.status == 200 for r in concurrent)
    await env.settle()
    assert len(env.graph_sent(CUSTOMER)) == 1
    assert await env.count("ledger_entries", "kind = 'charge'") == 1
    assert await env.count("sessions") == 1


async def test_duplicates_racing_on_two_gateways_give_one_reply(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(1000)
    other = await env.second_gateway()
    env.open_window(CUSTOMER)
    payloads = [one_message([whatsapp_text(CUSTOMER, f"question {n}")]) for n in range(10)]
    responses = await asyncio.gather(*(env.post_whatsapp(p, client=c) for p in payloads
                                       for c in (env.client, other, env.client, other)))
    assert all(r.status == 200 for r in responses)
    bodies = [await r.json() for r in responses]
    assert sum(b["messages"] for b in bodies) == 10
    assert sum(b["duplicates"] for b in bodies) == 30
    await env.settle()
    assert len(env.graph_sent(CUSTOMER)) == 10
    assert await env.count("sessions") == 10
    assert await env.count("ledger_entries", "kind = 'charge'") == 10


async def test_a_batch_of_fifty_gets_fifty_replies(messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(5000)
    customers = [f"49151000000{n:02d}" for n in range(10)]
    for customer in customers:
        env.open_window(customer)
    values = [whatsapp_value(PHONE_NUMBER_ID, [whatsapp_text(customers[(e * 10 + i) % 10],
                                                             f"message {e}-{i}")
                                               for i in range(10)]) for e in range(5)]
    response = await env.post_whatsapp(whatsapp_webhook(values))
    assert (await response.json())["messages"] == 50
    await env.settle()
    assert len(env.graph_sent()) == 50
    assert await env.count("messages", "direction = 'in' AND state = 'replied'") == 50
    assert await env.count("messages", "direction = 'out' AND kind = 'reply'") == 50
    assert await env.count("sessions") == 50


async def test_statuses_and_pricing_are_recorded_once(messaging_env: MessagingEnv) -> None:
    env = messaging_env
    wamid = new_wamid()
    statuses = [whatsapp_status(wamid, "sent", CUSTOMER),
                whatsapp_status(wamid, "delivered", CUSTOMER),
                whatsapp_status(new_wamid(), "failed", CUSTOMER, error_code=131047)]
    payload = whatsapp_webhook([whatsapp_value(PHONE_NUMBER_ID, statuses=statuses)])
    for _ in range(2):
        response = await env.post_whatsapp(payload)
        assert (await response.json())["statuses"] == 3
    rows = await env.fetch("SELECT status, errors::text AS errors, tenant_id "
                           "FROM message_statuses ORDER BY occurred_at, status")
    assert sorted(r["status"] for r in rows) == ["delivered", "failed", "sent"]
    assert all(r["tenant_id"] == env.tenant for r in rows)
    failed = next(r for r in rows if r["status"] == "failed")
    assert "131047" in failed["errors"]
    pricing = await env.fetch("SELECT vendor_id, billable, category FROM message_pricing")
    assert pricing == [{"vendor_id": wamid, "billable": False, "category": "service"}]
