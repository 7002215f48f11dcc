"""Bad input on every billing, webhook and alert endpoint, family by family: no or wrong
credentials 401, another tenant's resource 404, malformed JSON 400, unknown members and
wrong types 422 naming the member, oversized bodies 413."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from tests.api.billing_env import create_plan, plan_body
from tests.api.conftest import ADMIN, Client, new_tenant


@dataclass
class World:
    """Tenant A holds an invoice and a webhook; B is the stranger asking for them."""

    a: dict[str, str]
    b: dict[str, str]
    tenant_id: str
    invoice_id: str
    webhook_id: str


@pytest.fixture
async def world(billing_client: Client) -> World:
    await create_plan(billing_client)
    a, b = await new_tenant(billing_client, "A"), await new_tenant(billing_client, "B")
    assert (await billing_client.put("/v1/plan", json={"plan_id": "growth"},
                                     headers=a.auth)).status == 200
    invoice = await (await billing_client.get("/v1/invoices/upcoming", headers=a.auth)).json()
    hook = await billing_client.post("/v1/webhooks", headers=a.auth, json={
        "url": "http://127.0.0.1:9/hook", "events": ["success.created"]})
    assert hook.status == 201, await hook.text()
    return World(a.auth, b.auth, a.id, invoice["id"], (await hook.json())["id"])


# (method, path, who: admin | tenant, a valid body or None)
ENDPOINTS: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("POST", "/admin/plans", "admin", plan_body(id="other")),
    ("GET", "/admin/plans", "admin", None),
    ("GET", "/admin/plans/growth", "admin", None),
    ("PUT", "/admin/tenants/{tenant}/plan", "admin", {"plan_id": "growth"}),
    ("POST", "/admin/invoices/close", "admin", {"period": "2026-10"}),
    ("POST", "/admin/invoices/{invoice}/paid", "admin", None),
    ("POST", "/admin/invoices/{invoice}/void", "admin", None),
    ("GET", "/v1/plans", "tenant", None),
    ("GET", "/v1/plan", "tenant", None),
    ("PUT", "/v1/plan", "tenant", {"plan_id": "growth"}),
    ("POST", "/v1/successes", "tenant", {"kind": "order_placed"}),
    ("GET", "/v1/successes", "tenant", None),
    ("GET", "/v1/invoices/upcoming", "tenant", None),
    ("GET", "/v1/invoices", "tenant", None),
    ("GET", "/v1/invoices/{invoice}", "tenant", None),
    ("GET", "/v1/invoices/{invoice}/pdf", "tenant", None),
    ("POST", "/v1/webhooks", "tenant", {"url": "http://127.0.0.1:9/x", "events": ["balance.low"]}),
    ("GET", "/v1/webhooks", "tenant", None),
    ("DELETE", "/v1/webhooks/{webhook}", "tenant", None),
    ("POST", "/v1/webhooks/{webhook}/test", "tenant", None),
    ("GET", "/v1/webhooks/{webhook}/deliveries", "tenant", None),
    ("GET", "/v1/alerts", "tenant", None),
    ("PUT", "/v1/alerts", "tenant", {"low_balance_credits": 5000, "emails": []}),
]
BODIES = [(method, path, who, body) for method, path, who, body in ENDPOINTS if body]
# The tenant's own resources that another tenant must not see.
THEIRS = [(method, path) for method, path, who, _ in ENDPOINTS
          if who == "tenant" and ("{invoice}" in path or "{webhook}" in path)]


def _path(path: str, world: World) -> str:
    return path.format(tenant=world.tenant_id, invoice=world.invoice_id,
                       webhook=world.webhook_id)


def _headers(world: World, who: str) -> dict[str, str]:
    return {**(ADMIN if who == "admin" else world.a), "Idempotency-Key": "bad-input-1"}


@pytest.mark.parametrize(("method", "path", "who", "body"), ENDPOINTS)
async def test_credentials_are_required(billing_client: Client, world: World, method: str,
                                        path: str, who: str, body: Any) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-key"},
                    {"Authorization": "Basic abc"}):
        response = await billing_client.request(method, _path(path, world), json=body,
                                                headers=headers)
        assert response.status == 401, (headers, await response.text())
        assert (await response.json())["code"] == "unauthorized"


@pytest.mark.parametrize(("method", "path"), THEIRS)
async def test_another_tenants_resource_is_not_found(billing_client: Client, world: World,
                                                     method: str, path: str) -> None:
    response = await billing_client.request(method, _path(path, world), headers=world.b)
    assert response.status == 404, await response.text()
    still = await billing_client.get("/v1/webhooks", headers=world.a)
    assert [hook["id"] for hook in (await still.json())["webhooks"]] == [world.webhook_id]


@pytest.mark.parametrize(("method", "path", "who", "body"), BODIES)
async def test_bodies_are_read_strictly(billing_client: Client, world: World, method: str,
                                        path: str, who: str, body: dict[str, Any]) -> None:
    url, headers = _path(path, world), _headers(world, who)

    async def send(data: bytes) -> Any:
        response = await billing_client.request(
            method, url, data=data, headers={**headers, "Content-Type": "application/json"})
        return response.status, await response.json()

    status, problem = await send(b'{"plan_id": ')
    assert (status, problem["code"]) == (400, "malformed_json")
    status, problem = await send(b'{"x": "' + b"x" * 300_000 + b'"}')
    assert (status, problem["code"]) == (413, "payload_too_large")
    status, problem = await send(orjson.dumps({**body, "surprise": 1}))
    assert (status, problem["field"]) == (422, "surprise")
    first = next(iter(body))
    wrong = 12345 if isinstance(body[first], str) else "12345"
    status, problem = await send(orjson.dumps({**body, first: wrong}))
    assert (status, problem["code"], problem["field"]) == (422, "invalid_field", first)
    status, problem = await send(b"[]")
    assert (status, problem["code"]) == (422, "invalid_body")


async def test_queries_and_values_name_the_field(billing_client: Client, world: World) -> None:
    cases = [
        ("GET", "/v1/successes?from=yesterday", None, "from"),
        ("GET", "/v1/successes?kind=lunch", None, "kind"),
        ("GET", "/v1/invoices?limit=0", None, "limit"),
        ("GET", "/v1/webhooks?cursor=@@@", None, "cursor"),
        ("POST", "/v1/successes", {"kind": "order_placed", "occurred_at": "0001-01-01T00:00+01:00"},
         "occurred_at"),
        ("POST", "/v1/webhooks", {"url": "ftp://example.com/x", "events": ["balance.low"]}, "url"),
        ("POST", "/v1/webhooks", {"url": "https://example.com/x", "events": ["nope"]}, "events"),
        ("PUT", "/v1/alerts", {"low_balance_credits": 0, "emails": []}, "low_balance_credits"),
        ("PUT", "/v1/alerts", {"low_balance_credits": None, "emails": ["not-mail"]}, "emails[0]"),
        ("PUT", "/v1/plan", {"plan_id": "missing"}, "plan_id"),
        ("POST", "/admin/invoices/close", {"period": "2026-13"}, "period"),
        ("POST", "/admin/invoices/close", {"period": "2027-01"}, "period"),
    ]
    for method, path, body, field in cases:
        headers = _headers(world, "admin" if path.startswith("/admin") else "tenant")
        response = await billing_client.request(method, path, json=body, headers=headers)
        assert response.status == 422, (path, body, await response.text())
        assert (await response.json())["field"] == field, (path, body)
