"""What a messaging customer and the agent said before, per (tenant, channel, customer), in
Redis with a time to live, trimmed to a token budget.

The list holds one entry per exchange (the customer's message, the agent's tool calls and
their results, the reply), so trimming never separates a tool call from its result (the
LLM API refuses a tool message without the assistant message that asked for it). Entries
are only ever appended on the right and trimmed on the left (RPUSH, LTRIM): two gateway
processes answering the same customer at once cannot lose each other's entries, and no
lock is needed. The key carries the tenant's hash tag, like every tenant key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from agents.tokens import MESSAGE_OVERHEAD, count_tokens

DEFAULT_TTL_S = 7 * 24 * 3600  # a customer who writes back within a week is remembered
DEFAULT_MAX_TOKENS = 3000  # of history in a prompt; the oldest exchanges go first
MAX_ENTRIES = 100

Message = dict[str, Any]


def _tokens(messages: Sequence[Message]) -> int:
    total = 0
    for message in messages:
        total += MESSAGE_OVERHEAD + count_tokens(str(message.get("content") or ""))
        for call in message.get("tool_calls") or []:
            total += count_tokens(str(call.get("function", {}).get("arguments", "")))
    return total


def _keep(token_counts: list[int], budget: int) -> int:
    """How many of the newest entries fit the budget (always at least the newest)."""
    kept, used = 0, 0
    for tokens in reversed(token_counts):
        if kept and used + tokens > budget:
            break
        kept, used = kept + 1, used + tokens
    return kept


class ConversationHistory:
    def __init__(self, redis: aioredis.Redis, prefix: str, *, ttl_s: int = DEFAULT_TTL_S,
                 max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.max_tokens = max_tokens

    def key(self, tenant: str, channel: str, customer: str) -> str:
        return f"{self.prefix}{{t:{tenant}}}:hist:{channel}:{customer}"

    async def load(self, tenant: str, channel: str, customer: str) -> list[Message]:
        """The remembered messages, oldest first, ready to go into a prompt."""
        raw = await self.redis.lrange(self.key(tenant, channel, customer), 0, -1)
        entries = [orjson.loads(item) for item in raw]
        kept = _keep([int(e.get("tokens", 0)) for e in entries], self.max_tokens)
        return [m for entry in entries[len(entries) - kept:] for m in entry["messages"]]

    async def append(self, tenant: str, channel: str, customer: str,
                     messages: Sequence[Message]) -> None:
        """Adds one exchange, renews the time to live, and trims the oldest over budget."""
        if not messages:
            return
        key = self.key(tenant, channel, customer)
        entry = orjson.dumps({"tokens": _tokens(messages), "messages": list(messages)})
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.rpush(key, entry)
            pipe.expire(key, self.ttl_s)
            pipe.lrange(key, 0, -1)
            _, _, raw = await pipe.execute()
        counts = [int(orjson.loads(item).get("tokens", 0)) for item in raw]
        drop = len(counts) - min(_keep(counts, self.max_tokens), MAX_ENTRIES)
        if drop > 0:
            await self.redis.ltrim(key, drop, -1)  # entries appended meanwhile stay

    async def clear(self, tenant: str, channel: str, customer: str) -> None:
        await self.redis.delete(self.key(tenant, channel, customer))
