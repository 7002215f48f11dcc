"""The operator API: tenants and numbers, and every way to call it wrong."""

from __future__ import annotations

import pytest

from tests.api.conftest import ADMIN, Client, Tenant, new_tenant


async def test_create_tenant_shows_the_key_once_and_stores_it_hashed(client: Client) -> None:
    tenant = await new_tenant(client, "Bella Pizza")
    assert tenant.api_key.startswith("vgw_")
    from api.context import PG_POOL

    pool = client.app[PG_POOL]
    stored = await pool.fetchval("SELECT api_key_hash FROM tenants WHERE id = $1::uuid",
                                 tenant.id)
    assert tenant.api_key.encode() not in bytes(stored)
    details = await client.get(f"/admin/tenants/{tenant.id}", headers=ADMIN)
    assert details.status == 200
    body = await details.json()
    assert body["name"] == "Bella Pizza"
    assert "api_key" not in body
    assert body["balance"]["available_credits"] == "0.000000"
    assert body["balance"]["paused"] is True


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong-token-xxxxxxxxxx"}, {"Authorization": "x"}]
)
async def test_admin_needs_the_admin_token(client: Client, headers: dict[str, str]) -> None:
    response = await client.post("/admin/tenants", json={"name": "x"}, headers=headers)
    assert response.status == 401
    assert response.content_type == "application/problem+json"
    assert (await response.json())["code"] == "unauthorized"


async def test_a_tenant_key_is_not_an_admin_token(client: Client, tenant: Tenant) -> None:
    response = await client.get(f"/admin/tenants/{tenant.id}", headers=tenant.auth)
    assert response.status == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "name"), ({"name": ""}, "name"), ({"name": 5}, "name"), ({"name": "x" * 201}, "name"),
     ({"name": "ok", "rate_card": "cheap"}, "rate_card"),
     ({"name": "ok", "rate_card": {"meters": {"no_such_meter": {"price": "1"}}}}, "rate_card")],
)
async def test_invalid_tenant_bodies_name_the_field(
    client: Client, body: dict[str, object], field: str
) -> None:
    response = await client.post("/admin/tenants", json=body, headers=ADMIN)
    assert response.status == 422
    problem = await response.json()
    assert problem["code"] == "invalid_field"
    assert problem["field"] == field


async def test_malformed_and_oversized_bodies(client: Client) -> None:
    bad = await client.post("/admin/tenants", data=b"{not json", headers=ADMIN)
    assert bad.status == 400
    assert (await bad.json())["code"] == "malformed_json"
    listed = await client.post("/admin/tenants", json=["a"], headers=ADMIN)
    assert listed.status == 422
    huge = await client.post("/admin/tenants", data=b"{" + b" " * 2_000_000 + b"}",
                             headers=ADMIN)
    assert huge.status == 413
    assert (await huge.json())["code"] == "payload_too_large"


async def test_numbers(client: Client, tenant: Tenant) -> None:
    url = f"/admin/tenants/{tenant.id}/numbers"
    ok = await client.post(url, json={"phone_number": "+14155550100", "kind": "mobile",
                                      "whatsapp_phone_number_id": "1234567890",
                                      "operator_number": "+14155550199"}, headers=ADMIN)
    assert ok.status == 201
    again = await client.post(url, json={"phone_number": "+14155550100", "kind": "local"},
                              headers=ADMIN)
    assert again.status == 409
    assert (await again.json())["code"] == "number_taken"
    for body, field in [({"phone_number": "4155550100", "kind": "local"}, "phone_number"),
                        ({"phone_number": "+14155550101", "kind": "toll"}, "kind"),
                        ({"phone_number": "+14155550101", "kind": "local",
                          "operator_number": "0800"}, "operator_number")]:
        bad = await client.post(url, json=body, headers=ADMIN)
        assert bad.status == 422
        assert (await bad.json())["field"] == field
    details = await (await client.get(f"/admin/tenants/{tenant.id}", headers=ADMIN)).json()
    assert [n["phone_number"] for n in details["numbers"]] == ["+14155550100"]


async def test_unknown_tenant_is_404(client: Client) -> None:
    for path in ("/admin/tenants/not-a-uuid",
                 "/admin/tenants/00000000-0000-0000-0000-000000000000"):
        response = await client.get(path, headers=ADMIN)
        assert response.status == 404
        assert (await response.json())["code"] == "not_found"
    response = await client.post(
        "/admin/tenants/00000000-0000-0000-0000-000000000000/numbers",
        json={"phone_number": "+14155550100", "kind": "local"}, headers=ADMIN)
    assert response.status == 404
