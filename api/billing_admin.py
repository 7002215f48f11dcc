"""Operator billing API (`Authorization: Bearer <admin token>`): plans, a tenant's plan,
closing ended periods, and marking invoices paid or void (docs/billing.md).

Each handler reads its input with a model, calls one `metering.billing` service at the
gateway's clock (`api.context.CLOCK`) and answers its model; billing errors are mapped by
the problem middleware (`api.errors.domain_problem`).
"""

from __future__ import annotations

import datetime as dt
import uuid

from aiohttp import web

from api.admin import TENANT_ID
from api.audit import audit
from api.billing_models import (
    AssignPlan,
    ClosePeriod,
    CreatePlan,
    FinalizedInvoice,
    Invoice,
    ListQuery,
    PeriodClosed,
    Plan,
    PlanChanged,
    PlanList,
    PlanTerm,
    TenantPlan,
)
from api.context import CLOCK, CREDIT_STORE, INVOICE_ISSUER, PG_POOL
from api.errors import InvalidField
from api.operations import Reply, add, operation, respond
from api.requests import admin_tenant, parse_body, parse_query, path_uuid, require_admin
from metering.billing import closing, invoices, plans, subscriptions

PLAN_ID = {"plan_id": {"type": "string", "maxLength": 63}}
INVOICE_ID = {"invoice_id": {"type": "string", "format": "uuid"}}


def plan_answer(plan: plans.Plan) -> Plan:
    return Plan(**plan.to_json())


def term_answer(term: subscriptions.PlanTerm | None) -> PlanTerm | None:
    if term is None:
        return None
    return PlanTerm(**term.plan.to_json(), effective_from=term.effective_from.isoformat())


def tenant_plan_answer(view: subscriptions.TenantPlan) -> TenantPlan:
    return TenantPlan(current=term_answer(view.current), pending=term_answer(view.pending))


def changed_answer(done: subscriptions.Subscribed) -> PlanChanged:
    view = tenant_plan_answer(done.plan)
    return PlanChanged(change=done.change.value, current=view.current,
                       pending=view.pending)


def invoice_answer(invoice: invoices.Invoice) -> Invoice:
    return Invoice(**invoice.to_json())


async def plan_page(request: web.Request) -> PlanList:
    query = parse_query(request, ListQuery)
    page = await plans.list_plans(request.app[PG_POOL], cursor=query.cursor, limit=query.limit)
    return PlanList(plans=[plan_answer(p) for p in page.items], next_cursor=page.next_cursor)


@operation("POST", "/admin/plans", "Create a plan, or a new version of it", "billing-admin",
           security="admin", body=CreatePlan,
           responses={201: Reply("the plan as created (version 1, or a new version)", Plan),
                      200: Reply("the same definition again: its latest version", Plan)},
           description="A plan is never changed in place: another definition under an "
                       "existing id is a new version, which subscribers bill from their next "
                       "cycle. A float, a negative amount, an unknown currency or more "
                       "decimals than the currency has is a 422 naming the member.")
async def create_plan(request: web.Request) -> web.Response:
    require_admin(request)
    body = await parse_body(request, CreatePlan)
    done = await plans.create_plan(request.app[PG_POOL], plans.PlanInput(**body.model_dump()),
                                   now=request.app[CLOCK]())
    if done.created:
        await audit(request, "plan.created", target=done.plan.id,
                    changes={"version": done.plan.version})
    return respond(plan_answer(done.plan), 201 if done.created else 200)


@operation("GET", "/admin/plans", "Every plan (its latest version), by id", "billing-admin",
           security="admin", query=ListQuery, responses={200: Reply("a page of plans", PlanList)})
async def list_plans(request: web.Request) -> web.Response:
    require_admin(request)
    return respond(await plan_page(request))


@operation("GET", "/admin/plans/{plan_id}", "A plan's latest version", "billing-admin",
           security="admin", path_params=PLAN_ID, responses={200: Reply("the plan", Plan)})
async def get_plan(request: web.Request) -> web.Response:
    require_admin(request)
    plan = await plans.get_plan(request.app[PG_POOL], request.match_info["plan_id"])
    return respond(plan_answer(plan))


def _start(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidField("start", "is not a date YYYY-MM-DD") from exc


@operation("PUT", "/admin/tenants/{tenant_id}/plan", "Subscribe a tenant, or change its plan",
           "billing-admin", security="admin", body=AssignPlan, path_params=TENANT_ID,
           responses={200: Reply("the tenant's plan after the change", PlanChanged)},
           description="The first subscription starts at once (or on `start`, a day of the "
                       "running cycle) and bills the setup fee once; a change takes effect "
                       "at the next cycle (calendar month, UTC).")
async def assign_plan(request: web.Request) -> web.Response:
    tenant_id = await admin_tenant(request)
    body = await parse_body(request, AssignPlan)
    done = await subscriptions.subscribe(
        request.app[PG_POOL], request.app[CREDIT_STORE], tenant_id=tenant_id,
        plan_id=body.plan_id, now=request.app[CLOCK](), start=_start(body.start))
    await audit(request, "plan.changed", target=body.plan_id, tenant_id=tenant_id,
                changes={"plan_id": body.plan_id, "change": done.change.value,
                         "start": body.start})
    return respond(changed_answer(done))


@operation("POST", "/admin/invoices/close", "Finalize every invoice of an ended period",
           "billing-admin", security="admin", body=ClosePeriod,
           responses={200: Reply("what this call finalized (nothing when done before)",
                                 PeriodClosed)},
           description="Idempotent. A running or future period is a 422 naming `period`.")
async def close_period(request: web.Request) -> web.Response:
    require_admin(request)
    body = await parse_body(request, ClosePeriod)
    result = await closing.close_period(request.app[PG_POOL], period=body.period,
                                        now=request.app[CLOCK](),
                                        issuer=request.app[INVOICE_ISSUER])
    if result.finalized:
        await audit(request, "invoice.closed", target=str(result.period),
                    changes={"finalized": [item.number for item in result.finalized]})
    return respond(PeriodClosed(period=str(result.period), finalized=[
        FinalizedInvoice(invoice_id=str(item.invoice_id), number=item.number)
        for item in result.finalized]))


def _invoice_id(request: web.Request) -> uuid.UUID:
    require_admin(request)
    return path_uuid(request, "invoice_id")


@operation("POST", "/admin/invoices/{invoice_id}/paid", "Mark a finalized invoice paid",
           "billing-admin", security="admin", path_params=INVOICE_ID,
           responses={200: Reply("the invoice", Invoice)}, errors={409: ("invalid_transition",)},
           description="Again on a paid invoice: unchanged. A draft or void invoice: 409.")
async def mark_paid(request: web.Request) -> web.Response:
    invoice_id = _invoice_id(request)
    invoice = await invoices.mark_paid(request.app[PG_POOL], invoice_id=invoice_id,
                                       now=request.app[CLOCK]())
    await audit(request, "invoice.paid", target=str(invoice_id), tenant_id=invoice.tenant_id,
                changes={"number": invoice.number})
    return respond(invoice_answer(invoice))


@operation("POST", "/admin/invoices/{invoice_id}/void", "Void an invoice (it keeps its number)",
           "billing-admin", security="admin", path_params=INVOICE_ID,
           responses={200: Reply("the invoice", Invoice)}, errors={409: ("invalid_transition",)},
           description="A finalized or paid invoice becomes void; its successes are never "
                       "billed again. A draft: 409 (it is finalized at its cycle's end).")
async def void_invoice(request: web.Request) -> web.Response:
    invoice_id = _invoice_id(request)
    invoice = await invoices.void_invoice(request.app[PG_POOL], invoice_id=invoice_id,
                                          now=request.app[CLOCK]())
    await audit(request, "invoice.voided", target=str(invoice_id),
                tenant_id=invoice.tenant_id, changes={"number": invoice.number})
    return respond(invoice_answer(invoice))


def add_routes(app: web.Application) -> None:
    add(app, create_plan, list_plans, get_plan, assign_plan, close_period, mark_paid,
        void_invoice)
