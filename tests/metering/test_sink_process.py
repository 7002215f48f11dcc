"""`voicegw sink` as a real process, killed with SIGKILL mid-drain and started again:
no event lost, none written twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import asyncpg
import redis.asyncio as aioredis

from metering.credit_store import CreditStore, ScriptCall
from metering.reconcile import reconcile
from tests.metering.ledger import insert_tenant, ledger_topup

C = 1_000_000
SESSIONS = 4000  # 4 events and 7 rows each: 2 debits, the record, 4 meters


def _start_sink(redis_url: str, database_url: str, prefix: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEGW_")}
    env.update({"VOICEGW_REDIS_URL": redis_url, "VOICEGW_DATABASE_URL": database_url,
                "VOICEGW_REDIS_PREFIX": prefix})
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", "sink", "--consumer", "s1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _rows(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval(
        "SELECT (SELECT count(*) FROM ledger_entries) + (SELECT count(*) FROM sessions)"
        " + (SELECT count(*) FROM usage_events)"))


async def test_sigkill_mid_drain_then_restart(
    redis_client: aioredis.Redis, redis_url: str, database_url: str, key_prefix: str,
    pg_pool: asyncpg.Pool,
) -> None:
    tenant = uuid.UUID(await insert_tenant(pg_pool))
    store = CreditStore(redis_client, key_prefix)
    await ledger_topup(pg_pool, store, str(tenant), 10**6)
    calls: list[ScriptCall] = []
    for n in range(SESSIONS):
        sid = f"k{n}-{uuid.uuid4().hex[:6]}"
        calls += [
            store.reserve_call(str(tenant), sid, channel="phone", requested=10 * C,
                               min_grant=C, validity_ms=60_000, overdraft_limit=0, now_ms=1),
            store.update_call(str(tenant), sid, charged_total=C, usage={"call_seconds": 500},
                              target_held=10 * C, min_grant=C, validity_ms=60_000, now_ms=2),
            store.terminate_call(str(tenant), sid, charged_total=2 * C,
                                 usage={"call_seconds": 1_000, "voice_input_tokens": 9,
                                        "voice_output_tokens": 4, "tts_characters": 30},
                                 now_ms=3),
        ]
    for start in range(0, len(calls), 3000):
        await store.run_batch(calls[start:start + 3000])
    expected = SESSIONS * 7

    first = _start_sink(redis_url, database_url, key_prefix)
    try:
        for _ in range(3000):
            landed = await _rows(pg_pool)
            if landed > 0:
                break
            await asyncio.sleep(0.005)
        first.send_signal(signal.SIGKILL)
    finally:
        await asyncio.to_thread(first.wait, 30)
    at_kill = await _rows(pg_pool)
    assert 0 < at_kill < expected, "the sink must be killed part way through"

    second = _start_sink(redis_url, database_url, key_prefix)
    try:
        for _ in range(600):
            if await _rows(pg_pool) >= expected:
                break
            await asyncio.sleep(0.05)
    finally:
        second.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(second.wait, 30) == 0
    assert await _rows(pg_pool) == expected
    assert await pg_pool.fetchval("SELECT sum(micro_credits) FROM ledger_entries") == \
        SESSIONS * 2 * C
    assert await reconcile(pg_pool, store) == []
