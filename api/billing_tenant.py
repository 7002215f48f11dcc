"""Tenant billing API (`Authorization: Bearer <api key>`): the plans on offer, the tenant's
plan, successes from its own systems, and its invoices with their PDFs (docs/billing.md).

Another tenant's invoice answers 404, as a missing one does.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from aiohttp import web

from api.audit import audit
from api.billing_admin import (
    INVOICE_ID,
    changed_answer,
    invoice_answer,
    plan_page,
    tenant_plan_answer,
)
from api.billing_models import (
    ChoosePlan,
    CreateSuccess,
    Invoice,
    InvoiceList,
    ListQuery,
    PlanChanged,
    PlanList,
    Success,
    SuccessList,
    SuccessQuery,
    TenantPlan,
)
from api.context import CLOCK, CREDIT_STORE, INVOICE_ISSUER, PG_POOL
from api.errors import InvalidField
from api.operations import Header, Reply, add, operation, respond
from api.requests import parse_body, parse_query, path_uuid, require_tenant
from api.tenant_api import MAX_IDEMPOTENCY_KEY, idempotency_key
from metering.billing import invoices, subscriptions, successes
from metering.billing.pdf import render_invoice_pdf
from metering.tenants import get_tenant

# Times before this are typos (and far-away years overflow time zone arithmetic).
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def rfc3339(field: str, value: str | None) -> dt.datetime | None:
    """An RFC 3339 time with an offset, from 2000 on, or a 422 naming `field`."""
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("no offset")
        moment = moment.astimezone(dt.UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidField(field, "must be an RFC 3339 time with an offset "
                                  "(2026-11-05T10:00:00Z)") from exc
    if moment < EARLIEST:
        raise InvalidField(field, "must not be before 2000")
    return moment


@operation("GET", "/v1/plans", "The plans you can choose", "billing", security="tenant",
           query=ListQuery, responses={200: Reply("a page of plans", PlanList)})
async def list_plans(request: web.Request) -> web.Response:
    await require_tenant(request)
    return respond(await plan_page(request))


@operation("GET", "/v1/plan", "Your plan now and the one waiting for the next cycle",
           "billing", security="tenant",
           responses={200: Reply("current and pending (null without a plan)", TenantPlan)})
async def get_plan(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    view = await subscriptions.tenant_plan(request.app[PG_POOL], tenant_id, request.app[CLOCK]())
    return respond(tenant_plan_answer(view))


@operation("PUT", "/v1/plan", "Choose your plan (a change applies from the next cycle)",
           "billing", security="tenant", body=ChoosePlan,
           responses={200: Reply("your plan after the change", PlanChanged)},
           description="Without a plan yet, the plan starts at once (setup fee, plan credits). "
                       "With one, the change is pending until the next calendar month (UTC); "
                       "choosing the current plan again drops a pending change.")
async def put_plan(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    body = await parse_body(request, ChoosePlan)
    done = await subscriptions.subscribe(request.app[PG_POOL], request.app[CREDIT_STORE],
                                         tenant_id=tenant_id, plan_id=body.plan_id,
                                         now=request.app[CLOCK]())
    await audit(request, "plan.changed", target=body.plan_id,
                changes={"plan_id": body.plan_id, "change": done.change.value})
    return respond(changed_answer(done))


@operation(
    "POST", "/v1/successes", "Report a successful outcome, once per Idempotency-Key",
    "billing", security="tenant", body=CreateSuccess,
    headers=(Header("Idempotency-Key", "one key per success; a retry sends the same key",
                    schema={"type": "string", "minLength": 1,
                            "maxLength": MAX_IDEMPOTENCY_KEY}),),
    responses={201: Reply("recorded", Success),
               200: Reply("the same key and body again: the first answer", Success)},
    errors={400: ("idempotency_key_required", "invalid_idempotency_key"),
            409: ("idempotency_key_reused",)},
    description="Billed like the agent's own successes (source `api`), on the invoice of "
                "the cycle it is recorded in. The same key with another body: 409.")
async def create_success(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    key = idempotency_key(request)
    body = await parse_body(request, CreateSuccess)
    done = await successes.record_api_success(
        request.app[PG_POOL], tenant_id=tenant_id, kind=body.kind, idempotency_key=key,
        now=request.app[CLOCK](), reference=body.reference, customer=body.customer,
        occurred_at=rfc3339("occurred_at", body.occurred_at))
    return respond(Success(**done.success.to_json()), 201 if done.created else 200)


@operation("GET", "/v1/successes", "Your successes (agent and API), newest first", "billing",
           security="tenant", query=SuccessQuery,
           responses={200: Reply("a page of successes", SuccessList)})
async def list_successes(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    query = parse_query(request, SuccessQuery)
    page = await successes.list_successes(
        request.app[PG_POOL], tenant_id=tenant_id, since=rfc3339("from", query.from_),
        until=rfc3339("to", query.to), kind=query.kind, cursor=query.cursor, limit=query.limit)
    return respond(SuccessList(successes=[Success(**s.to_json()) for s in page.items],
                               next_cursor=page.next_cursor))


@operation("GET", "/v1/invoices/upcoming", "The running cycle's draft invoice, live", "billing",
           security="tenant", responses={200: Reply("the draft", Invoice)},
           errors={404: ("not_found",)},
           description="404 for a tenant without a plan (prepaid top-ups only).")
async def upcoming_invoice(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    invoice = await invoices.upcoming_invoice(request.app[PG_POOL], tenant_id=tenant_id,
                                              now=request.app[CLOCK]())
    return respond(invoice_answer(invoice))


@operation("GET", "/v1/invoices", "Your invoices, newest period first", "billing",
           security="tenant", query=ListQuery,
           responses={200: Reply("a page of invoices", InvoiceList)})
async def list_invoices(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    query = parse_query(request, ListQuery)
    page = await invoices.list_invoices(request.app[PG_POOL], tenant_id=tenant_id,
                                        cursor=query.cursor, limit=query.limit)
    return respond(InvoiceList(invoices=[invoice_answer(i) for i in page.items],
                               next_cursor=page.next_cursor))


async def _invoice(request: web.Request) -> invoices.Invoice:
    tenant_id = await require_tenant(request)
    return await invoices.get_invoice(request.app[PG_POOL], tenant_id=tenant_id,
                                      invoice_id=path_uuid(request, "invoice_id"))


@operation("GET", "/v1/invoices/{invoice_id}", "One of your invoices", "billing",
           security="tenant", path_params=INVOICE_ID,
           responses={200: Reply("the invoice", Invoice)})
async def get_invoice(request: web.Request) -> web.Response:
    return respond(invoice_answer(await _invoice(request)))


@operation("GET", "/v1/invoices/{invoice_id}/pdf", "One of your invoices as PDF", "billing",
           security="tenant", path_params=INVOICE_ID,
           responses={200: Reply("the PDF (a draft is marked DRAFT)", media="application/pdf",
                                 schema={"type": "string", "format": "binary"})})
async def get_invoice_pdf(request: web.Request) -> web.Response:
    invoice = await _invoice(request)
    tenant = await get_tenant(request.app[PG_POOL], invoice.tenant_id)
    name = "" if tenant is None else str(tenant["name"])
    # A few milliseconds of CPU per page: off the event loop.
    pdf = await asyncio.to_thread(render_invoice_pdf, invoice, tenant_name=name,
                                  issuer_name=request.app[INVOICE_ISSUER])
    filename = f"{invoice.number or f'draft-{invoice.period}'}.pdf"
    return web.Response(body=pdf, content_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{filename}"', "Cache-Control": "no-store"})


def add_routes(app: web.Application) -> None:
    # `upcoming` before `{invoice_id}`: the router tries routes in the order added.
    add(app, list_plans, get_plan, put_plan, create_success, list_successes,
        upcoming_invoice, list_invoices, get_invoice, get_invoice_pdf)
