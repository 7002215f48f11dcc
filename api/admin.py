"""Operator API: tenants and their numbers (`Authorization: Bearer <admin token>`)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from aiohttp import web

from api.balance import balance_json
from api.context import CREDIT_STORE, PG_POOL
from api.problems import Problem, invalid_field
from api.requests import (
    admin_tenant,
    json_object,
    optional_str,
    path_uuid,
    require_admin,
    required_str,
)
from metering.cards import card_for_tenant
from metering.number_fees import charge_number_fees
from metering.ratecard import RateCardError, load_rate_card, rate_card_to_dict
from metering.tenants import (
    DuplicateNumber,
    PhoneNumber,
    add_number,
    create_tenant,
    get_tenant,
    numbers_of,
)

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


async def create_tenant_handler(request: web.Request) -> web.Response:
    require_admin(request)
    body = await json_object(request)
    name = required_str(body, "name", 200).strip()
    card_json: dict[str, Any] | None = None
    if body.get("rate_card") is not None:
        if not isinstance(body["rate_card"], dict):
            raise invalid_field("rate_card", "must be an object")
        try:
            card_json = rate_card_to_dict(load_rate_card(body["rate_card"]))
        except RateCardError as exc:
            problem = invalid_field("rate_card", str(exc))
            problem.extra["rate_card_field"] = exc.field  # "call_seconds.price"
            raise problem from exc
    created = await create_tenant(request.app[PG_POOL], name, card_json)
    return web.json_response(
        {"id": str(created.id), "name": name, "api_key": created.api_key}, status=201
    )


def _e164(body: dict[str, Any], field: str, required: bool) -> str | None:
    value = optional_str(body, field, 16)
    if value is None:
        if required:
            raise invalid_field(field, "is required")
        return None
    if not E164.match(value):
        raise invalid_field(field, "must be an E.164 number such as +14155550123")
    return value


async def add_number_handler(request: web.Request) -> web.Response:
    tenant_id = await admin_tenant(request)
    pool = request.app[PG_POOL]
    body = await json_object(request)
    phone_number = _e164(body, "phone_number", required=True)
    assert phone_number is not None
    kind = body.get("kind")
    if kind not in ("local", "mobile"):
        raise invalid_field("kind", 'must be "local" or "mobile"')
    whatsapp_id = optional_str(body, "whatsapp_phone_number_id", 64)
    number = PhoneNumber(phone_number, tenant_id, kind, whatsapp_id,
                         _e164(body, "operator_number", required=False))
    try:
        await add_number(pool, number)
    except DuplicateNumber as exc:
        raise Problem(409, "number_taken", "that number or WhatsApp id is already held") from exc
    # After commit: the rest of this month, pro rata (idempotent; the hourly job retries).
    now = dt.datetime.now(dt.UTC)
    await charge_number_fees(pool, request.app[CREDIT_STORE],
                             await card_for_tenant(pool, tenant_id), now.date(),
                             int(now.timestamp() * 1000), tenant=str(tenant_id))
    return web.json_response(_number_json(number), status=201)


def _number_json(number: PhoneNumber) -> dict[str, Any]:
    return {
        "phone_number": number.phone_number,
        "kind": number.kind,
        "whatsapp_phone_number_id": number.whatsapp_phone_number_id,
        "operator_number": number.operator_number,
    }


async def get_tenant_handler(request: web.Request) -> web.Response:
    require_admin(request)
    tenant_id = path_uuid(request, "tenant_id")
    pool = request.app[PG_POOL]
    row = await get_tenant(pool, tenant_id)
    if row is None:
        raise Problem(404, "not_found", "no such tenant")
    numbers = await numbers_of(pool, tenant_id)
    return web.json_response(
        {
            "id": str(row["id"]),
            "name": row["name"],
            "created_at": row["created_at"].isoformat(),
            "rate_card": "default" if row["rate_card"] is None else "custom",
            "numbers": [_number_json(n) for n in numbers],
            "balance": await balance_json(request.app, tenant_id),
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/admin/tenants", create_tenant_handler)
    app.router.add_get("/admin/tenants/{tenant_id}", get_tenant_handler)
    app.router.add_post("/admin/tenants/{tenant_id}/numbers", add_number_handler)
