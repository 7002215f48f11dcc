"""The delivery worker is woken by an emit's NOTIFY at the commit; when its LISTEN
connection is killed it listens again at once, and its pool still closes cleanly."""

from __future__ import annotations

import asyncio

import asyncpg

from metering.notify.delivery import DeliveryWorker
from metering.notify.outbox import emit
from tests.metering.notify_env import Receiver, tenant_with_endpoint

SLOW_POLL_S = 30.0  # far longer than the test: only the NOTIFY can wake the worker


async def _listener_pid(pool: asyncpg.Pool) -> int:
    for _ in range(200):
        pid = await pool.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND query ILIKE 'LISTEN%'")
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.05)
    raise AssertionError("the worker never listened")


async def _delivered(receiver: Receiver, count: int) -> None:
    for _ in range(500):
        if len(receiver.received) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{len(receiver.received)} of {count} delivered")


async def _relistened(pool: asyncpg.Pool, old_pid: int) -> None:
    for _ in range(100):
        if await _listener_pid(pool) != old_pid:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the worker did not listen again")


async def test_notify_wakes_the_worker_and_a_killed_listener_is_replaced_at_once(
        database_url: str, receiver: Receiver) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=0, max_size=3)
    assert pool is not None
    worker = DeliveryWorker(pool, allow_private=True, poll_s=SLOW_POLL_S)
    running = asyncio.create_task(worker.run())
    try:
        tenant, _ = await tenant_with_endpoint(pool, receiver.url, ["success.created"])
        for round_ in range(4):  # more kills than the pool has slots
            pid = await _listener_pid(pool)
            async with pool.acquire() as conn, conn.transaction():
                await emit(conn, tenant, "success.created", {"n": round_}, f"cause-{round_}")
            await _delivered(receiver, round_ + 1)  # woken at the commit, not by the poll
            await pool.execute("SELECT pg_terminate_backend($1)", pid)
            await _relistened(pool, pid)
        async with asyncio.timeout(5), pool.acquire() as conn:  # slots are still free
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        async with asyncio.timeout(10):
            await pool.close()  # nothing left acquired
