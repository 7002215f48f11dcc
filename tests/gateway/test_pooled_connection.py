"""The gateway's pooled PostgreSQL connection (gateway.stores.PooledConnection): a release
sends asyncpg's reset query only when a statement could have left session state, and the
next holder of the connection finds none either way."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from gateway.stores import PooledConnection

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    # One connection: every acquire gets the one the last holder released.
    async with asyncpg.create_pool(database_url, min_size=1, max_size=1,
                                   connection_class=PooledConnection) as pool:
        yield pool


def _log_resets(conn: asyncpg.Connection, sent: list[str]) -> None:
    conn.add_query_logger(lambda record: sent.append(record.query))


async def test_a_plain_statement_is_released_without_the_reset_query(
        pool: asyncpg.Pool) -> None:
    sent: list[str] = []
    async with pool.acquire() as conn:
        _log_resets(conn, sent)
        assert await conn.fetchval("SELECT $1::int + 1", 1) == 2
        await conn.execute("UPDATE pg_catalog.pg_class\n SET relname = relname WHERE false")
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(42)")
    assert not any("RESET ALL" in q for q in sent)


@pytest.mark.parametrize("statement", [
    "SET application_name = 'left-behind'",
    "-- a comment first\nset application_name = 'left-behind'",
    "SELECT set_config('application_name', 'left-behind', false)",
])
async def test_session_settings_are_reset_on_release(pool: asyncpg.Pool,
                                                      statement: str) -> None:
    async with pool.acquire() as conn:
        await conn.execute(statement)
        assert await conn.fetchval("SHOW application_name") == "left-behind"
    async with pool.acquire() as conn:
        assert await conn.fetchval("SHOW application_name") != "left-behind"


async def test_session_advisory_locks_and_listens_are_undone_on_release(
        pool: asyncpg.Pool, database_url: str) -> None:
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", 4242)
        await conn.add_listener("left_behind", lambda *_: None)
    other = await asyncpg.connect(database_url)
    try:
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", 4242)
    finally:
        await other.close()
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM pg_listening_channels()") == 0


async def test_a_transaction_left_open_is_rolled_back(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE t (n int)")
        tx = conn.transaction()
        await tx.start()
        await conn.execute("INSERT INTO t VALUES (1)")
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM t") == 0
