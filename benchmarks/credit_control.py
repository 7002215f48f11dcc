"""Credit-control operations per second per gateway core.

Sessions of many tenants go through INITIAL, several UPDATEs and TERMINATE, batched
`batch` calls per round trip (a gateway batches the reports of its live calls). The
figure per core divides operations by the CPU seconds this process spent: the gateway's
cost, not Redis's (Redis runs on its own core).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import redis.asyncio as aioredis

from metering.credit_store import CreditStore, ScriptCall

C = 1_000_000


@dataclass(frozen=True)
class CreditControlResult:
    operations: int
    wall_s: float
    cpu_s: float

    @property
    def ops_per_s(self) -> float:
        return self.operations / self.wall_s

    @property
    def ops_per_cpu_s(self) -> float:
        return self.operations / self.cpu_s


async def run(redis_url: str, *, sessions: int = 20_000, updates: int = 4, batch: int = 500,
              tenants: int = 100) -> CreditControlResult:
    redis = aioredis.Redis.from_url(redis_url)
    prefix = f"vgwbench:{uuid.uuid4().hex[:8]}:"
    store = CreditStore(redis, prefix)
    try:
        for t in range(tenants):
            await store.apply_topup(f"t{t}", "seed", 10**9 * C)
        ids = [(f"t{n % tenants}", f"s{n}") for n in range(sessions)]
        phases: list[list[ScriptCall]] = [[
            store.reserve_call(t, s, channel="phone", requested=600 * C, min_grant=C,
                               validity_ms=120_000, overdraft_limit=200 * C, now_ms=1)
            for t, s in ids]]
        for step in range(1, updates + 1):
            phases.append([store.update_call(t, s, charged_total=step * 50 * C,
                                             usage={"call_seconds": step * 20_000},
                                             target_held=600 * C, min_grant=C,
                                             validity_ms=120_000, now_ms=1 + step)
                           for t, s in ids])
        phases.append([store.terminate_call(t, s, charged_total=(updates + 1) * 50 * C,
                                            usage=None, now_ms=100) for t, s in ids])
        await store.run_batch(phases[0][:1])  # load the scripts outside the timing
        operations = sum(len(p) for p in phases)
        wall, cpu = time.perf_counter(), time.process_time()
        for phase in phases:
            for start in range(0, len(phase), batch):
                await store.run_batch(phase[start:start + batch])
        result = CreditControlResult(operations, time.perf_counter() - wall,
                                     time.process_time() - cpu)
    finally:
        async for key in redis.scan_iter(match=f"{prefix}*", count=5000):
            await redis.delete(key)
        await redis.aclose()
    return result
