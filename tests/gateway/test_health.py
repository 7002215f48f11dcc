"""Health, readiness and metrics through a real loopback server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.embedded import EmbeddedRedis
from tests.gateway.helpers import make_settings
from tests.prom import sample

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


async def test_healthz_and_readyz_ok(
    aiohttp_client: ClientFactory, redis_url: str, database_url: str, key_prefix: str
) -> None:
    client = await aiohttp_client(create_app(make_settings(redis_url, database_url, key_prefix)))
    health = await client.get("/healthz")
    assert health.status == 200
    assert await health.json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"redis": "ok", "postgres": "ok"}


async def test_readyz_names_redis_while_it_is_down_and_recovers(
    aiohttp_client: ClientFactory, database_url: str, key_prefix: str, tmp_path: Path
) -> None:
    await asyncio.to_thread(tmp_path.chmod, 0o755)  # the embedded server user reads it
    redis = EmbeddedRedis(tmp_path / "redis")
    url = await asyncio.to_thread(redis.start)
    try:
        client = await aiohttp_client(create_app(make_settings(url, database_url, key_prefix)))
        assert (await client.get("/readyz")).status == 200

        await asyncio.to_thread(redis.stop)
        down = await client.get("/readyz")
        assert down.status == 503
        body = await down.json()
        assert body["failed"] == ["redis"]
        assert body["checks"] == {"redis": "failed", "postgres": "ok"}
        assert "redis" in body["errors"]

        await asyncio.to_thread(redis.start)  # same port, same data directory
        for _ in range(50):
            again = await client.get("/readyz")
            if again.status == 200:
                break
            await asyncio.sleep(0.1)
        assert again.status == 200
        metrics = await (await client.get("/metrics")).text()
        assert 'voicegw_redis_errors_total{op="readyz"}' in metrics
    finally:
        await asyncio.to_thread(redis.stop)


async def test_readyz_names_postgres_when_unreachable(
    aiohttp_client: ClientFactory, redis_url: str, key_prefix: str
) -> None:
    from gateway.embedded import free_port

    dead_db = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    client = await aiohttp_client(create_app(make_settings(redis_url, dead_db, key_prefix)))
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["failed"] == ["postgres"]


async def test_metrics_count_requests_by_route_and_status(
    aiohttp_client: ClientFactory, redis_url: str, database_url: str, key_prefix: str
) -> None:
    client = await aiohttp_client(create_app(make_settings(redis_url, database_url, key_prefix)))
    await client.get("/healthz")
    await client.get("/healthz")
    missing = await client.get("/no/such/path")
    assert missing.status == 404
    assert missing.content_type == "application/problem+json"
    assert (await missing.json())["code"] == "not_found"
    response = await client.get("/metrics")
    assert response.content_type == "text/plain"
    text = await response.text()
    assert sample(text, "voicegw_http_requests_total", route="/healthz", status="200") == 2
    assert sample(text, "voicegw_http_requests_total", route="unmatched", status="404") == 1
    assert "# TYPE voicegw_active_calls gauge" in text
    assert sample(text, "voicegw_active_calls") == 0


async def test_readyz_is_503_until_migrations_are_applied(
    aiohttp_client: ClientFactory, redis_url: str, database_url: str, key_prefix: str
) -> None:
    settings = make_settings(redis_url, database_url, key_prefix, migrate_on_start="true")
    client = await aiohttp_client(create_app(settings))
    for _ in range(100):  # the template is migrated already: the runner finds nothing to do
        ready = await client.get("/readyz")
        if ready.status == 200:
            break
        body = await ready.json()
        assert body["status"] == "migrating" and "migrations" in body["failed"]
        await asyncio.sleep(0.05)
    assert ready.status == 200


async def test_readyz_says_migrating_while_postgres_is_unreachable(
    aiohttp_client: ClientFactory, redis_url: str, key_prefix: str
) -> None:
    dead = "postgresql://postgres@127.0.0.1:1/none"
    settings = make_settings(redis_url, dead, key_prefix, migrate_on_start="true")
    client = await aiohttp_client(create_app(settings))
    body = await (await client.get("/readyz")).json()
    assert body["status"] == "migrating"
    assert set(body["failed"]) == {"postgres", "migrations"}
