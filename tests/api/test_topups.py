"""Top-ups credit exactly once per Idempotency-Key, even when requests race."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from api.context import PG_POOL
from tests.api.conftest import Client, Tenant, new_tenant


def _headers(tenant: Tenant, key: str | None) -> dict[str, str]:
    headers = dict(tenant.auth)
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


async def test_topup_then_replay_returns_the_same_body(client: Client, tenant: Tenant) -> None:
    first = await client.post("/v1/topups", json={"credits": 500, "reference": "inv-1"},
                              headers=_headers(tenant, "k-1"))
    assert first.status == 201
    body = await first.json()
    assert body["credits"] == 500
    assert body["balance"]["available_credits"] == "500.000000"
    assert body["balance"]["paused"] is False
    replay = await client.post("/v1/topups", json={"credits": 500, "reference": "inv-1"},
                               headers=_headers(tenant, "k-1"))
    assert replay.status == 200
    assert await replay.json() == body
    balance = await (await client.get("/v1/balance", headers=tenant.auth)).json()
    assert balance["available_credits"] == "500.000000"
    assert balance["available_micro_credits"] == 500_000_000
    assert balance["reserved_credits"] == "0.000000"


async def test_racing_requests_with_one_key_credit_once(client: Client, tenant: Tenant) -> None:
    responses = await asyncio.gather(*[
        client.post("/v1/topups", json={"credits": 70}, headers=_headers(tenant, "race"))
        for _ in range(12)
    ])
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 11 + [201]
    bodies = [await r.json() for r in responses]
    assert all(b["topup_id"] == bodies[0]["topup_id"] for b in bodies)
    balance = await (await client.get("/v1/balance", headers=tenant.auth)).json()
    assert balance["available_micro_credits"] == 70_000_000
    count = await client.app[PG_POOL].fetchval("SELECT count(*) FROM topups")
    assert count == 1


async def test_same_key_different_body_is_409(client: Client, tenant: Tenant) -> None:
    assert (await client.post("/v1/topups", json={"credits": 5},
                              headers=_headers(tenant, "k"))).status == 201
    clash = await client.post("/v1/topups", json={"credits": 6}, headers=_headers(tenant, "k"))
    assert clash.status == 409
    assert (await clash.json())["code"] == "idempotency_key_reused"


async def test_keys_are_per_tenant(client: Client, tenant: Tenant) -> None:
    other = await new_tenant(client, "Other")
    for who in (tenant, other):
        response = await client.post("/v1/topups", json={"credits": 9},
                                     headers=_headers(who, "shared-key"))
        assert response.status == 201


@pytest.mark.parametrize(
    "credits",
    [0, -5, 1.5, "100", True, None, 10**30, 1_000_000_001, float("nan")],
)
async def test_bad_amounts_are_422_naming_credits(
    client: Client, tenant: Tenant, credits: Any
) -> None:
    body = '{"credits": NaN}' if credits != credits else None
    if body is not None:
        response = await client.post("/v1/topups", data=body, headers=_headers(tenant, "n"))
        assert response.status == 400
        return
    response = await client.post("/v1/topups", json={"credits": credits},
                                 headers=_headers(tenant, f"bad-{credits!r}"))
    assert response.status == 422, await response.text()
    problem = await response.json()
    assert problem["field"] == "credits"
    balance = await (await client.get("/v1/balance", headers=tenant.auth)).json()
    assert balance["available_micro_credits"] == 0


async def test_missing_key_and_bad_auth(client: Client, tenant: Tenant) -> None:
    no_key = await client.post("/v1/topups", json={"credits": 1}, headers=tenant.auth)
    assert no_key.status == 400
    assert (await no_key.json())["code"] == "idempotency_key_required"
    long_key = await client.post("/v1/topups", json={"credits": 1},
                                 headers=_headers(tenant, "x" * 256))
    assert long_key.status == 400
    for headers in ({}, {"Authorization": "Bearer vgw_nope"}, {"Authorization": "Basic abc"}):
        response = await client.post("/v1/topups", json={"credits": 1},
                                     headers={**headers, "Idempotency-Key": "a"})
        assert response.status == 401
        assert (await client.get("/v1/balance", headers=headers)).status == 401
    assert await client.app[PG_POOL].fetchval("SELECT count(*) FROM topups") == 0


async def test_a_topup_is_readable_by_its_tenant_only(client: Client, tenant: Tenant) -> None:
    created = await (await client.post("/v1/topups", json={"credits": 3, "reference": "r"},
                                       headers=_headers(tenant, "mine"))).json()
    mine = await client.get(f"/v1/topups/{created['topup_id']}", headers=tenant.auth)
    assert mine.status == 200
    assert (await mine.json())["reference"] == "r"
    other = await new_tenant(client, "Nosy")
    theirs = await client.get(f"/v1/topups/{created['topup_id']}", headers=other.auth)
    assert theirs.status == 404
    assert (await theirs.json())["code"] == "not_found"
    assert (await client.get("/v1/topups/not-a-uuid", headers=tenant.auth)).status == 404


async def test_a_body_sent_in_many_small_chunks_is_read_whole(client: Client,
                                                               tenant: Tenant) -> None:
    padding = " " * 70_000  # far more than one read returns at once

    async def chunks() -> AsyncIterator[bytes]:
        body = ('{"credits": 5,' + padding + '"reference": "chunked"}').encode()
        for start in range(0, len(body), 1000):
            yield body[start:start + 1000]
            await asyncio.sleep(0)

    response = await client.post("/v1/topups", data=chunks(),
                                 headers={**tenant.auth, "Idempotency-Key": "chunky",
                                          "Content-Type": "application/json"})
    assert response.status == 201, await response.text()
    assert (await response.json())["reference"] == "chunked"
