"""Plan credits conserved under concurrency, property-based.

A subscribed tenant spends credits (one-shot charges and a held session), tops up, and the
clock moves through cycles while two gateways run the cycle job at once. At every step,
read atomically: topped up + granted = available + reserved + billed + expired. Each
cycle's expiry is at most what was granted for it and never takes purchased credits or
credits held by a session; a rollover plan expires nothing. At the end the ledger and the
live balance agree, and Redis rebuilt from the ledger alone (grants and expiries
included) agrees again.
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
from metering.billing.cycle import run_cycle
from metering.billing.periods import Period
from metering.billing.subscriptions import subscribe
from metering.credit_store import CreditStore
from metering.keys import tenant_keys
from metering.reconcile import reconcile, reconcile_tenant
from metering.sink import Sink
from tests.metering.billing_helpers import add_plan, at
from tests.metering.ledger import insert_tenant, ledger_topup
from tests.servers import TestServers

C = 1_000_000


@dataclass
class Cycle:
    charges: list[int]  # credits spent by one-shot charges during the cycle
    topups: list[int]  # credits bought during the cycle
    held: int  # credits a session holds across the cycle's end


cycles = st.lists(st.builds(Cycle, st.lists(st.integers(1, 80), max_size=5),
                            st.lists(st.integers(1, 50), max_size=2), st.integers(0, 40)),
                  min_size=1, max_size=4)


async def _check(store: CreditStore, tenant: str) -> tuple[int, ...]:
    keys = tenant_keys(store.prefix, tenant)
    raw = await store.redis.hmget(keys.account, "topped_up", "granted", "available",
                                  "reserved", "billed", "expired")  # one command: atomic
    topped_up, granted, available, reserved, billed, expired = (int(v or 0) for v in raw)
    assert topped_up + granted == available + reserved + billed + expired
    assert available >= 0 and expired <= granted
    return topped_up, granted, available, reserved, billed, expired


async def _spend(store: CreditStore, tenant: str, cycle: Cycle, now_ms: int) -> None:
    for credits in cycle.charges:
        await store.charge(tenant, f"c-{uuid.uuid4().hex[:10]}", channel="sms",
                           micro=credits * C, usage={"sms_sent_segments": 1}, now_ms=now_ms)
        await _check(store, tenant)
        await asyncio.sleep(0)


async def _buy(pool: asyncpg.Pool, store: CreditStore, tenant: str, cycle: Cycle) -> None:
    for credits in cycle.topups:
        await ledger_topup(pool, store, tenant, credits)
        await _check(store, tenant)
        await asyncio.sleep(0)


async def _scenario(redis_url: str, server_url: str, template: str, plan: list[Cycle],
                    included: int, rollover: bool) -> None:
    # A database of this example's own: the cycle job visits every subscribed tenant.
    name = f"vgw_t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        await _run(redis_url, f"{server_url.rpartition('/')[0]}/{name}", plan, included,
                   rollover)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _run(redis_url: str, database_url: str, plan: list[Cycle], included: int,
               rollover: bool) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=6)
    assert pool is not None
    prefix = f"vgwtest:{uuid.uuid4().hex[:12]}:"
    try:
        store = CreditStore(redis, prefix)
        sink = Sink(redis, pool, prefix)
        tenant = await insert_tenant(pool)
        await add_plan(pool, at("2027-01-01 00:00"), included_credits=included,
                       credit_rollover=rollover)
        await subscribe(pool, store, tenant_id=uuid.UUID(tenant), plan_id="growth",
                        now=at("2027-01-01 00:00"))
        period = Period(2027, 1)
        for n, cycle in enumerate(plan):
            now_ms = int(period.start.timestamp() * 1000) + 3_600_000
            session = f"s{n}"
            if cycle.held:  # held across the cycle's end: not available, never expires
                await store.reserve(tenant, session, channel="phone", requested=cycle.held * C,
                                    min_grant=1, validity_ms=10**10, overdraft_limit=0,
                                    now_ms=now_ms)
            await asyncio.gather(_spend(store, tenant, cycle, now_ms), _buy(pool, store,
                                                                            tenant, cycle))
            await drain(sink)
            before = await _check(store, tenant)
            period = period.next()
            reports = await asyncio.gather(*(run_cycle(pool, store, now=period.start)
                                             for _ in range(2)))
            after = await _check(store, tenant)
            expired_now = after[5] - before[5]
            assert sum(len(r.expiries) for r in reports) == (0 if rollover else 1)
            if rollover:
                assert expired_now == 0
            assert expired_now <= included * C
            # What expired came out of what was available; held credits stayed held.
            assert after[3] == before[3]
            assert after[2] == before[2] - expired_now + included * C
            await store.terminate(tenant, session, charged_total=0, usage=None,
                                  now_ms=int(period.start.timestamp() * 1000))
            await _check(store, tenant)
        await drain(sink)
        assert await reconcile_tenant(pool, store, uuid.UUID(tenant)) == []
        live = await store.balance(tenant)
        keys = tenant_keys(prefix, tenant)
        await redis.delete(keys.account, keys.plan_credits, keys.topups)  # Redis lost it
        await reconcile(pool, store, repair=True)
        assert await reconcile_tenant(pool, store, uuid.UUID(tenant)) == []
        assert await store.balance(tenant) == live
        # Rebuilt, the job finds every grant and expiry already applied: nothing twice.
        await run_cycle(pool, store, now=period.start)
        assert await store.balance(tenant) == live
    finally:
        keys_left = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        if keys_left:
            await redis.delete(*keys_left)
        await pool.close()
        await redis.aclose()


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=cycles, included=st.integers(0, 200), rollover=st.booleans())
def test_plan_credits_are_conserved_under_concurrency(
    redis_url: str, servers: TestServers, template_database: str, plan: list[Cycle],
    included: int, rollover: bool
) -> None:
    asyncio.run(_scenario(redis_url, servers.postgres_url, template_database, plan,
                          included, rollover))
