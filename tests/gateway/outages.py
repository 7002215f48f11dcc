"""Stores we may break: a private Redis server of the test's own (never the shared one),
and a per-test PostgreSQL database closed to connections and emptied of them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from gateway.embedded import EmbeddedRedis


class PrivateRedis:
    """A Redis (Valkey) child process on a free loopback port, stopped and started again
    on the same port and with the same data (append-only file)."""

    def __init__(self, data_dir: Path) -> None:
        self.server = EmbeddedRedis(data_dir)

    @property
    def url(self) -> str:
        return self.server.url

    async def start(self) -> None:
        await asyncio.to_thread(self.server.start)

    async def stop(self) -> None:
        await asyncio.to_thread(self.server.stop)


@contextlib.asynccontextmanager
async def private_redis(data_dir: Path) -> AsyncIterator[PrivateRedis]:
    redis = PrivateRedis(data_dir)
    await redis.start()
    try:
        yield redis
    finally:
        await redis.stop()


async def close_database(admin_url: str, database_url: str) -> None:
    """New connections refused, open ones terminated: PostgreSQL down, for this database."""
    name = database_url.rpartition("/")[2]
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = $1 AND pid <> pg_backend_pid()", name)
    finally:
        await conn.close()


async def reopen_database(admin_url: str, database_url: str) -> None:
    name = database_url.rpartition("/")[2]
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        await conn.close()
