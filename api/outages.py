"""Telling a store outage from a bug: Redis or PostgreSQL unreachable, restarting or full.

An outage is answered 503 `store_unavailable` with `Retry-After` (webhook senders and
clients retry a 503), never 500. The problem middleware asks `is_store_outage` once for
every request; handlers raise nothing special.
"""

from __future__ import annotations

import re
import traceback

import asyncpg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.problems import Problem

RETRY_AFTER_S = 5

# PostgreSQL classes that mean "the server cannot serve you now", not "your query is
# wrong": 08 connection exceptions, 53 insufficient resources (too many connections,
# out of memory, disk full), 57 operator intervention (shutdown, restart, cannot
# connect now, statement timeout).
_PG_OUTAGES = (
    asyncpg.PostgresConnectionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.OperatorInterventionError,
)
# asyncpg says these with an InterfaceError (the same class as a misuse of its API), so
# the message tells them apart.
_PG_CLOSED = ("connection is closed", "pool is closing", "pool is closed")
# A pooled connection the server terminated while it sat idle (a restart, a failover,
# pg_terminate_backend) is left by asyncpg consuming that unprompted error (protocol
# state 2), failed (1) or terminating (4); the next query on it fails this way. Another
# state number would be two operations on one connection at once: a bug, not an outage.
_PG_WEDGED = re.compile(r"another operation \([124]\) is in progress")
_STORE_MODULES = ("asyncpg", "redis")
_OUTAGES = (RedisConnectionError, RedisTimeoutError, *_PG_OUTAGES)


def _raised_inside_store_client(exc: BaseException) -> bool:
    """A plain OSError or TimeoutError is an outage only when a store client raised it
    (connect refused, pool acquire timed out); a vendor's HTTP error is not a store's."""
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        module = str(frame.f_globals.get("__name__", ""))
        if module.split(".", 1)[0] in _STORE_MODULES:
            return True
    return False


def is_store_outage(exc: BaseException) -> bool:
    if isinstance(exc, _OUTAGES):
        return True
    if isinstance(exc, asyncpg.ObjectNotInPrerequisiteStateError):
        # 55000 from a database closed to connections (ALLOW_CONNECTIONS false)
        return "not currently accepting connections" in str(exc)
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        return _PG_WEDGED.search(str(exc)) is not None
    if isinstance(exc, asyncpg.InterfaceError):
        return any(text in str(exc) for text in _PG_CLOSED)
    if isinstance(exc, OSError):  # TimeoutError and ConnectionRefusedError are OSErrors
        return _raised_inside_store_client(exc)
    return False


def store_unavailable(detail: str = "a data store is unreachable; retry later") -> Problem:
    return Problem(503, "store_unavailable", detail,
                   headers={"Retry-After": str(RETRY_AFTER_S)})
