"""Shared fixtures: real Redis and real PostgreSQL, isolated per test.

Every test gets its own PostgreSQL database (cloned from a migrated template, so it is
fast) and its own Redis key prefix (keys deleted afterwards). An autouse guard fails any
test during which a callback blocked the event loop.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from gateway.logs import route_loguru_to_logging
from metering.migrate import migrate_url
from tests.servers import TestServers

route_loguru_to_logging()  # pipecat's per-frame DEBUG lines would drown test output

# A callback holding the loop longer than this fails the test. Generous on purpose: CI
# machines have two cores and debug mode slows everything; real blocking (a sync socket
# call, a sleep) shows up far above it.
BLOCKING_LIMIT_S = 1.0


@pytest.fixture(scope="session")
def servers() -> Iterator[TestServers]:
    found = TestServers()
    yield found
    found.close()


@pytest.fixture(scope="session")
def redis_url(servers: TestServers) -> str:
    return servers.redis_url


def _database_url(server_url: str, database: str) -> str:
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def template_database(servers: TestServers) -> Iterator[str]:
    """A migrated database that each test's database is cloned from."""
    name = f"vgw_tpl_{uuid.uuid4().hex[:12]}"
    admin_url = servers.postgres_url

    async def create() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        await migrate_url(_database_url(admin_url, name))

    async def drop() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    yield name
    asyncio.run(drop())


async def _admin(server_url: str, statement: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
async def database_url(servers: TestServers, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database of this test's own."""
    name = f"vgw_t_{uuid.uuid4().hex[:16]}"
    await _admin(servers.postgres_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield _database_url(servers.postgres_url, name)
    await _admin(servers.postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url_sync(servers: TestServers, template_database: str) -> Iterator[str]:
    """The same, for synchronous tests that run their own event loops (hypothesis)."""
    name = f"vgw_t_{uuid.uuid4().hex[:16]}"
    asyncio.run(_admin(servers.postgres_url,
                       f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    yield _database_url(servers.postgres_url, name)
    asyncio.run(_admin(servers.postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def pg_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=8)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture
def key_prefix() -> str:
    """This test's own Redis key prefix."""
    return f"vgwtest:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def redis_client(redis_url: str, key_prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    cursor = 0
    while True:
        cursor, keys = await client.scan(cursor, match=f"{key_prefix}*", count=1000)
        if keys:
            await client.delete(*keys)
        if cursor == 0:
            break
    await client.aclose()


class _SlowCallbackCatcher(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        # The garbage collector's pauses while the test ran: a collection of the whole
        # suite's heap (hundreds of tests in, under debug mode's tracebacks) stops the
        # loop for a second on a slow machine, and that is not the code under test
        # blocking it.
        self.gc_seconds = 0.0
        self._gc_started = 0.0

    def on_gc(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started:
            self.gc_seconds += time.perf_counter() - self._gc_started

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not (message.startswith("Executing") and " took " in message):
            return
        # Loops this guard cannot configure (uvloop's) warn from their own 0.1 s: only a
        # callback past our limit counts.
        took = message.rsplit(" took ", 1)[1].split()[0]
        try:
            seconds = float(took)
        except ValueError:
            seconds = BLOCKING_LIMIT_S + 1
        if seconds > BLOCKING_LIMIT_S:
            self.messages.append(message)

    def blocked(self) -> list[str]:
        """The slow callbacks still over the limit once every GC pause is taken off."""
        return [m for m in self.messages
                if _took(m) - self.gc_seconds > BLOCKING_LIMIT_S]


def _took(message: str) -> float:
    try:
        return float(message.rsplit(" took ", 1)[1].split()[0])
    except (IndexError, ValueError):
        return BLOCKING_LIMIT_S + 1


@pytest.fixture(autouse=True)
def event_loop_blocking_guard() -> Iterator[None]:
    """Fails the test if any event-loop callback ran longer than BLOCKING_LIMIT_S."""
    catcher = _SlowCallbackCatcher()
    asyncio_logger = logging.getLogger("asyncio")
    asyncio_logger.addHandler(catcher)
    original = asyncio.BaseEventLoop.__init__

    def init_with_limit(self: asyncio.BaseEventLoop) -> None:
        original(self)
        self.slow_callback_duration = BLOCKING_LIMIT_S
        self.set_debug(True)

    asyncio.BaseEventLoop.__init__ = init_with_limit  # type: ignore[method-assign,assignment]
    gc.callbacks.append(catcher.on_gc)
    try:
        yield
    finally:
        asyncio.BaseEventLoop.__init__ = original  # type: ignore[method-assign]
        asyncio_logger.removeHandler(catcher)
        gc.callbacks.remove(catcher.on_gc)
    if catcher.blocked():
        pytest.fail("the event loop was blocked:\n" + "\n".join(catcher.messages)
                    + f"\n(garbage collection paused it {catcher.gc_seconds:.2f} s in all)")
pytest_plugins = ["pytester", "tests.gateway.messaging_env", "tests.metering.notify_env"]
