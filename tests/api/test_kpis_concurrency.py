"""The KPI triggers under concurrency: conversations of a few customers started, settled and
rated at once on eight connections, in no particular order (a later conversation may settle
before an earlier one starts). Whatever the interleaving, the rollups the triggers kept
equal the set-based rebuild from the final rows: customer links, first-contact resolution
and ratings included."""

from __future__ import annotations

import asyncio
import datetime as dt
import random

import asyncpg

from tests.api.kpi_fixtures import Conv, rate, settle, start, utc
from tests.api.test_kpis_month import _rollups
from tests.metering.ledger import insert_tenant


async def _life(pool: asyncpg.Pool, tenant: str, c: Conv, pause: float) -> None:
    await asyncio.sleep(pause)
    await start(pool, tenant, c)
    await asyncio.sleep(pause / 2)
    if c.settle:
        await settle(pool, c)
        if c.rating_after is not None:
            await rate(pool, c, c.rating_after)


async def test_concurrent_settlements_keep_what_the_rebuild_finds(
        pg_pool: asyncpg.Pool) -> None:
    tenant = await insert_tenant(pg_pool)
    await pg_pool.execute("UPDATE tenants SET timezone = 'America/New_York' WHERE id = $1::uuid",
                          tenant)
    chooser = random.Random(12)
    conversations = []
    base = utc("2026-11-01 12:00")
    for _ in range(120):
        resolved = chooser.random() < 0.5
        conversations.append(Conv(
            chooser.choice(["phone", "whatsapp", "sms"]), chooser.choice("ABCD"),
            base + dt.timedelta(hours=chooser.randrange(0, 24 * 20)), chooser.randrange(5, 900),
            None if chooser.random() < 0.1 else chooser.randrange(100, 30_000),
            outcomes=["order_placed"] if chooser.random() < 0.3 else [],
            handoff=chooser.random() < 0.1, resolved=resolved,
            micro_credits=chooser.randrange(0, 10**6),
            rating=chooser.choice([None, None, 3]), settle=chooser.random() < 0.9,
            rating_after=chooser.choice([None, 4, 5])))
    await asyncio.gather(*(_life(pg_pool, tenant, c, chooser.random() / 50)
                           for c in conversations))
    kept = await _rollups(pg_pool)
    fcr_kept = await pg_pool.fetchval("SELECT count(*) FROM conversations WHERE kpi_fcr")
    await pg_pool.execute("SELECT kpi_rebuild($1::uuid)", tenant)
    assert await _rollups(pg_pool) == kept
    assert await pg_pool.fetchval("SELECT count(*) FROM conversations WHERE kpi_fcr") \
        == fcr_kept
    settled = sum(c.settle for c in conversations)
    assert await pg_pool.fetchval("SELECT sum(conversations) FROM kpi_days") == settled
