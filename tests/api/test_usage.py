"""Usage reports from the ledger, and the other read-only pages."""

from __future__ import annotations

import time

import pytest

from api.context import CREDIT_STORE, PG_POOL, REDIS, REDIS_PREFIX
from gateway.cli_metering import drain
from metering.control import PHONE_POLICY, CreditSession
from metering.ratecard import default_rate_card
from metering.sink import Sink
from tests.api.conftest import Client, Tenant, new_tenant


async def _call(client: Client, tenant: Tenant, seconds: int, tokens: int) -> None:
    store = client.app[CREDIT_STORE]
    session = CreditSession(store, default_rate_card(), PHONE_POLICY, tenant.id,
                            f"call-{time.monotonic_ns()}", lambda: int(time.time() * 1000))
    await session.start()
    await session.report({"call_seconds": seconds * 1000, "voice_input_tokens": tokens})
    await session.finish()


async def _topup(client: Client, tenant: Tenant) -> None:
    response = await client.post("/v1/topups", json={"credits": 5000},
                                 headers={**tenant.auth, "Idempotency-Key": "u"})
    assert response.status == 201


async def test_usage_by_meter_day_and_channel(client: Client, tenant: Tenant) -> None:
    await _topup(client, tenant)
    await _call(client, tenant, 61, 1000)
    await _call(client, tenant, 30, 500)
    other = await new_tenant(client, "Other")
    await _topup(client, other)
    await _call(client, other, 10, 10)
    await drain(Sink(client.app[REDIS], client.app[PG_POOL], client.app[REDIS_PREFIX]))

    by_meter = await (await client.get("/v1/usage?group_by=meter", headers=tenant.auth)).json()
    rows = {row["meter"]: row for row in by_meter["rows"]}
    assert rows["call_seconds"]["units"] == {"call_seconds": 91_000}
    assert rows["call_seconds"]["credits"] == "144.083333"  # 96.583333 + 47.500000
    assert rows["voice_input_tokens"]["credits"] == "442.500000"
    by_channel = await (await client.get("/v1/usage?group_by=channel",
                                         headers=tenant.auth)).json()
    assert [r["channel"] for r in by_channel["rows"]] == ["phone"]
    by_day = await (await client.get("/v1/usage?group_by=day", headers=tenant.auth)).json()
    assert len(by_day["rows"]) == 1
    assert by_day["rows"][0]["micro_credits"] == 144_083_333 + 442_500_000


@pytest.mark.parametrize(
    ("query", "field"),
    [("from=yesterday", "from"), ("to=2026-13-01", "to"), ("group_by=tenant", "group_by"),
     ("from=2026-05-02&to=2026-05-01", "to"), ("from=2020-01-01&to=2026-01-01", "to")],
)
async def test_bad_usage_queries_name_the_field(client: Client, tenant: Tenant, query: str,
                                                field: str) -> None:
    response = await client.get(f"/v1/usage?{query}", headers=tenant.auth)
    assert response.status == 422
    assert (await response.json())["field"] == field


async def test_openapi_and_dashboard(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    assert {"/v1/topups", "/v1/balance", "/v1/usage", "/admin/tenants"} <= set(spec["paths"])
    page = await client.get("/dashboard")
    assert page.status == 200
    html = await page.text()
    assert '<script src="/dashboard/dashboard.js">' in html and "<script>" not in html
    script = await client.get("/dashboard/dashboard.js")  # no inline script: CSP 'self'
    assert script.status == 200 and "/v1/balance" in await script.text()
