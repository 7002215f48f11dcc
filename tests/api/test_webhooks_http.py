"""Webhooks and alerts through HTTP: an endpoint on a local receiver, a test event
delivered by the worker and verified with `standardwebhooks`, its attempt listed."""

from __future__ import annotations

import asyncio

import asyncpg

from metering.notify.delivery import DeliveryWorker
from tests.api.conftest import Client, new_tenant
from tests.metering.notify_env import Receiver


async def test_webhook_round_trip(billing_client: Client, receiver: Receiver,
                                  pg_pool: asyncpg.Pool) -> None:
    tenant = await new_tenant(billing_client)
    created = await billing_client.post("/v1/webhooks", headers=tenant.auth, json={
        "url": receiver.url, "events": ["success.created", "balance.low"]})
    assert created.status == 201, await created.text()
    endpoint = await created.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["enabled"] is True
    listed = await (await billing_client.get("/v1/webhooks", headers=tenant.auth)).json()
    assert listed["next_cursor"] is None
    assert [(h["id"], "secret" in h) for h in listed["webhooks"]] == [(endpoint["id"], False)]

    queued = await billing_client.post(f"/v1/webhooks/{endpoint['id']}/test",
                                       headers=tenant.auth)
    assert queued.status == 202
    webhook_id = (await queued.json())["webhook_id"]
    worker = DeliveryWorker(pg_pool, allow_private=True)
    try:  # the gateway's own worker may take it first; either way it arrives once
        await worker.deliver_due()
        for _ in range(100):
            if receiver.received:
                break
            await asyncio.sleep(0.05)
    finally:
        await worker.close()
    [event] = receiver.verified(endpoint["secret"])
    assert event["type"] == "webhook.test"
    assert receiver.received[0].headers["webhook-id"] == webhook_id

    deliveries = await (await billing_client.get(
        f"/v1/webhooks/{endpoint['id']}/deliveries", headers=tenant.auth)).json()
    [attempt] = deliveries["deliveries"]
    assert (attempt["webhook_id"], attempt["status"], attempt["attempt"]) == \
        (webhook_id, "succeeded", 1)
    assert attempt["response_code"] == 204 and deliveries["next_cursor"] is None

    deleted = await billing_client.delete(f"/v1/webhooks/{endpoint['id']}", headers=tenant.auth)
    assert deleted.status == 204
    again = await billing_client.delete(f"/v1/webhooks/{endpoint['id']}", headers=tenant.auth)
    assert again.status == 404


async def test_a_private_url_is_refused_without_the_setting(client: Client) -> None:
    tenant = await new_tenant(client)
    refused = await client.post("/v1/webhooks", headers=tenant.auth, json={
        "url": "http://127.0.0.1:8080/hook", "events": ["balance.low"]})
    assert refused.status == 422
    assert (await refused.json())["field"] == "url"


async def test_alert_settings(billing_client: Client) -> None:
    tenant = await new_tenant(billing_client)
    empty = await (await billing_client.get("/v1/alerts", headers=tenant.auth)).json()
    assert empty == {"low_balance_credits": None, "emails": []}
    put = await billing_client.put("/v1/alerts", headers=tenant.auth, json={
        "low_balance_credits": 5000, "emails": ["ops@example.com", "ops@example.com"]})
    assert put.status == 200
    assert await put.json() == {"low_balance_credits": 5000, "emails": ["ops@example.com"]}
    got = await (await billing_client.get("/v1/alerts", headers=tenant.auth)).json()
    assert got == {"low_balance_credits": 5000, "emails": ["ops@example.com"]}
