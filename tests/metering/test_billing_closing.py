"""Closing periods with many gateways at once: one invoice per tenant and cycle, numbers
without gaps, a closer killed half-way finished by the next run; concurrent plan
changes of one tenant serialize."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis

from metering.billing.closing import close_period
from metering.billing.cycle import run_cycle
from metering.billing.subscriptions import subscribe, tenant_plan
from metering.credit_store import CreditStore
from metering.notify.endpoints import create_endpoint
from tests.metering.billing_helpers import add_plan, at
from tests.metering.ledger import insert_tenant

TENANTS = 12


@pytest.fixture
def store(redis_client: aioredis.Redis, key_prefix: str) -> CreditStore:
    return CreditStore(redis_client, key_prefix)


async def _subscribed(pool: asyncpg.Pool, store: CreditStore, n: int) -> list[uuid.UUID]:
    await add_plan(pool, at("2027-01-01 00:00"))
    tenants = [uuid.UUID(await insert_tenant(pool)) for _ in range(n)]
    for tenant in tenants:
        await subscribe(pool, store, tenant_id=tenant, plan_id="growth",
                        now=at("2027-01-04 00:00"))
    return tenants


async def _numbers(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT number FROM invoices WHERE number IS NOT NULL "
                            "ORDER BY number")
    return [row["number"] for row in rows]


async def test_racing_closers_make_one_invoice_each_and_gapless_numbers(
        pg_pool: asyncpg.Pool, store: CreditStore) -> None:
    tenants = await _subscribed(pg_pool, store, TENANTS)
    now = at("2027-02-01 00:00")
    closers = asyncio.gather(*(close_period(pg_pool, period="2027-01", now=now)
                               for _ in range(3)))
    jobs = asyncio.gather(*(run_cycle(pg_pool, store, now=now) for _ in range(2)))
    closed, reports = await asyncio.gather(closers, jobs)
    finalized = [f for result in closed for f in result.finalized]
    finalized += [f for report in reports for f in report.finalized]
    assert len(finalized) == TENANTS  # each invoice finalized by exactly one closer
    assert await _numbers(pg_pool) == [f"VGW-2027-{n:06d}" for n in range(1, TENANTS + 1)]
    rows = await pg_pool.fetch("SELECT tenant_id, count(*) AS n FROM invoices "
                               "WHERE period = '2027-01-01' GROUP BY tenant_id")
    assert sorted(r["tenant_id"] for r in rows) == sorted(tenants)
    assert {r["n"] for r in rows} == {1}
    grants = await pg_pool.fetchval("SELECT count(*) FROM plan_credits WHERE kind = 'grant' "
                                    "AND period = '2027-02-01'")
    assert grants == TENANTS  # February's credits once per tenant, racing or not
    again = await close_period(pg_pool, period="2027-01", now=now)
    assert again.finalized == []


async def test_a_closer_killed_half_way_is_finished_by_the_next(
        pg_pool: asyncpg.Pool, store: CreditStore) -> None:
    await _subscribed(pg_pool, store, TENANTS)
    now = at("2027-02-01 00:00")
    closer = asyncio.create_task(close_period(pg_pool, period="2027-01", now=now))
    # Progress shows only in the database: poll it (ASYNC110 wants an Event we cannot have).
    while not await pg_pool.fetchval(  # noqa: ASYNC110
            "SELECT count(*) FROM invoices WHERE number IS NOT NULL"):
        await asyncio.sleep(0.001)
    closer.cancel()  # mid-run, possibly inside a finalizing transaction
    with pytest.raises(asyncio.CancelledError):
        await closer
    done_before = len(await _numbers(pg_pool))
    assert done_before < TENANTS
    rest = await close_period(pg_pool, period="2027-01", now=now)
    assert len(rest.finalized) == TENANTS - done_before
    assert await _numbers(pg_pool) == [f"VGW-2027-{n:06d}" for n in range(1, TENANTS + 1)]


async def test_concurrent_plan_changes_leave_one_pending_change(
        pg_pool: asyncpg.Pool, store: CreditStore) -> None:
    tenant = (await _subscribed(pg_pool, store, 1))[0]
    for plan in ("pro", "basic"):
        await add_plan(pg_pool, at("2027-01-01 00:00"), id=plan, name=plan)
    now = at("2027-01-20 00:00")
    await asyncio.gather(*(subscribe(pg_pool, store, tenant_id=tenant, plan_id=plan, now=now)
                           for plan in ("pro", "basic", "pro", "basic", "growth") * 4))
    plans = await tenant_plan(pg_pool, tenant, now)
    assert plans.current is not None and plans.current.plan.id == "growth"
    assert plans.pending is None or plans.pending.plan.id in ("pro", "basic")
    # A first subscription racing itself starts once: one setup fee, one grant.
    fresh = uuid.UUID(await insert_tenant(pg_pool))
    started = await asyncio.gather(*(subscribe(pg_pool, store, tenant_id=fresh,
                                               plan_id="pro", now=now) for _ in range(5)))
    assert sum(s.change.value == "started" for s in started) == 1
    assert await pg_pool.fetchval("SELECT count(*) FROM invoices WHERE tenant_id = $1",
                                  fresh) == 1
    assert (await store.balance(str(fresh))).granted == 150_000 * 1_000_000


async def test_a_finalized_invoice_is_told_to_the_tenants_webhooks_once(
        pg_pool: asyncpg.Pool, store: CreditStore) -> None:
    (tenant,) = await _subscribed(pg_pool, store, 1)
    await create_endpoint(pg_pool, tenant, "http://127.0.0.1:9/hooks", ["invoice.finalized"],
                          allow_private=True)
    now = at("2027-02-01 00:00")
    await asyncio.gather(*(close_period(pg_pool, period="2027-01", now=now) for _ in range(2)))
    rows = await pg_pool.fetch("SELECT event_type, body FROM webhook_messages "
                               "WHERE tenant_id = $1", tenant)
    assert [r["event_type"] for r in rows] == ["invoice.finalized"]
    data = orjson.loads(rows[0]["body"])["data"]
    invoice = await pg_pool.fetchrow("SELECT id, number, total FROM invoices "
                                     "WHERE tenant_id = $1", tenant)
    assert data["id"] == str(invoice["id"]) and data["number"] == invoice["number"]
    assert data["period"] == "2027-01" and data["currency"] == "TRY"
    assert data["total"] != "" and data["successes"] == 0
