"""`POST /v1/messages` on WhatsApp, and exactly-once across crashes: a message stored but
never answered is taken over; a reply whose send outcome is unknown is never sent twice."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from gateway.messaging import recover, store
from gateway.messaging.store import NewInbound
from load.messages import new_wamid, whatsapp_text
from tests.gateway.messaging_env import PHONE_NUMBER_ID, MessagingEnv, one_message

CUSTOMER = "4915112345678"


async def _send(env: MessagingEnv, **body: object) -> tuple[int, dict[str, object]]:
    response = await env.client.post("/v1/messages", json=body, headers=env.auth)
    return response.status, await response.json()


async def test_inside_the_window_a_message_is_sent_and_counted(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(100)
    env.open_window(CUSTOMER)
    await env.post_whatsapp(one_message([whatsapp_text(CUSTOMER, "hi")]))  # opens ours
    await env.settle()
    status, body = await _send(env, channel="whatsapp", to="+" + CUSTOMER,
                               text="Your order has shipped.")
    assert status == 201, body
    assert body["channel"] == "whatsapp" and body["micro_credits"] == 0
    assert env.graph_sent(CUSTOMER)[-1]["text"] == "Your order has shipped."
    await env.settle()
    (row,) = await env.fetch("SELECT kind, customer FROM messages WHERE vendor_id = $1",
                             body["id"])
    assert row == {"kind": "api", "customer": CUSTOMER}


async def test_outside_the_window_it_is_refused_and_costs_nothing(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(100)
    status, body = await _send(env, channel="whatsapp", to=CUSTOMER, text="Hello again")
    assert status == 409 and body["code"] == "whatsapp_window_closed"
    assert "vendor_code" not in body  # our own check: Meta was never asked
    assert env.graph_sent() == []
    await env.settle()
    assert await env.count("ledger_entries") == 0 and await env.count("usage_events") == 0


async def test_metas_131047_is_the_same_refusal_and_costs_nothing(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(100)
    await env.post_whatsapp(one_message([whatsapp_text(CUSTOMER, "hi")]))  # Meta was not told
    await env.settle()
    (inbound,) = await env.fetch("SELECT state, error FROM messages WHERE direction = 'in'")
    assert inbound["state"] == "refused" and "131047" in inbound["error"]
    status, body = await _send(env, channel="whatsapp", to=CUSTOMER, text="Hello")
    assert status == 409 and body == {**body, "code": "whatsapp_window_closed",
                                      "vendor_code": 131047}
    await env.settle()
    sessions = await env.fetch("SELECT usage->>'whatsapp_messages' AS out FROM sessions")
    assert all(s["out"] is None for s in sessions)  # no refused message is billed
    assert await env.count("usage_events", "meter = 'whatsapp_messages'") == 1  # the one in


@pytest.mark.parametrize(
    ("body", "field"),
    [({"channel": "fax", "to": "1", "text": "x"}, "channel"),
     ({"channel": "whatsapp", "to": "abc", "text": "x"}, "to"),
     ({"channel": "sms", "to": "0049151", "text": "x"}, "to"),
     ({"channel": "sms", "to": "+15550100002", "text": ""}, "text"),
     ({"channel": "sms", "to": "+15550100002", "text": "x" * 1601}, "text")],
)
async def test_invalid_requests_name_the_field(messaging_env: MessagingEnv,
                                               body: dict[str, object], field: str) -> None:
    status, problem = await _send(messaging_env, **body)
    assert status == 422 and problem["field"] == field


async def test_a_paused_tenant_cannot_send(messaging_env: MessagingEnv) -> None:
    env = messaging_env
    status, body = await _send(env, channel="sms", to="+15550100002", text="hi")
    assert status == 402 and body["code"] == "insufficient_credits"
    unauthorized = await env.client.post("/v1/messages", json={})
    assert unauthorized.status == 401


async def _stored_message(env: MessagingEnv, state: str | None = None) -> str:
    """A message stored and acknowledged, whose worker then died (its lease ran out)."""
    wamid = new_wamid()
    async with env.m.pool.acquire() as conn:
        (msg,) = await store.record_inbound(conn, [NewInbound(
            "whatsapp", wamid, env.tenant, PHONE_NUMBER_ID, CUSTOMER, "text", "hi", None,
            dt.datetime.now(dt.UTC), {})])
    assert msg.attempt == 1
    await env.m.pool.execute(
        "UPDATE messages SET lease_until = now() - interval '1 s', "
        "state = coalesce($2, state) WHERE vendor_id = $1", wamid, state)
    return wamid


async def test_a_message_whose_process_died_is_taken_over(messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(100)
    env.open_window(CUSTOMER)
    wamid = await _stored_message(env)  # stored, answered 200, then the process died
    other = await env.second_gateway()
    from gateway.messaging.deps import MESSAGING

    assert await recover(other.app[MESSAGING]) == 1
    assert await recover(env.m) == 0  # the lease is taken: nobody else takes it
    await env.settle()
    (row,) = await env.fetch("SELECT state, attempt FROM messages WHERE vendor_id = $1", wamid)
    assert row == {"state": "replied", "attempt": 2}
    assert len(env.graph_sent(CUSTOMER)) == 1
    (session,) = await env.fetch("SELECT session_id FROM sessions")
    assert session["session_id"] == f"wa-{wamid}.a2"


async def test_a_crash_while_sending_is_never_sent_twice(messaging_env: MessagingEnv) -> None:
    env = messaging_env
    env.open_window(CUSTOMER)
    wamid = await _stored_message(env, state="sending")
    await recover(env.m)
    await env.settle()
    (row,) = await env.fetch("SELECT state FROM messages WHERE vendor_id = $1", wamid)
    assert row["state"] == "unknown"
    assert env.graph_sent() == []


async def test_a_stale_worker_cannot_move_a_message_taken_over(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await _stored_message(env)
    (taken,) = await store.take_over_stale(env.m.pool, 10)
    stale = store.Inbound(**{**taken.__dict__, "attempt": taken.attempt - 1})
    assert not await store.move(env.m.pool, stale, "sending")
    assert await store.move(env.m.pool, taken, "sending")
    assert uuid.UUID(str(taken.tenant_id)) == env.tenant
