"""Operator API: tenants and their numbers (`Authorization: Bearer <admin token>`)."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from api.audit import audit
from api.balance import balance_of
from api.context import CLOCK, CREDIT_STORE, PG_POOL, PUBLIC_URL
from api.errors import NotFound
from api.models import AddNumber, CreateTenant, Number, Tenant, TenantCreated
from api.operations import Reply, add, operation, respond
from api.requests import admin_tenant, parse_body, path_uuid, require_admin
from metering.accounts.users import invite_in
from metering.cards import card_for_tenant
from metering.number_fees import charge_number_fees
from metering.ratecard import load_rate_card, rate_card_to_dict
from metering.tenants import PhoneNumber, add_number, create_tenant, get_tenant, numbers_of

TENANT_ID = {"tenant_id": {"type": "string", "format": "uuid"}}


@operation("POST", "/admin/tenants", "Create a tenant; the API key is shown once", "admin",
           security="admin", body=CreateTenant,
           responses={201: Reply("the tenant, with its API key", TenantCreated)},
           errors={409: ("email_taken",)},
           description="A `rate_card` that cannot be used is a 422 naming `rate_card`, with "
                       "the member inside it in `rate_card_field` (`call_seconds.price`). "
                       "`owner_email` invites the first owner (docs/accounts.md); an address "
                       "that already has an account is a 409 and nothing is created.")
async def create_tenant_handler(request: web.Request) -> web.Response:
    require_admin(request)
    body = await parse_body(request, CreateTenant)
    name = body.name.strip()
    # RateCardError is mapped once, by the problem middleware (api.errors).
    card = None if body.rate_card is None else rate_card_to_dict(load_rate_card(body.rate_card))
    owner_id = None
    async with request.app[PG_POOL].acquire() as conn, conn.transaction():
        # The tenant, its key and its first owner's invite together, or nothing.
        created = await create_tenant(conn, name, card)
        if body.owner_email is not None:
            owner = await invite_in(conn, tenant_id=created.id, email=body.owner_email,
                                    role="owner", link_base=request.app[PUBLIC_URL],
                                    now=request.app[CLOCK]())
            owner_id = str(owner.id)
    await audit(request, "tenant.created", target=str(created.id), tenant_id=created.id,
                changes={"name": name, "owner_email": body.owner_email,
                         "rate_card": "default" if card is None else "custom"})
    return respond(TenantCreated(id=str(created.id), name=name, api_key=created.api_key,
                                 owner_id=owner_id), 201)


@operation("POST", "/admin/tenants/{tenant_id}/numbers",
           "Assign a phone number (billed monthly per the rate card)", "admin",
           security="admin", body=AddNumber, path_params=TENANT_ID,
           responses={201: Reply("the number as assigned", Number)},
           errors={409: ("number_taken",)},
           description="The rest of this month's fee is charged at once, pro rata.")
async def add_number_handler(request: web.Request) -> web.Response:
    tenant_id = await admin_tenant(request)
    pool = request.app[PG_POOL]
    body = await parse_body(request, AddNumber)
    number = PhoneNumber(body.phone_number, tenant_id, body.kind, body.whatsapp_phone_number_id,
                         body.operator_number)
    await add_number(pool, number)  # DuplicateNumber: 409 number_taken (api.errors)
    await audit(request, "number.added", target=number.phone_number, tenant_id=tenant_id,
                changes={"kind": number.kind})
    # After commit: the rest of this month, pro rata (idempotent; the hourly job retries).
    now = dt.datetime.now(dt.UTC)
    await charge_number_fees(pool, request.app[CREDIT_STORE],
                             await card_for_tenant(pool, tenant_id), now.date(),
                             int(now.timestamp() * 1000), tenant=str(tenant_id))
    return respond(_number(number), 201)


def _number(number: PhoneNumber) -> Number:
    return Number(phone_number=number.phone_number, kind=number.kind,  # type: ignore[arg-type]
                  whatsapp_phone_number_id=number.whatsapp_phone_number_id,
                  operator_number=number.operator_number)


@operation("GET", "/admin/tenants/{tenant_id}", "A tenant, its numbers and balance", "admin",
           security="admin", path_params=TENANT_ID,
           responses={200: Reply("the tenant", Tenant)})
async def get_tenant_handler(request: web.Request) -> web.Response:
    require_admin(request)
    tenant_id = path_uuid(request, "tenant_id")
    pool = request.app[PG_POOL]
    row = await get_tenant(pool, tenant_id)
    if row is None:
        raise NotFound("no such tenant")
    numbers = await numbers_of(pool, tenant_id)
    return respond(Tenant(
        id=str(row["id"]), name=row["name"], created_at=row["created_at"].isoformat(),
        rate_card="default" if row["rate_card"] is None else "custom",
        numbers=[_number(n) for n in numbers], balance=await balance_of(request.app, tenant_id)))


def add_routes(app: web.Application) -> None:
    add(app, create_tenant_handler, get_tenant_handler, add_number_handler)
