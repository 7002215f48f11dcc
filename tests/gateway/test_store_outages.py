"""A store that restarts or goes down: Redis restarted under concurrent requests, Redis
down, PostgreSQL down. Never a 500: a restart is reconnected without anyone seeing it,
an outage is 503 `store_unavailable` with Retry-After, and service comes back by itself."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import create_app
from load import twilio_wire
from tests.api.conftest import ADMIN, ClientFactory, Tenant, new_tenant
from tests.gateway.helpers import TWILIO_AUTH_TOKEN, make_settings
from tests.gateway.outages import PrivateRedis, close_database, private_redis, reopen_database
from tests.servers import TestServers

Client = TestClient[Any, Any]
NUMBER = "+15550100001"
WORKERS = 12


async def _balance_statuses(client: Client, tenant: Tenant, stop: asyncio.Event,
                            seen: collections.Counter[int]) -> None:
    async def worker() -> None:
        while not stop.is_set():
            response = await client.get("/v1/balance", headers=tenant.auth)
            seen[response.status] += 1
            if response.status == 503:
                body = await response.json()
                assert body["code"] == "store_unavailable", body
                assert int(response.headers["Retry-After"]) > 0
            await asyncio.sleep(0.005)

    await asyncio.gather(*(worker() for _ in range(WORKERS)))


async def _all_answer(client: Client, tenant: Tenant, count: int = WORKERS) -> list[int]:
    responses = await asyncio.gather(*(client.get("/v1/balance", headers=tenant.auth)
                                       for _ in range(count)))
    return [response.status for response in responses]


async def _gateway(aiohttp_client: ClientFactory, redis: PrivateRedis, database_url: str,
                   key_prefix: str) -> tuple[Client, Tenant]:
    settings = make_settings(redis.url, database_url, key_prefix, run_sink="false")
    client = await aiohttp_client(create_app(settings))
    tenant = await _tenant_with_number(client)
    topup = await client.post("/v1/topups", json={"credits": 50},
                              headers={**tenant.auth, "Idempotency-Key": "k"})
    assert topup.status == 201, await topup.text()
    return client, tenant


async def _tenant_with_number(client: Client) -> Tenant:
    tenant = await new_tenant(client)
    assigned = await client.post(f"/admin/tenants/{tenant.id}/numbers", headers=ADMIN,
                                 json={"phone_number": NUMBER, "kind": "local"})
    assert assigned.status == 201, await assigned.text()
    return tenant


def _signed(path: str, form: dict[str, str]) -> dict[str, str]:
    url = f"https://gw.test{path}"
    return {"X-Twilio-Signature": twilio_wire.signature(url, form, TWILIO_AUTH_TOKEN)}


async def test_redis_restarted_under_concurrent_requests_never_answers_500(
        aiohttp_client: ClientFactory, database_url: str, key_prefix: str,
        tmp_path: Path) -> None:
    async with private_redis(tmp_path / "redis") as redis:
        client, tenant = await _gateway(aiohttp_client, redis, database_url, key_prefix)
        assert await _all_answer(client, tenant) == [200] * WORKERS  # the pool is warm

        # A restart between requests: every pooled connection is stale, nobody notices.
        await redis.stop()
        await redis.start()
        assert await _all_answer(client, tenant) == [200] * WORKERS

        # A restart while requests keep coming: 503 while it is down, then 200 again.
        stop, seen = asyncio.Event(), collections.Counter[int]()
        load = asyncio.create_task(_balance_statuses(client, tenant, stop, seen))
        await asyncio.sleep(0.3)
        await redis.stop()
        await asyncio.sleep(0.5)
        await redis.start()
        await asyncio.sleep(0.5)
        stop.set()
        await load
        assert set(seen) <= {200, 503}, seen
        assert seen[200] > 0

        # Down for good: 503 store_unavailable with Retry-After, on the API and webhooks.
        await redis.stop()
        assert await _all_answer(client, tenant) == [503] * WORKERS
        response = await client.get("/v1/balance", headers=tenant.auth)
        assert (await response.json())["code"] == "store_unavailable"
        assert response.headers["Retry-After"] == "5"
        form = {"CallSid": "CA" + "1" * 32, "To": NUMBER, "From": "+15557654321"}
        voice = await client.post("/twilio/voice", data=form,
                                  headers=_signed("/twilio/voice", form))
        assert voice.status == 503, await voice.text()
        assert (await voice.json())["code"] == "store_unavailable"

        await redis.start()
        assert await _all_answer(client, tenant) == [200] * WORKERS
        body = await (await client.get("/v1/balance", headers=tenant.auth)).json()
        assert body["available_credits"] == "50.000000"  # the data survived the restart


async def test_postgres_down_answers_503_then_recovers(
        aiohttp_client: ClientFactory, servers: TestServers, redis_url: str,
        database_url: str, key_prefix: str) -> None:
    settings = make_settings(redis_url, database_url, key_prefix, run_sink="false")
    client = await aiohttp_client(create_app(settings))
    tenant = await _tenant_with_number(client)
    assert await _all_answer(client, tenant, 4) == [200] * 4

    await close_database(servers.postgres_url, database_url)
    try:
        for _ in range(3):  # terminated pooled connections first, then refused new ones
            assert await _all_answer(client, tenant, 4) == [503] * 4
        response = await client.get("/v1/usage", headers=tenant.auth)
        assert response.status == 503
        assert (await response.json())["code"] == "store_unavailable"
        assert response.headers["Retry-After"] == "5"
        status_form = {"CallSid": "CA" + "2" * 32, "CallStatus": "completed", "To": NUMBER}
        status = await client.post("/twilio/status", data=status_form,
                                   headers=_signed("/twilio/status", status_form))
        assert status.status == 503, await status.text()
        voice_form = {"CallSid": "CA" + "3" * 32, "To": NUMBER, "From": "+15557654321"}
        voice = await client.post("/twilio/voice", data=voice_form,
                                  headers=_signed("/twilio/voice", voice_form))
        assert voice.status == 503, await voice.text()
        admin = await client.get(f"/admin/tenants/{tenant.id}", headers=ADMIN)
        assert admin.status == 503
        for path in ("/v1/conversations", "/v1/conversations.csv", "/v1/settings"):
            response = await client.get(path, headers=tenant.auth)
            assert response.status == 503, path
    finally:
        await reopen_database(servers.postgres_url, database_url)
    assert await _all_answer(client, tenant, 4) == [200] * 4
