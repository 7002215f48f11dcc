"""WhatsApp's 24-hour customer-service window per (tenant, customer), in Redis.

One sorted set per tenant (in its hash slot): member = the customer's WhatsApp id, score
= when the customer last wrote (Meta's timestamp, in ms). `ZADD GT` only ever moves a
window forward, so a redelivered old message cannot shorten it, and concurrent writers
need no lock. Entries older than the window are pruned on every write.

Losing Redis closes every window: replies are then refused by our own check, never sent
outside the window and never billed, until the customer writes again. That is the safe
side of the trade.
"""

from __future__ import annotations

import redis.asyncio as aioredis

WINDOW_MS = 24 * 3600 * 1000


class CustomerWindows:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def key(self, tenant: str) -> str:
        return f"{self.prefix}{{t:{tenant}}}:wa:windows"

    async def open(self, tenant: str, customer: str, wrote_ms: int, now_ms: int) -> bool:
        """Records that the customer wrote at `wrote_ms`; says whether the window is open
        now (the customer's latest message, this one or a later one, is under 24 h old)."""
        key = self.key(tenant)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {customer: wrote_ms}, gt=True)
            pipe.zremrangebyscore(key, "-inf", now_ms - WINDOW_MS)
            pipe.pexpire(key, WINDOW_MS * 2)
            pipe.zscore(key, customer)
            *_, latest = await pipe.execute()
        return latest is not None and now_ms - int(latest) < WINDOW_MS

    async def opened_at(self, tenant: str, customer: str) -> int | None:
        score = await self.redis.zscore(self.key(tenant), customer)
        return None if score is None else int(score)

    async def is_open(self, tenant: str, customer: str, now_ms: int) -> bool:
        wrote = await self.opened_at(tenant, customer)
        return wrote is not None and now_ms - wrote < WINDOW_MS
