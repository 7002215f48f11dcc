"""Tenant webhooks and balance alerts (`Authorization: Bearer <api key>`), docs/webhooks.md
and docs/alerts.md.

`POST /v1/webhooks` answers the signing secret once; the URL rule (no loopback, private
or link-local address) is lifted by VOICEGW_WEBHOOKS_ALLOW_PRIVATE. Another tenant's
endpoint answers 404, as a missing one does.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from api.audit import audit
from api.billing_models import ListQuery, StrictRequest
from api.context import CREDIT_STORE, PG_POOL, WEBHOOKS_ALLOW_PRIVATE
from api.models import Answer, Instant
from api.operations import Reply, add, operation, respond
from api.requests import parse_body, parse_query, path_uuid, require_tenant
from metering.bounds import MAX_BALANCE_CREDITS
from metering.notify import alerts, deliveries, endpoints
from metering.notify.events import EVENT_TYPES
from metering.notify.urls import MAX_URL

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
WEBHOOK_ID = {"webhook_id": {"type": "string", "format": "uuid"}}


class CreateWebhook(StrictRequest):
    url: str = Field(min_length=8, max_length=MAX_URL, examples=["https://example.com/hooks"])
    events: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES))


class Webhook(Answer):
    id: str
    url: str
    events: list[str]
    enabled: bool = Field(description="false once it failed for 3 days (the tenant is mailed)")
    created_at: Instant
    disabled_at: Instant | None


class WebhookCreated(Webhook):
    secret: str = Field(description="whsec_...: shown once; verifies the signatures")


class WebhookList(Answer):
    webhooks: list[Webhook]
    next_cursor: str | None


class TestQueued(Answer):
    webhook_id: str = Field(description="the `webhook-id` header of the test message")


class Delivery(Answer):
    id: int
    webhook_id: str
    event_type: str
    attempt: int
    status: Literal["succeeded", "failed"]
    response_code: int | None
    error: str | None
    duration_ms: int
    attempted_at: Instant


class DeliveryList(Answer):
    deliveries: list[Delivery]
    next_cursor: str | None


class AlertSettings(StrictRequest):
    low_balance_credits: int | None = Field(
        ge=1, le=MAX_BALANCE_CREDITS,
        description="balance.low below this many credits; null: no low-balance alert")
    emails: list[str] = Field(max_length=alerts.MAX_EMAILS,
                              description="also told by e-mail (every alert)")


class Alerts(Answer):
    low_balance_credits: int | None
    emails: list[str]


def _webhook(endpoint: endpoints.Endpoint) -> Webhook:
    return Webhook(**_fields(endpoint))


def _fields(endpoint: endpoints.Endpoint) -> dict[str, Any]:
    return {"id": str(endpoint.id), "url": endpoint.url, "events": endpoint.events,
            "enabled": endpoint.enabled, "created_at": endpoint.created_at.isoformat(),
            "disabled_at": None if endpoint.disabled_at is None
            else endpoint.disabled_at.isoformat()}


async def _endpoint(request: web.Request) -> tuple[uuid.UUID, uuid.UUID]:
    tenant_id = await require_tenant(request)
    return tenant_id, path_uuid(request, "webhook_id")


@operation("POST", "/v1/webhooks", "Add a webhook endpoint; its secret is shown once",
           "webhooks", security="tenant", body=CreateWebhook,
           responses={201: Reply("the endpoint with its secret", WebhookCreated)},
           description="A URL that resolves to a loopback, private or link-local address is "
                       "a 422 naming `url` (unless VOICEGW_WEBHOOKS_ALLOW_PRIVATE). At most "
                       f"{endpoints.MAX_ENDPOINTS} endpoints per tenant.")
async def create_webhook(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    body = await parse_body(request, CreateWebhook)
    created = await endpoints.create_endpoint(
        request.app[PG_POOL], tenant_id, body.url, body.events,
        allow_private=request.app[WEBHOOKS_ALLOW_PRIVATE])
    await audit(request, "webhook.created", target=str(created.endpoint.id),
                changes={"url": created.endpoint.url, "events": created.endpoint.events})
    return respond(WebhookCreated(**_fields(created.endpoint), secret=created.secret), 201)


@operation("GET", "/v1/webhooks", "Your webhook endpoints, oldest first", "webhooks",
           security="tenant", query=ListQuery,
           responses={200: Reply("a page of endpoints (no secrets)", WebhookList)})
async def list_webhooks(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    query = parse_query(request, ListQuery)
    page = await endpoints.list_endpoints(request.app[PG_POOL], tenant_id, cursor=query.cursor,
                                          limit=query.limit)
    return respond(WebhookList(webhooks=[_webhook(e) for e in page.items],
                               next_cursor=page.next_cursor))


@operation("DELETE", "/v1/webhooks/{webhook_id}", "Delete an endpoint and its pending messages",
           "webhooks", security="tenant", path_params=WEBHOOK_ID,
           responses={204: Reply("deleted", media="", schema=None)})
async def delete_webhook(request: web.Request) -> web.Response:
    tenant_id, endpoint_id = await _endpoint(request)
    await endpoints.delete_endpoint(request.app[PG_POOL], tenant_id, endpoint_id)
    await audit(request, "webhook.deleted", target=str(endpoint_id))
    return web.Response(status=204)


@operation("POST", "/v1/webhooks/{webhook_id}/test", "Send a `webhook.test` event now",
           "webhooks", security="tenant", path_params=WEBHOOK_ID,
           responses={202: Reply("queued; see the endpoint's deliveries", TestQueued)})
async def test_webhook(request: web.Request) -> web.Response:
    tenant_id, endpoint_id = await _endpoint(request)
    queued = await endpoints.send_test(request.app[PG_POOL], tenant_id, endpoint_id)
    await audit(request, "webhook.tested", target=str(endpoint_id))
    return respond(TestQueued(webhook_id=queued), 202)


@operation("GET", "/v1/webhooks/{webhook_id}/deliveries",
           "Every delivery attempt to an endpoint, newest first", "webhooks",
           security="tenant", path_params=WEBHOOK_ID, query=ListQuery,
           responses={200: Reply("a page of attempts", DeliveryList)})
async def list_deliveries(request: web.Request) -> web.Response:
    tenant_id, endpoint_id = await _endpoint(request)
    query = parse_query(request, ListQuery)
    page = await deliveries.list_deliveries(request.app[PG_POOL], tenant_id, endpoint_id,
                                            cursor=query.cursor, limit=query.limit)
    return respond(DeliveryList(
        deliveries=[Delivery(**{**a.__dict__, "attempted_at": a.attempted_at.isoformat()})
                    for a in page.items], next_cursor=page.next_cursor))


@operation("GET", "/v1/alerts", "Your balance alert settings", "webhooks", security="tenant",
           responses={200: Reply("the settings", Alerts)})
async def get_alerts(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    found = await alerts.get_alerts(request.app[PG_POOL], tenant_id)
    return respond(Alerts(low_balance_credits=found.low_balance_credits, emails=found.emails))


@operation("PUT", "/v1/alerts", "Set the low-balance threshold and the addresses mailed",
           "webhooks", security="tenant", body=AlertSettings,
           responses={200: Reply("the settings as stored", Alerts)},
           description="`balance.low` once per downward crossing of the threshold; "
                       "`balance.depleted` / `balance.restored` when paused / running again.")
async def put_alerts(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    body = await parse_body(request, AlertSettings)
    saved = await alerts.put_alerts(request.app[PG_POOL], request.app[CREDIT_STORE], tenant_id,
                                    low_balance_credits=body.low_balance_credits,
                                    emails=body.emails)
    await audit(request, "alerts.changed", target=str(tenant_id),
                changes={"low_balance_credits": saved.low_balance_credits,
                         "emails": saved.emails})
    return respond(Alerts(low_balance_credits=saved.low_balance_credits, emails=saved.emails))


def add_routes(app: web.Application) -> None:
    add(app, create_webhook, list_webhooks, delete_webhook, test_webhook, list_deliveries,
        get_alerts, put_alerts)
