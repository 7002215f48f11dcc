"""Number fees: pro rata by day, each month charged once however often the job runs."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import redis.asyncio as aioredis

from gateway.cli_metering import drain
from metering.cards import all_cards
from metering.credit_store import CreditStore
from metering.number_fees import charge_number_fees
from metering.ratecard import MICRO, default_rate_card
from metering.sink import Sink
from tests.metering.ledger import insert_tenant


async def test_fees_prorated_and_idempotent(
    redis_client: aioredis.Redis, key_prefix: str, pg_pool: asyncpg.Pool
) -> None:
    tenant = uuid.UUID(await insert_tenant(pg_pool))
    await pg_pool.execute(
        """INSERT INTO phone_numbers (phone_number, tenant_id, kind, held_from) VALUES
           ('+15550000001', $1, 'local', '2026-11-16T09:00:00Z'),
           ('+15550000002', $1, 'mobile', '2026-10-01T00:00:00Z')""", tenant)
    store = CreditStore(redis_client, key_prefix)
    await store.apply_topup(str(tenant), "t", 200_000 * MICRO)
    card = default_rate_card()
    results = await charge_number_fees(pg_pool, store, card, dt.date(2026, 11, 1), 1)
    by_number = {r.phone_number: (r.micro, r.status) for r in results}
    assert by_number == {"+15550000001": (5_000 * MICRO, "charged"),  # 15 of 30 days
                         "+15550000002": (60_000 * MICRO, "charged")}
    again = await charge_number_fees(pg_pool, store, card, dt.date(2026, 11, 20), 2)
    assert {r.status for r in again} == {"replay"}
    assert (await store.balance(str(tenant))).billed == 65_000 * MICRO
    await drain(Sink(redis_client, pg_pool, key_prefix))
    kinds = await pg_pool.fetch("SELECT kind, count(*) FROM ledger_entries GROUP BY kind")
    assert [tuple(r) for r in kinds] == [("number_fee", 2)]
    december = await charge_number_fees(pg_pool, store, card, dt.date(2026, 12, 1), 3)
    assert [r.status for r in december] == ["charged", "charged"]
    january = await charge_number_fees(pg_pool, store, card, dt.date(2027, 1, 1), 4)
    # 65,000 left: the local number's 10,000 passes, the mobile one's 60,000 does not.
    assert [r.status for r in january] == ["charged", "insufficient"]
    assert (await store.balance(str(tenant))).available == 55_000 * MICRO


async def test_a_card_that_no_longer_loads_stops_only_its_tenant(
    redis_client: aioredis.Redis, key_prefix: str, pg_pool: asyncpg.Pool
) -> None:
    """A card stored before a bound existed (a price of 1e30) is logged and that tenant's
    fee waits; every other tenant is charged, and nobody is billed the default price."""
    good, bad = [uuid.UUID(await insert_tenant(pg_pool)) for _ in range(2)]
    await pg_pool.execute(
        """UPDATE tenants SET rate_card = $2::jsonb WHERE id = $1""", bad,
        '{"name": "old", "inherit": "default", '
        '"meters": {"number_local_months": {"price": "1e30", "block": 1}}}')
    await pg_pool.execute(
        """INSERT INTO phone_numbers (phone_number, tenant_id, kind, held_from) VALUES
           ('+15550000011', $1, 'local', '2026-10-01T00:00:00Z'),
           ('+15550000012', $2, 'local', '2026-10-01T00:00:00Z')""", good, bad)
    store = CreditStore(redis_client, key_prefix)
    for tenant in (good, bad):
        await store.apply_topup(str(tenant), "t", 200_000 * MICRO)
    results = await charge_number_fees(pg_pool, store, await all_cards(pg_pool),
                                       dt.date(2026, 11, 1), 1)
    assert {r.phone_number: r.status for r in results} == {
        "+15550000011": "charged", "+15550000012": "card_invalid"}
    assert (await store.balance(str(bad))).billed == 0
    assert (await store.balance(str(good))).billed == 10_000 * MICRO
