"""The fixtures themselves: isolation of state between tests is what every test relies on."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis


async def test_database_is_migrated_and_private(pg_pool: asyncpg.Pool) -> None:
    versions = await pg_pool.fetch("SELECT version FROM schema_migrations ORDER BY version")
    assert [row["version"] for row in versions][:2] == [1, 2]
    assert await pg_pool.fetchval("SELECT count(*) FROM tenants") == 0


async def test_redis_prefix_is_private(redis_client: aioredis.Redis, key_prefix: str) -> None:
    await redis_client.set(f"{key_prefix}probe", b"1")
    assert await redis_client.get(f"{key_prefix}probe") == b"1"
    assert key_prefix.startswith("vgwtest:")


def test_blocking_guard_catches_a_blocked_loop(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    pytester.makeconftest("from tests.conftest import event_loop_blocking_guard  # noqa: F401")
    pytester.makepyfile(
        """
        import asyncio, time

        def test_blocks():
            async def main():
                await asyncio.sleep(0)
                time.sleep(1.3)
                await asyncio.sleep(0)
            asyncio.run(main())
        """
    )
    # A subprocess: the outer test's own guard must not see the inner blocked loop.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    assert "the event loop was blocked" in result.stdout.str()


async def test_guard_allows_cooperative_code() -> None:
    start = time.monotonic()
    for _ in range(5):
        await asyncio.sleep(0.01)
    assert time.monotonic() - start < 5
