"""The OpenAPI document is generated from the routes and valid; no route goes undescribed;
the reference page is served from vendored files."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from openapi_spec_validator import validate

from api.openapi import build_document, operations
from api.operations import Reply, add, operation
from gateway.app import create_app
from tests.api.conftest import Client
from tests.gateway.helpers import make_settings

# Every route of the gateway, as the document must list it (the contract's inventory).
EXPECTED = {
    ("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics"),
    ("post", "/admin/tenants"), ("get", "/admin/tenants/{tenant_id}"),
    ("post", "/admin/tenants/{tenant_id}/numbers"),
    ("get", "/admin/tenants/{tenant_id}/agent"), ("put", "/admin/tenants/{tenant_id}/agent"),
    ("post", "/v1/topups"), ("get", "/v1/topups/{topup_id}"), ("get", "/v1/balance"),
    ("get", "/v1/usage"), ("get", "/v1/calls"), ("get", "/v1/calls/{call_sid}"),
    ("post", "/v1/messages"), ("get", "/whatsapp/webhook"), ("post", "/whatsapp/webhook"),
    ("post", "/twilio/sms"), ("post", "/twilio/sms/status"), ("post", "/twilio/voice"),
    ("post", "/twilio/status"), ("get", "/twilio/stream"), ("get", "/dashboard"),
    ("get", "/openapi.json"), ("get", "/docs"),
    ("post", "/admin/plans"), ("get", "/admin/plans"), ("get", "/admin/plans/{plan_id}"),
    ("put", "/admin/tenants/{tenant_id}/plan"), ("post", "/admin/invoices/close"),
    ("post", "/admin/invoices/{invoice_id}/paid"), ("post", "/admin/invoices/{invoice_id}/void"),
    ("get", "/v1/plans"), ("get", "/v1/plan"), ("put", "/v1/plan"), ("post", "/v1/successes"),
    ("get", "/v1/successes"), ("get", "/v1/invoices/upcoming"), ("get", "/v1/invoices"),
    ("get", "/v1/invoices/{invoice_id}"), ("get", "/v1/invoices/{invoice_id}/pdf"),
    ("post", "/v1/webhooks"), ("get", "/v1/webhooks"), ("delete", "/v1/webhooks/{webhook_id}"),
    ("post", "/v1/webhooks/{webhook_id}/test"), ("get", "/v1/webhooks/{webhook_id}/deliveries"),
    ("get", "/v1/alerts"), ("put", "/v1/alerts"),
    ("post", "/auth/login"), ("get", "/auth/session"), ("post", "/auth/logout"),
    ("post", "/auth/password"), ("post", "/auth/password-reset"),
    ("post", "/v1/users"), ("get", "/v1/users"), ("patch", "/v1/users/{user_id}"),
    ("delete", "/v1/users/{user_id}"), ("post", "/v1/api-keys"), ("get", "/v1/api-keys"),
    ("delete", "/v1/api-keys/{key_id}"), ("post", "/v1/api-keys/{key_id}/rotate"),
    ("get", "/v1/audit"), ("get", "/admin/audit"), ("post", "/admin/operators"),
    ("get", "/admin/operators"), ("delete", "/admin/operators/{user_id}"),
    ("get", "/login"), ("get", "/users"), ("get", "/api-keys"), ("get", "/auth.js"),
    ("get", "/v1/kpis"), ("get", "/v1/kpis/commentary"), ("get", "/v1/reports/weekly"),
    ("post", "/admin/tariff-reviews"), ("get", "/admin/tasks"), ("get", "/admin/tasks/{task_id}"),
    ("post", "/admin/tasks/{task_id}/preview"), ("post", "/admin/tasks/{task_id}/offer"),
    ("post", "/admin/tasks/{task_id}/resolve"), ("get", "/admin/templates"),
    ("put", "/admin/templates/{name}"), ("put", "/admin/tenants/{tenant_id}/billing-email"),
    ("get", "/admin/dashboard"),
    ("get", "/v1/conversations"), ("get", "/v1/conversations.csv"),
    ("get", "/v1/conversations/{conversation_id}"), ("get", "/v1/settings"),
    ("patch", "/v1/settings"), ("get", "/admin/tenants/{tenant_id}/settings"),
    ("patch", "/admin/tenants/{tenant_id}/settings"),
    ("post", "/v1/live/token"), ("get", "/v1/live"),
}


def _app() -> web.Application:
    return create_app(make_settings("redis://127.0.0.1:1/0", "postgresql://u@127.0.0.1:1/d",
                                    "unused:", run_sink="false"))


def test_every_route_of_the_gateway_is_described() -> None:
    undescribed = [(route.method, route.resource.canonical if route.resource else "?")
                   for route, op in operations(_app()) if op is None]
    assert undescribed == []


def test_a_route_added_without_a_description_is_found() -> None:
    app = _app()

    async def bare(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/v1/undescribed", bare)
    assert [route.resource.canonical for route, op in operations(app)
            if op is None and route.resource is not None] == ["/v1/undescribed"]
    with pytest.raises(TypeError, match="no @operation"):
        add(app, bare)


def test_a_described_route_appears_in_the_document() -> None:
    app = _app()

    @operation("GET", "/v1/extra/{thing_id}", "A later route", "tenant", security="tenant",
               responses={200: Reply("ok", schema={"type": "object"})})
    async def extra(request: web.Request) -> web.Response:
        return web.json_response({})

    add(app, extra)
    doc = build_document(app)
    op = doc["paths"]["/v1/extra/{thing_id}"]["get"]
    assert op["parameters"][0] == {"name": "thing_id", "in": "path", "required": True,
                                   "schema": {"type": "string"}}
    assert set(op["responses"]) == {"200", "401", "403", "404", "503"}


async def test_the_served_document_is_valid_and_complete(client: Client) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 200
    doc: dict[str, Any] = await response.json()
    validate(doc)  # openapi-spec-validator: raises on any error
    assert doc["openapi"] == "3.1.0"
    listed = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert listed == EXPECTED
    assert "/dev/mail" not in doc["paths"]  # dev only: described, not published
    assert doc["components"]["securitySchemes"]["admin"] == {
        "type": "http", "scheme": "bearer",
        "description": "the operator's admin token (VOICEGW_ADMIN_TOKEN)"}
    assert doc["components"]["securitySchemes"]["tenant"]["scheme"] == "bearer"
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, answer in op["responses"].items():
                code = int(status)
                if code in (101, 204):
                    assert "content" not in answer
                    continue
                assert "content" in answer, (method, path, status)
                for media, body in answer["content"].items():
                    assert body["schema"], (method, path, status)
                    if code >= 400 and media == "application/problem+json":
                        assert body["schema"] == {"$ref": "#/components/schemas/Problem"}
            assert any(200 <= int(s) < 300 or s == "101" for s in op["responses"]), path
    stream = doc["paths"]["/twilio/stream"]["get"]["responses"]["101"]
    assert "websocket" in stream["description"]
    topup = doc["paths"]["/v1/topups"]["post"]
    assert topup["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateTopup"}
    voice = doc["paths"]["/twilio/voice"]["post"]["requestBody"]["content"]
    assert list(voice) == ["application/x-www-form-urlencoded"]


async def test_the_reference_page_uses_only_vendored_files(client: Client) -> None:
    page = await client.get("/docs")
    assert page.status == 200
    html = await page.text()
    assert "/docs/swagger-ui-bundle.js" in html and "https://" not in html
    bundle = await client.get("/docs/swagger-ui-bundle.js")
    assert bundle.status == 200 and bundle.content_type == "text/javascript"
    assert len(await bundle.read()) > 100_000
    assert (await client.get("/docs/secrets.txt")).status == 404


async def test_a_plain_get_of_the_websocket_route_is_its_documented_400(client: Client) -> None:
    response = await client.get("/twilio/stream")
    assert response.status == 400
    assert response.content_type == "application/problem+json"
    assert (await response.json())["code"] == "bad_request"
