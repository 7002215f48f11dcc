"""The tariff API's bad input and faults, each a 4xx naming the problem: postpaid plans,
reviews of a future period, templates with a placeholder their kind does not have, the
billing e-mail, unknown tasks; and a postpaid plan's credit limit granted at the first
subscription and again at each cycle start, without rollover."""

from __future__ import annotations

from typing import Any

import pytest

from api.context import CREDIT_STORE, PG_POOL
from metering.billing.cycle import run_cycle
from tests.api.billing_env import plan_body
from tests.api.conftest import ADMIN, Client, MovableClock, at, new_tenant

FLAT = {"kind": "flat_rate", "monthly_price": "1000.00", "reference_price_per_minute": "0.50",
        "tolerance_pct": "10"}


def postpaid(**changes: Any) -> dict[str, Any]:
    body = plan_body(id="flat", name="Flat", billing="postpaid", credit_limit=2000,
                     tariff=FLAT)
    del body["included_credits"], body["credit_rollover"]
    body.update(changes)
    return body


async def problem(client: Client, method: str, path: str, body: Any, status: int
                  ) -> dict[str, Any]:
    response = await client.request(method, path, json=body, headers=ADMIN)
    assert response.status == status, await response.text()
    found: dict[str, Any] = await response.json()
    return found


@pytest.mark.parametrize(("changes", "field"), [
    ({"tariff": None}, "tariff"),
    ({"credit_limit": None}, "credit_limit"),
    ({"credit_rollover": True}, "credit_rollover"),
    ({"tariff": {**FLAT, "tolerance_pct": "1001"}}, "tariff.tolerance_pct"),
    ({"tariff": {**FLAT, "reference_price_per_minute": "0"}},
     "tariff.reference_price_per_minute"),
    ({"tariff": {**FLAT, "monthly_price": "10.001"}}, "tariff.monthly_price"),
    ({"tariff": {"kind": "cost_cap", "prices": {"call_seconds": "1.00"},
                 "capped_meters": ["call_seconds"], "category": 8,
                 "category_caps": {str(i): f"{i}00.00" for i in range(1, 8)},
                 "tolerance_pct": "10"}}, "tariff.category"),
    ({"tariff": {"kind": "cost_cap", "prices": {"call_seconds": "1.00"},
                 "capped_meters": ["call_seconds"], "category": 2,
                 "category_caps": {str(i): "500.00" for i in range(1, 8)},
                 "tolerance_pct": "10"}}, "tariff.category_caps.2"),
    ({"billing": "prepaid", "included_credits": 0, "credit_rollover": False},
     "credit_limit"),
])
async def test_bad_postpaid_plans_name_the_member(billing_client: Client,
                                                  changes: dict[str, Any], field: str) -> None:
    body = {k: v for k, v in postpaid(**changes).items() if v is not None}
    found = await problem(billing_client, "POST", "/admin/plans", body, 422)
    assert found["field"] == field, found


async def test_credit_limit_is_granted_at_subscription_and_each_cycle_without_rollover(
        billing_client: Client, clock: MovableClock) -> None:
    client = billing_client
    created = await client.post("/admin/plans", json=postpaid(), headers=ADMIN)
    assert created.status == 201
    plan = await created.json()
    assert (plan["billing"], plan["credit_limit"], plan["tariff"]) == ("postpaid", 2000, FLAT)
    assert (plan["included_credits"], plan["credit_rollover"]) == (2000, False)
    tenant = await new_tenant(client)
    assert (await client.put(f"/admin/tenants/{tenant.id}/plan", json={"plan_id": "flat"},
                             headers=ADMIN)).status == 200
    balance = await (await client.get("/v1/balance", headers=tenant.auth)).json()
    assert balance["available_credits"] == "2000.000000"
    clock.at = at("2026-12-01 00:05")
    app = client.app
    await run_cycle(app[PG_POOL], app[CREDIT_STORE], now=clock.at)
    balance = await (await client.get("/v1/balance", headers=tenant.auth)).json()
    assert balance["available_credits"] == "2000.000000"  # granted again, not 4000
    draft = await (await client.get("/v1/invoices/upcoming", headers=tenant.auth)).json()
    assert [(line["kind"], line["amount"]) for line in draft["lines"]] == [
        ("monthly_fee", "4950.00"), ("success_fee", "0.00"), ("flat_rate", "1000.00")]


async def test_reviews_of_a_future_or_malformed_period_are_refused(
        billing_client: Client) -> None:
    found = await problem(billing_client, "POST", "/admin/tariff-reviews",
                          {"period": "2026-12"}, 422)  # the clock is in 2026-11
    assert found["field"] == "period" and "future" in found["detail"]
    found = await problem(billing_client, "POST", "/admin/tariff-reviews",
                          {"period": "2026-13"}, 422)
    assert found["field"] == "period"
    ok = await billing_client.post("/admin/tariff-reviews", json={"period": "2026-11"},
                                   headers=ADMIN)
    assert ok.status == 200 and await ok.json() == {"results": []}


async def test_templates_are_listed_and_checked_per_kind(billing_client: Client) -> None:
    client = billing_client
    listed = (await (await client.get("/admin/templates", headers=ADMIN)).json())["templates"]
    assert [t["name"] for t in listed] == [
        "cost_cap_offer", "cost_cap_follow_up", "flat_rate_offer", "flat_rate_follow_up",
        "per_call_offer", "per_call_follow_up"]
    assert all(t["is_default"] for t in listed)
    assert listed[3]["placeholders"]["5"] == "date of the offer e-mail"
    found = await problem(client, "PUT", "/admin/templates/cost_cap_offer",
                          {"text": "{1}, over {9}%"}, 422)
    assert found["field"] == "text" and "{9}" in found["detail"]
    found = await problem(client, "PUT", "/admin/templates/flat_rate_offer",
                          {"text": "{5}, the price is {4"}, 422)
    assert found["field"] == "text" and "braces" in found["detail"]
    found = await problem(client, "PUT", "/admin/templates/per_call_offer",
                          {"text": "{7}"}, 422)  # {7} is the follow-up's salutation only
    assert "{7}" in found["detail"]
    found = await problem(client, "PUT", "/admin/templates/nonsense", {"text": "x"}, 422)
    assert found["field"] == "name"
    saved = await client.put("/admin/templates/per_call_follow_up", headers=ADMIN,
                             json={"text": "{7}, see {{our}} mail of {6}: {5}"})
    assert saved.status == 200
    assert (await saved.json())["is_default"] is False


async def test_billing_email_and_unknown_tasks(billing_client: Client) -> None:
    client = billing_client
    tenant = await new_tenant(client)
    path = f"/admin/tenants/{tenant.id}/billing-email"
    ok = await client.put(path, json={"billing_email": "ap@acme.test"}, headers=ADMIN)
    assert await ok.json() == {"tenant_id": tenant.id, "billing_email": "ap@acme.test"}
    found = await problem(client, "PUT", path, {"billing_email": "not an address"}, 422)
    assert found["field"] == "billing_email"
    await problem(client, "PUT", "/admin/tenants/00000000-0000-0000-0000-000000000000/"
                  "billing-email", {"billing_email": "a@b.test"}, 404)
    unknown = "/admin/tasks/00000000-0000-0000-0000-000000000000"
    await problem(client, "GET", unknown, None, 404)
    await problem(client, "POST", unknown + "/offer", {"salutation": "Hi"}, 404)
    await problem(client, "POST", unknown + "/resolve", {"outcome": "closed"}, 404)
    found = await problem(client, "GET", "/admin/tasks?status=lost", None, 422)
    assert found["field"] == "status"
    assert (await client.get("/admin/tasks", headers={})).status == 401
