"""The billing API through HTTP on real PostgreSQL and Redis: seed 000's example from plan
to PDF, successes exactly once per Idempotency-Key, concurrent plan changes, closing."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import asyncpg
from pypdf import PdfReader

from tests.api.billing_env import create_plan, plan_body
from tests.api.conftest import ADMIN, Client, MovableClock, Tenant, at, new_tenant


async def _json(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


async def _success(client: Client, tenant: Tenant, key: str, **body: Any) -> Any:
    return await client.post("/v1/successes", json={"kind": "appointment_booked", **body},
                             headers={**tenant.auth, "Idempotency-Key": key})


async def test_seed_000_through_the_api(billing_client: Client, clock: MovableClock) -> None:
    client = billing_client
    plan = await _json(await client.post("/admin/plans", json=plan_body(), headers=ADMIN), 201)
    assert (plan["version"], plan["monthly_fee"], plan["currency"]) == (1, "4950.00", "TRY")
    again = await _json(await client.post("/admin/plans", json=plan_body(), headers=ADMIN), 200)
    assert again == plan
    tenant = await new_tenant(client)
    subscribed = await _json(await client.put(
        f"/admin/tenants/{tenant.id}/plan", json={"plan_id": "growth", "start": "2026-11-01"},
        headers=ADMIN), 200)
    assert subscribed["change"] == "started"
    assert subscribed["current"]["effective_from"] == "2026-11-01"
    for start in range(0, 300, 30):  # 300 successes from the tenant's CRM
        answers = await asyncio.gather(*(_success(client, tenant, f"crm-{n}")
                                         for n in range(start, start + 30)))
        assert {answer.status for answer in answers} == {201}
    draft = await _json(await client.get("/v1/invoices/upcoming", headers=tenant.auth), 200)
    assert (draft["status"], draft["number"], draft["total"]) == ("draft", None, "8550.00")

    running = await client.post("/admin/invoices/close", json={"period": "2026-11"},
                                headers=ADMIN)
    assert (await _json(running, 422))["field"] == "period"
    clock.at = at("2026-12-01 00:30")
    closed = await _json(await client.post("/admin/invoices/close", json={"period": "2026-11"},
                                           headers=ADMIN), 200)
    assert closed["period"] == "2026-11"  # (the cycle job may have finalized it first)
    invoice = await _json(await client.get(f"/v1/invoices/{draft['id']}",
                                           headers=tenant.auth), 200)
    assert [line["amount"] for line in invoice["lines"]] == ["4950.00", "3600.00"]
    assert (invoice["total"], invoice["cost_per_success"], invoice["successes"]) == \
        ("8550.00", "28.50", 300)
    assert invoice["status"] == "finalized" and invoice["number"] == "ACME-2026-000001"
    assert invoice["period"] == "2026-11" and invoice["currency"] == "TRY"

    pdf = await client.get(f"/v1/invoices/{invoice['id']}/pdf", headers=tenant.auth)
    assert pdf.status == 200 and pdf.content_type == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(await pdf.read())).pages)
    assert "8550.00" in text and "ACME-2026-000001" in text

    listed = await _json(await client.get("/v1/invoices", headers=tenant.auth), 200)
    assert invoice["id"] in [item["id"] for item in listed["invoices"]]
    void = await _json(await client.post(f"/admin/invoices/{invoice['id']}/void",
                                         headers=ADMIN), 200)
    assert (void["status"], void["number"]) == ("void", "ACME-2026-000001")
    refused = await client.post(f"/admin/invoices/{invoice['id']}/paid", headers=ADMIN)
    assert (await _json(refused, 409))["code"] == "invalid_transition"


async def test_successes_once_per_key(billing_client: Client) -> None:
    tenant = await new_tenant(billing_client)
    first = await _success(billing_client, tenant, "k-1", reference="APT-1")
    body = await _json(first, 201)
    assert body["source"] == "api" and body["id"].startswith("suc_")
    replay = await _success(billing_client, tenant, "k-1", reference="APT-1")
    assert replay.status == 200 and await replay.read() == await first.read()
    changed = await _success(billing_client, tenant, "k-1", reference="APT-2")
    assert (await _json(changed, 409))["code"] == "idempotency_key_reused"
    missing = await billing_client.post("/v1/successes", json={"kind": "order_placed"},
                                        headers=tenant.auth)
    assert (await _json(missing, 400))["code"] == "idempotency_key_required"
    listed = await _json(await billing_client.get(
        "/v1/successes", params={"kind": "appointment_booked", "limit": "10"},
        headers=tenant.auth), 200)
    assert [s["id"] for s in listed["successes"]] == [body["id"]]
    assert listed["next_cursor"] is None
    other = await new_tenant(billing_client, "Other")
    theirs = await _json(await billing_client.get("/v1/successes", headers=other.auth), 200)
    assert theirs["successes"] == []


async def test_concurrent_plan_changes_one_wins(billing_client: Client,
                                                database_url: str) -> None:
    for plan_id in ("small", "large"):
        await create_plan(billing_client, id=plan_id, name=plan_id.title())
    tenant = await new_tenant(billing_client)
    # Racing first subscriptions: one starts the plan, the other waits for the next cycle.
    answers = await asyncio.gather(*(
        billing_client.put("/v1/plan", json={"plan_id": plan_id}, headers=tenant.auth)
        for plan_id in ("small", "large") * 4))
    bodies = [await _json(answer, 200) for answer in answers]
    assert sum(body["change"] == "started" for body in bodies) == 1
    view = await _json(await billing_client.get("/v1/plan", headers=tenant.auth), 200)
    current = view["current"]["id"]
    assert view["pending"] is None or view["pending"]["id"] != current
    assert view["pending"] is None or view["pending"]["effective_from"] == "2026-12-01"
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM invoices WHERE tenant_id = $1",
                                   tenant.id) == 1
        assert await conn.fetchval("SELECT plan_id FROM invoices WHERE tenant_id = $1",
                                   tenant.id) == current
    finally:
        await conn.close()
    other = "large" if current == "small" else "small"
    scheduled = await _json(await billing_client.put("/v1/plan", json={"plan_id": other},
                                                     headers=tenant.auth), 200)
    assert scheduled["pending"]["id"] == other and scheduled["current"]["id"] == current


async def test_operator_plan_reads_and_versions(billing_client: Client) -> None:
    await create_plan(billing_client)
    changed = await billing_client.post("/admin/plans", json=plan_body(monthly_fee="5200.00"),
                                        headers=ADMIN)
    assert (await _json(changed, 201))["version"] == 2
    got = await _json(await billing_client.get("/admin/plans/growth", headers=ADMIN), 200)
    assert (got["version"], got["monthly_fee"]) == (2, "5200.00")
    await create_plan(billing_client, id="basic")
    first = await _json(await billing_client.get("/admin/plans", params={"limit": "1"},
                                                 headers=ADMIN), 200)
    assert [p["id"] for p in first["plans"]] == ["basic"] and first["next_cursor"]
    rest = await _json(await billing_client.get(
        "/admin/plans", params={"cursor": first["next_cursor"]}, headers=ADMIN), 200)
    assert [p["id"] for p in rest["plans"]] == ["growth"] and rest["next_cursor"] is None
    tenant = await new_tenant(billing_client)
    offered = await _json(await billing_client.get("/v1/plans", headers=tenant.auth), 200)
    assert [p["id"] for p in offered["plans"]] == ["basic", "growth"]
    assert (await billing_client.get("/admin/plans/nope", headers=ADMIN)).status == 404
    for field, value in (("monthly_fee", 4950.0), ("monthly_fee", "-1.00"),
                         ("currency", "XXX"), ("success_fee", "12.001")):
        bad = await billing_client.post("/admin/plans", json=plan_body(**{field: value}),
                                        headers=ADMIN)
        assert (await _json(bad, 422))["field"] == field, value
    no_plan = await billing_client.get("/v1/invoices/upcoming", headers=tenant.auth)
    assert no_plan.status == 404
    plan = await _json(await billing_client.get("/v1/plan", headers=tenant.auth), 200)
    assert plan == {"current": None, "pending": None}
    future = await billing_client.put(f"/admin/tenants/{tenant.id}/plan",
                                      json={"plan_id": "growth", "start": "2026-12-01"},
                                      headers=ADMIN)
    assert (await _json(future, 422))["field"] == "start"
