"""Which failures are a store outage (503 store_unavailable) and which are bugs (500)."""

from __future__ import annotations

from collections.abc import Awaitable

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from api.outages import is_store_outage
from gateway.embedded import free_port


async def _raised_by(coro: Awaitable[object]) -> Exception:
    try:
        await coro
    except Exception as exc:
        return exc
    raise AssertionError("nothing was raised")


async def test_a_refused_store_port_is_an_outage() -> None:
    port = free_port()
    pg = await _raised_by(asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/x",
                                          timeout=2))
    assert isinstance(pg, OSError) and is_store_outage(pg)
    client = aioredis.Redis(port=port, socket_connect_timeout=1)
    try:
        redis = await _raised_by(client.ping())
    finally:
        await client.aclose()
    assert isinstance(redis, RedisConnectionError) and is_store_outage(redis)


@pytest.mark.parametrize("exc", [
    asyncpg.InterfaceError("connection is closed"),
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    asyncpg.exceptions.TooManyConnectionsError("too many clients"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
    asyncpg.exceptions.AdminShutdownError("terminating connection"),
    asyncpg.exceptions.InternalClientError(
        "cannot switch to state 12; another operation (2) is in progress"),
])
def test_postgres_outages(exc: BaseException) -> None:
    assert is_store_outage(exc)


@pytest.mark.parametrize("exc", [
    asyncpg.DataError("date value out of range"),
    asyncpg.exceptions.DataError("invalid input"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    asyncpg.exceptions.InternalClientError(
        "cannot switch to state 12; another operation (15) is in progress"),
    asyncpg.exceptions.UniqueViolationError("duplicate key"),
    asyncpg.exceptions.LockNotAvailableError("could not obtain lock"),
    ResponseError("WRONGTYPE"),
    TimeoutError("a vendor was slow"),
    ConnectionRefusedError("a vendor refused"),
    ValueError("a bug"),
])
def test_bugs_and_vendor_failures_are_not_store_outages(exc: BaseException) -> None:
    assert not is_store_outage(exc)
