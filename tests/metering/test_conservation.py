"""Conservation under concurrency, property-based.

Many sessions of one tenant run at once with random usage, random top-ups land between
them, some sessions die (stop reporting) and are swept after the clock moves. At every
step, read atomically: credits topped up = available + reserved + billed, and reserved is
exactly what the open sessions hold. No session is debited beyond its grants plus its
overdraft limit. After the sweeper and the sink drain, PostgreSQL and Redis agree.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.cli_metering import drain
from metering.credit_store import CreditStore
from metering.keys import tenant_keys
from metering.reconcile import reconcile_tenant
from metering.sink import Sink
from tests.metering.ledger import insert_tenant, ledger_topup

C = 1_000_000
SLICE = 20 * C
OVERDRAFT = 3 * C


@dataclass
class Plan:
    steps: list[int]  # cost increments reported one by one (micro-credits)
    dies: bool  # stops reporting instead of terminating


plans = st.lists(
    st.builds(Plan, st.lists(st.integers(0, 15 * C), min_size=1, max_size=6), st.booleans()),
    min_size=2, max_size=10,
)


async def _check(store: CreditStore, tenant: str, sessions: list[str]) -> None:
    keys = tenant_keys(store.prefix, tenant)
    async with store.redis.pipeline(transaction=True) as pipe:  # MULTI: one atomic read
        pipe.hmget(keys.account, "topped_up", "available", "reserved", "billed")
        for sid in sessions:
            pipe.hmget(keys.session(sid), "held", "state", "granted_total", "billed")
        replies = await pipe.execute()
    topped_up, available, reserved, billed = (int(v or 0) for v in replies[0])
    assert topped_up == available + reserved + billed
    held_by_open = 0
    for held, state, granted, session_billed in replies[1:]:
        if state == b"open":
            held_by_open += int(held)
        if granted is not None:
            assert int(session_billed) <= int(granted) + OVERDRAFT
    assert reserved == held_by_open
    assert available >= -OVERDRAFT * len(sessions)


async def _run_session(store: CreditStore, tenant: str, sid: str, plan: Plan,
                       clock: list[int], sessions: list[str]) -> None:
    grant = await store.reserve(tenant, sid, channel="phone", requested=SLICE, min_grant=C,
                                validity_ms=10_000, overdraft_limit=OVERDRAFT, now_ms=clock[0])
    if grant.status == "insufficient":
        return
    charged = 0
    for step in plan.steps:
        charged += step
        await store.update(tenant, sid, charged_total=charged, usage={"call_seconds": charged},
                           target_held=SLICE, min_grant=C, validity_ms=10_000, now_ms=clock[0])
        await _check(store, tenant, sessions)
        await asyncio.sleep(0)
    if not plan.dies:
        await store.terminate(tenant, sid, charged_total=charged, usage=None, now_ms=clock[0])
    await _check(store, tenant, sessions)


async def _topups(pool: asyncpg.Pool, store: CreditStore, tenant: str, amounts: list[int],
                  sessions: list[str]) -> None:
    for credits in amounts:
        await ledger_topup(pool, store, tenant, credits)
        await _check(store, tenant, sessions)
        await asyncio.sleep(0)


async def _scenario(redis_url: str, database_url: str, plan_list: list[Plan],
                    topups: list[int]) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    assert pool is not None
    prefix = f"vgwtest:{uuid.uuid4().hex[:12]}:"
    try:
        store = CreditStore(redis, prefix)
        tenant = await insert_tenant(pool)
        sessions = [f"s{n}-{uuid.uuid4().hex[:8]}" for n in range(len(plan_list))]
        clock = [1_000]
        await _topups(pool, store, tenant, topups[:1], sessions)
        await asyncio.gather(
            *(_run_session(store, tenant, sid, plan, clock, sessions)
              for sid, plan in zip(sessions, plan_list, strict=True)),
            _topups(pool, store, tenant, topups[1:], sessions),
        )
        clock[0] += 60_000  # the dead sessions' reservations expire
        await store.sweep_all(clock[0])
        await _check(store, tenant, sessions)
        balance = await store.balance(tenant)
        assert balance.reserved == 0
        assert await store.live_sessions(tenant) == []
        await drain(Sink(redis, pool, prefix))
        assert await reconcile_tenant(pool, store, uuid.UUID(tenant)) == []
        recorded = await pool.fetchval(
            "SELECT count(*) FROM sessions WHERE tenant_id = $1::uuid", tenant)
        opened = [sid for sid in sessions if await store.session(tenant, sid)]
        assert recorded == len(opened)
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await pool.close()
        await redis.aclose()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan_list=plans, topups=st.lists(st.integers(1, 60), min_size=1, max_size=5))
def test_credits_are_conserved_under_concurrency(
    redis_url: str, database_url_sync: str, plan_list: list[Plan], topups: list[int]
) -> None:
    asyncio.run(_scenario(redis_url, database_url_sync, plan_list, topups))
