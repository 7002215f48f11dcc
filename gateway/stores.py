"""The Redis client every part of the gateway and its CLI opens, configured in one place.

A Redis restart leaves every pooled connection stale ("Connection closed by server").
The client retries a command that failed on a connection error or a timeout, on a fresh
connection, with exponential backoff and jitter, and pings a pooled connection that sat
idle before using it again: a restarted Redis is reconnected without the caller seeing
it. A Redis that stays down fails after `REDIS_RETRIES` retries (a few hundred ms when
the port refuses), and the HTTP layer answers 503 `store_unavailable`.

Retrying is safe for what we send: reads, and Lua scripts that are idempotent on their
session, top-up or event id (a script that ran before its reply was lost answers
`replay` the second time).
"""

from __future__ import annotations

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
