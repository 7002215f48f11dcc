"""The Redis client every part of the gateway and its CLI opens, configured in one place,
and the gateway's PostgreSQL connection class.

A Redis restart leaves every pooled connection stale ("Connection closed by server").
The client retries a command that failed on a connection error or a timeout, on a fresh
connection, with exponential backoff and jitter, and pings a pooled connection that sat
idle before using it again: a restarted Redis is reconnected without the caller seeing
it. A Redis that stays down fails after `REDIS_RETRIES` retries (a few hundred ms when
the port refuses), and the HTTP layer answers 503 `store_unavailable`.

Retrying is safe for what we send: reads, and Lua scripts that are idempotent on their
session, top-up or event id (a script that ran before its reply was lost answers
`replay` the second time).

PostgreSQL: asyncpg's pool sends a reset query (`pg_advisory_unlock_all(); CLOSE ALL;
UNLISTEN *; RESET ALL`) on every release: one more round trip for each pooled statement.
`PooledConnection` sends it only when a statement since the last reset could have left
session state behind (SET, RESET, LISTEN, DECLARE, set_config, a session advisory lock,
a listener added); an open transaction is rolled back and listeners dropped on every
release as before.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

REDIS_RETRIES = 3
REDIS_BACKOFF_BASE_S = 0.05
REDIS_BACKOFF_CAP_S = 0.5
REDIS_CONNECT_TIMEOUT_S = 2.0
REDIS_SOCKET_TIMEOUT_S = 5.0
REDIS_HEALTH_CHECK_S = 10


def redis_retry() -> Retry:
    return Retry(ExponentialWithJitterBackoff(base=REDIS_BACKOFF_BASE_S, cap=REDIS_BACKOFF_CAP_S),
                 REDIS_RETRIES, supported_errors=(RedisConnectionError, RedisTimeoutError))


def redis_client(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        socket_timeout=REDIS_SOCKET_TIMEOUT_S,
        health_check_interval=REDIS_HEALTH_CHECK_S,
        retry=redis_retry(),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


# What may leave session state on a connection (what asyncpg's reset query undoes).
_SESSION_STATE = re.compile(
    r"(?:\A|;)(?:\s|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*"  # a statement's first word
    r"(?:SET|RESET|LISTEN|UNLISTEN|DECLARE|DISCARD|LOAD|PREPARE)\b"
    r"|set_config\s*\(|advisory_lock(?:_shared)?\s*\(|advisory_unlock",
    re.IGNORECASE | re.DOTALL)
_SEEN_MAX = 4096


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection that skips the reset round trip when nothing needs resetting."""

    _verdicts: dict[str, bool] = {}  # query text: may change session state (all instances)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session_changed = False

    def _saw(self, query: str) -> None:
        changes = self._verdicts.get(query)
        if changes is None:
            changes = _SESSION_STATE.search(query) is not None
            if len(self._verdicts) >= _SEEN_MAX:
                self._verdicts.clear()
            self._verdicts[query] = changes
        if changes:
            self._session_changed = True

    async def execute(self, query: str, *args: Any,
                      timeout: float | None = None) -> str:  # noqa: ASYNC109 - asyncpg's
        self._saw(query)
        result: str = await super().execute(query, *args, timeout=timeout)
        return result

    async def _get_statement(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self._saw(query)
        return await super()._get_statement(query, *args, **kwargs)

    async def add_listener(self, channel: str, callback: Any) -> None:
        self._session_changed = True
        await super().add_listener(channel, callback)

    async def reset(self, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if self._session_changed:
            await super().reset(timeout=timeout)
            self._session_changed = False
            return
        # What reset() always does: roll back a transaction left open, drop listeners.
        async with asyncio.timeout(timeout):
            await self._reset()
