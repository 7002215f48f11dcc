"""A chat exchange's credit session is never taken over: a second run of the same attempt
(whose session is open, or already ended) answers nothing, calls no LLM, sends no reply or
paused notice, and leaves the session as it found it."""

from __future__ import annotations

import datetime as dt

from gateway.messaging import exchange, store
from gateway.messaging.store import NewInbound
from load.messages import new_wamid
from tests.gateway.messaging_env import PHONE_NUMBER_ID, MessagingEnv
from tests.prom import count

CUSTOMER = "4915112345678"
C = 1_000_000


async def test_an_exchange_whose_credit_session_exists_is_not_answered_again(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(100)
    env.open_window(CUSTOMER)
    async with env.m.pool.acquire() as conn:
        (msg,) = await store.record_inbound(conn, [NewInbound(
            "whatsapp", new_wamid(), env.tenant, PHONE_NUMBER_ID, CUSTOMER, "text", "hi",
            None, dt.datetime.now(dt.UTC), {})])
    tenant, credits = str(env.tenant), env.m.credits
    # Another run of this very attempt opened the exchange's credit session.
    await credits.reserve(tenant, msg.credit_session_id, channel="whatsapp", requested=5 * C,
                          min_grant=1, validity_ms=60_000, overdraft_limit=0,
                          now_ms=env.m.clock_ms())
    opened = await credits.session(tenant, msg.credit_session_id)
    assert await exchange.answer(env.m, msg) == "superseded"
    assert await credits.session(tenant, msg.credit_session_id) == opened
    assert (await credits.balance(tenant)).reserved == 5 * C
    await credits.terminate(tenant, msg.credit_session_id, charged_total=0, usage={},
                            now_ms=env.m.clock_ms())
    ended = await credits.session(tenant, msg.credit_session_id)
    assert await exchange.answer(env.m, msg) == "superseded"
    assert await credits.session(tenant, msg.credit_session_id) == ended
    assert env.graph_sent() == [] and env.emulators.config.chat.requests == []
    assert count(env.m.replays, channel="whatsapp", stage="session") == 2
    (row,) = await env.fetch("SELECT state, attempt FROM messages WHERE vendor_id = $1",
                             msg.vendor_id)
    assert row == {"state": "received", "attempt": 1}  # the lease decides what follows
