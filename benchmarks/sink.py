"""Ledger rows per second from the outbox streams into PostgreSQL.

The streams are filled first (settled sessions and one-shot charges, as the gateway
writes them); then one sink drains them and we count the rows it committed.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from metering.credit_store import CreditStore
from metering.sink import Sink

C = 1_000_000


@dataclass(frozen=True)
class SinkResult:
    events: int
    rows: int
    wall_s: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall_s


async def _fill(store: CreditStore, tenants: list[str], sessions: int) -> None:
    calls = []
    for n in range(sessions):
        tenant = tenants[n % len(tenants)]
        sid = f"bench-{uuid.uuid4().hex}"
        calls += [store.reserve_call(tenant, sid, channel="phone", requested=600 * C,
                                     min_grant=C, validity_ms=120_000, overdraft_limit=0,
                                     now_ms=1_000),
                  store.update_call(tenant, sid, charged_total=40 * C,
                                    usage={"call_seconds": 20_000}, target_held=600 * C,
                                    min_grant=C, validity_ms=120_000, now_ms=2_000),
                  store.terminate_call(tenant, sid, charged_total=95 * C,
                                       usage={"call_seconds": 60_000, "voice_input_tokens": 700,
                                              "voice_output_tokens": 500, "tts_characters": 900},
                                       now_ms=61_000)]
        if len(calls) >= 3000:
            await store.run_batch(calls)
            calls = []
    if calls:
        await store.run_batch(calls)


async def run(redis_url: str, database_url: str, *, sessions: int = 20_000,
              tenants: int = 50, batch_size: int = 2000) -> SinkResult:
    redis = aioredis.Redis.from_url(redis_url)
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=4)
    assert pool is not None
    prefix = f"vgwbench:{uuid.uuid4().hex[:8]}:"
    store = CreditStore(redis, prefix)
    ids = [uuid.uuid4() for _ in range(tenants)]
    try:
        await pool.executemany("INSERT INTO tenants (id, name, api_key_hash) VALUES ($1, 'b', $2)",
                               [(t, t.bytes) for t in ids])
        for t in ids:
            await store.apply_topup(str(t), "seed", 10**9 * C)
        await _fill(store, [str(t) for t in ids], sessions)
        before = await _rows(pool)
        sink = Sink(redis, pool, prefix, batch_size=batch_size)
        started = time.perf_counter()
        await sink.drain()
        wall = time.perf_counter() - started
        rows = await _rows(pool) - before
        return SinkResult(sink.stats.events, rows, wall)
    finally:
        async for key in redis.scan_iter(match=f"{prefix}*", count=5000):
            await redis.delete(key)
        await redis.aclose()
        await pool.close()


async def _rows(pool: asyncpg.Pool) -> int:
    total = 0
    for table in ("ledger_entries", "sessions", "usage_events"):
        total += await pool.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed names
    return int(total)
