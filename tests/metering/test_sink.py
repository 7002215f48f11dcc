"""The outbox sink: every event lands once, whatever dies in between."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from gateway.cli_metering import drain
from gateway.embedded import EmbeddedPostgres
from metering.credit_store import CreditStore
from metering.keys import tenant_keys
from metering.migrate import migrate_url
from metering.outbox import EventRows
from metering.reconcile import reconcile
from metering.sink import GROUP, Entry, Sink
from tests.metering.ledger import insert_tenant, ledger_topup

C = 1_000_000


async def _usage(store: CreditStore, tenant: str, sessions: int) -> None:
    """Sessions with two debits and a settlement each, plus a one-shot charge each."""
    for n in range(sessions):
        sid = f"call-{n}"
        await store.reserve(tenant, sid, channel="phone", requested=10 * C, min_grant=1,
                            validity_ms=60_000, overdraft_limit=C, now_ms=1_000)
        await store.update(tenant, sid, charged_total=2 * C, usage={"call_seconds": 1_000},
                           target_held=10 * C, min_grant=1, validity_ms=60_000, now_ms=2_000)
        await store.terminate(tenant, sid, charged_total=3 * C,
                              usage={"call_seconds": 2_000, "voice_input_tokens": 10},
                              now_ms=3_000, details={"charges": {"call_seconds": 3 * C}})
        await store.charge(tenant, f"sms-{n}", channel="sms", micro=C // 2,
                           usage={"sms_sent_segments": 1}, now_ms=3_500)


async def _counts(pool: asyncpg.Pool) -> tuple[int, int, int]:
    return (await pool.fetchval("SELECT count(*) FROM ledger_entries"),
            await pool.fetchval("SELECT count(*) FROM sessions"),
            await pool.fetchval("SELECT count(*) FROM usage_events"))


async def test_events_land_once_and_reconcile_agrees(
    redis_client: aioredis.Redis, key_prefix: str, pg_pool: asyncpg.Pool
) -> None:
    store = CreditStore(redis_client, key_prefix)
    tenant = await insert_tenant(pg_pool)
    await ledger_topup(pg_pool, store, tenant, 1_000)
    await _usage(store, tenant, 5)
    sink = Sink(redis_client, pg_pool, key_prefix, batch_size=7)
    assert await drain(sink) == 5 * 4
    assert await _counts(pg_pool) == (15, 5, 15)
    assert await drain(sink) == 0
    billed = await pg_pool.fetchval("SELECT sum(micro_credits) FROM ledger_entries")
    assert billed == 5 * (3 * C + C // 2)
    record = await pg_pool.fetchrow("SELECT * FROM sessions WHERE session_id = 'call-0'")
    assert record["micro_credits"] == 3 * C
    assert record["status"] == "settled"
    per_meter = await pg_pool.fetch(
        "SELECT meter, units, micro_credits FROM usage_events WHERE session_id = 'call-0' "
        "ORDER BY meter")
    assert [tuple(r) for r in per_meter] == [("call_seconds", 2_000, 3 * C),
                                            ("voice_input_tokens", 10, 0)]
    assert await reconcile(pg_pool, store) == []
    assert await redis_client.xlen(tenant_keys(key_prefix, tenant).outbox) == 0


async def test_a_sink_killed_mid_batch_loses_nothing_and_doubles_nothing(
    redis_client: aioredis.Redis, key_prefix: str, pg_pool: asyncpg.Pool
) -> None:
    store = CreditStore(redis_client, key_prefix)
    tenant = await insert_tenant(pg_pool)
    await ledger_topup(pg_pool, store, tenant, 1_000)
    await _usage(store, tenant, 6)
    doomed = Sink(redis_client, pg_pool, key_prefix, consumer="doomed", batch_size=10)
    original = doomed._commit_and_ack
    calls = 0

    async def die_after_commit(batch: dict[bytes, list[Entry]], rows: EventRows) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return await original(batch, rows)
        await doomed._insert(rows)  # committed ...
        raise ConnectionError("killed before the acknowledgement")  # ... never acked

    doomed._commit_and_ack = die_after_commit  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await drain(doomed)
    stream = tenant_keys(key_prefix, tenant).outbox
    pending = await redis_client.xpending(stream, GROUP)
    # The second batch (written, not acknowledged) and the third (read while the second
    # committed, never written) are pending on the dead consumer.
    assert pending["pending"] == 14

    # A fresh consumer claims what the dead one left (idle long enough) and the rest.
    heir = Sink(redis_client, pg_pool, key_prefix, consumer="heir", claim_idle_ms=0)
    await drain(heir)
    assert heir.stats.claimed == 14
    assert await _counts(pg_pool) == (18, 6, 18)
    assert (await redis_client.xpending(stream, GROUP))["pending"] == 0
    assert await reconcile(pg_pool, store) == []


async def test_postgres_down_events_wait_then_land(
    redis_client: aioredis.Redis, key_prefix: str, tmp_path: Path
) -> None:
    await asyncio.to_thread(tmp_path.chmod, 0o755)  # the embedded server user reads it
    server = EmbeddedPostgres(tmp_path / "pg")
    url = await asyncio.to_thread(server.start)
    try:
        await migrate_url(url)
        pool = await asyncpg.create_pool(url, min_size=0, max_size=2, timeout=2)
        assert pool is not None
        store = CreditStore(redis_client, key_prefix)
        tenant = await insert_tenant(pool)
        await ledger_topup(pool, store, tenant, 100)
        await asyncio.to_thread(server.stop)

        await _usage(store, tenant, 3)  # generated while PostgreSQL is down
        sink = Sink(redis_client, pool, key_prefix, block_ms=50)
        task = asyncio.create_task(sink.run())
        for _ in range(100):
            if sink.stats.failures >= 2:
                break
            await asyncio.sleep(0.05)
        assert sink.stats.failures >= 2
        assert sink.stats.events == 0

        await asyncio.to_thread(server.start)
        for _ in range(200):
            if sink.stats.events >= 12:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await _counts(pool) == (9, 3, 9)
        assert await reconcile(pool, store) == []
        await pool.close()
    finally:
        await asyncio.to_thread(server.stop)


async def test_unreadable_entries_are_kept_aside_not_dropped(
    redis_client: aioredis.Redis, key_prefix: str, pg_pool: asyncpg.Pool
) -> None:
    store = CreditStore(redis_client, key_prefix)
    tenant = await insert_tenant(pg_pool)
    await ledger_topup(pg_pool, store, tenant, 10)
    stream = tenant_keys(key_prefix, tenant).outbox
    await redis_client.xadd(stream, {"type": "debit", "tenant": tenant, "channel": "phone"})
    await store.charge(tenant, "ok-1", channel="sms", micro=C, usage={}, now_ms=1)
    await drain(Sink(redis_client, pg_pool, key_prefix))
    assert await pg_pool.fetchval("SELECT count(*) FROM ledger_entries") == 1
    reject = await pg_pool.fetchval("SELECT fields->>'_error' FROM outbox_rejects")
    assert reject == "missing field 'id'"


async def test_reconcile_finds_and_repairs_a_lost_redis(
    redis_client: aioredis.Redis, key_prefix: str, pg_pool: asyncpg.Pool
) -> None:
    store = CreditStore(redis_client, key_prefix)
    tenant = await insert_tenant(pg_pool)
    await ledger_topup(pg_pool, store, tenant, 50)
    await _usage(store, tenant, 2)
    await drain(Sink(redis_client, pg_pool, key_prefix))
    keys = tenant_keys(key_prefix, tenant)
    await redis_client.delete(keys.account, keys.topups)  # Redis lost its data
    differences = await reconcile(pg_pool, store, repair=True)
    assert {d.field for d in differences} == {"topped_up", "billed", "available"}
    assert await reconcile(pg_pool, store) == []
    balance = await store.balance(tenant)
    assert balance.available == 50 * C - 2 * (3 * C + C // 2)
    assert await store.apply_topup(tenant, (await pg_pool.fetchval(
        "SELECT id::text FROM topups")), 50 * C) is False
