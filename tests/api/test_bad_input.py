"""Ordinary bad input is a 4xx with a precise problem, never a 500: header bytes that are
not UTF-8, dates outside the supported range, webhook bodies that are not forms, and a
method a route does not allow."""

from __future__ import annotations

import asyncio

import pytest

from gateway.app import create_app
from tests.api.conftest import ADMIN, Client, ClientFactory, Tenant
from tests.gateway.helpers import make_settings

WEBHOOKS = ("/twilio/voice", "/twilio/status", "/twilio/sms", "/twilio/sms/status")


async def raw_request(client: Client, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Sends bytes no HTTP client library would (headers that are not UTF-8); returns
    the status and the whole answer."""
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        writer.write(head + b"\r\nConnection: close\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
        async with asyncio.timeout(10):
            answer = await reader.read()
    finally:
        writer.close()
    return int(answer.split(b" ", 2)[1]), answer


@pytest.mark.parametrize("path", ["/v1/balance", "/admin/tenants/" + "0" * 8 + "-0000-0000"
                                  "-0000-" + "0" * 12])
@pytest.mark.parametrize("token", [b"vgw_\xff\xfe", b"\xc3\x28", b"test-admin-token-\xe9"])
async def test_an_authorization_header_of_any_bytes_is_401(
        client: Client, tenant: Tenant, path: str, token: bytes) -> None:
    status, answer = await raw_request(
        client, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "
        + token)
    assert status == 401, answer
    assert b'"code":"unauthorized"' in answer


@pytest.mark.parametrize(("query", "field"), [
    ("from=0001-01-01T00:00:00%2B23:59&to=0001-01-02", "from"),
    ("from=0001-01-01&to=0001-01-02", "from"),
    ("from=9999-12-01&to=9999-12-31", "from"),
    ("from=9999-12-31T23:59:59-23:59&to=9999-12-31", "from"),
    ("from=1999-12-31T23:59:59Z&to=2000-01-02", "from"),
    ("from=2099-12-01&to=9999-12-31T23:59:59", "to"),
    ("from=2099-12-01&to=2100-01-01T00:00:01Z", "to"),
    ("from=2099-12-31T12:00:00Z&to=2100-01-01T00:00:00-00:01", "to"),
])
async def test_usage_dates_outside_the_supported_range_are_422(
        client: Client, tenant: Tenant, query: str, field: str) -> None:
    response = await client.get(f"/v1/usage?{query}", headers=tenant.auth)
    assert response.status == 422, await response.text()
    body = await response.json()
    assert (body["code"], body["field"]) == ("invalid_field", field)


async def test_usage_dates_at_the_bounds_are_accepted_and_shown_in_utc(
        client: Client, tenant: Tenant) -> None:
    low = await client.get("/v1/usage?from=2000-01-01&to=2000-02-01", headers=tenant.auth)
    assert low.status == 200, await low.text()
    high = await client.get("/v1/usage?from=2099-12-31T22:00:00-01:00&to=2100-01-01",
                            headers=tenant.auth)
    assert high.status == 200, await high.text()
    assert (await high.json())["from"] == "2099-12-31T23:00:00+00:00"


@pytest.mark.parametrize("path", WEBHOOKS)
async def test_a_multipart_webhook_without_a_boundary_is_415(client: Client, path: str) -> None:
    response = await client.post(path, data=b"CallSid=CA1&CallStatus=ringing",
                                 headers={"Content-Type": "multipart/form-data"})
    assert response.status == 415, await response.text()
    assert (await response.json())["code"] == "unsupported_media_type"


@pytest.mark.parametrize("path", WEBHOOKS)
@pytest.mark.parametrize(("content_type", "body"), [
    ("application/x-www-form-urlencoded", b"CallSid=CA\xff\xfe&To=%2B1"),
    ("application/x-www-form-urlencoded; charset=no-such-charset", b"CallSid=CA1"),
    ("application/x-www-form-urlencoded", b"&".join(b"f%d=1" % i for i in range(500))),
])
async def test_a_webhook_body_that_is_not_a_form_is_400(
        client: Client, path: str, content_type: str, body: bytes) -> None:
    response = await client.post(path, data=body, headers={"Content-Type": content_type})
    assert 400 <= response.status < 500, await response.text()  # 401/403: read, not signed
    if response.status == 400:
        assert (await response.json())["code"] == "malformed_payload"


async def test_the_whatsapp_webhook_refuses_a_multipart_body_with_a_4xx(
        aiohttp_client: ClientFactory, redis_url: str, database_url: str,
        key_prefix: str) -> None:
    settings = make_settings(redis_url, database_url, key_prefix, run_sink="false",
                             whatsapp_app_secret="app-secret")
    client = await aiohttp_client(create_app(settings))
    for headers in ({}, {"X-Hub-Signature-256": "sha256=\u00e9"}):
        response = await client.post("/whatsapp/webhook", data=b"--x\r\n",
                                     headers={"Content-Type": "multipart/form-data", **headers})
        assert 400 <= response.status < 500, await response.text()


async def test_a_405_says_which_methods_are_allowed(client: Client) -> None:
    response = await client.delete("/v1/balance")
    assert response.status == 405
    assert (await response.json())["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]
    assert response.headers["Content-Type"] == "application/problem+json"
    admin = await client.put("/admin/tenants", headers=ADMIN)
    assert admin.status == 405
    assert admin.headers["Allow"] == "POST"
