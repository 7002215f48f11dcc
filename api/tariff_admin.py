"""Operator tariff review API (`Authorization: Bearer <admin token>`): the monthly review
on demand, its tasks (offer, resolve), the offer templates, the tenant's billing e-mail,
and the operator page `/admin/dashboard` (docs/tariffs.md)."""

from __future__ import annotations

import uuid
from importlib import resources
from typing import Any

from aiohttp import web

from api.admin import TENANT_ID
from api.audit import audit
from api.context import CLOCK, CREDIT_STORE, MAILER, PG_POOL
from api.operations import Reply, add, operation, respond
from api.requests import admin_tenant, parse_body, parse_query, path_uuid, require_admin
from api.tariff_models import (
    BillingEmail,
    RenderedOffer,
    ResolveTask,
    ReviewList,
    ReviewResult,
    RunReview,
    SendOffer,
    Task,
    TaskList,
    TaskQuery,
    Template,
    TemplateList,
    TemplateText,
    TenantBillingEmail,
)
from metering.billing import reviews, tasks
from metering.tenants import set_billing_email

TASK_ID = {"task_id": {"type": "string", "format": "uuid"}}
TEMPLATE_NAME = {"name": {"type": "string", "enum": [
    "cost_cap_offer", "cost_cap_follow_up", "flat_rate_offer", "flat_rate_follow_up",
    "per_call_offer", "per_call_follow_up"]}}
_PAGE = resources.files("api") / "static" / "admin_dashboard.html"


def task_answer(task: tasks.Task) -> Task:
    return Task(**task.to_json())


@operation("POST", "/admin/tariff-reviews", "Review tariffs' profitability for a month",
           "tariffs", security="admin", body=RunReview,
           responses={200: Reply("every tenant on a cost-cap, flat-rate or per-call tariff",
                                 ReviewList)},
           description="A month not yet ended is preliminary and opens no task unless "
                       "`open_tasks`; at most one task per tenant, tariff and period. A "
                       "future period is a 422 naming `period`.")
async def run_review(request: web.Request) -> web.Response:
    require_admin(request)
    body = await parse_body(request, RunReview)
    results = await reviews.review_period(request.app[PG_POOL], period=body.period,
                                          now=request.app[CLOCK](), open_tasks=body.open_tasks)
    await audit(request, "tariff.reviewed", target=body.period,
                changes={"tenants": len(results), "open_tasks": body.open_tasks,
                         "tasks": [str(r.task_id) for r in results if r.task_id is not None]})
    return respond(ReviewList(results=[ReviewResult(**r.to_json()) for r in results]))


async def _audit_task(request: web.Request, action: str, task: tasks.Task,
                      changes: dict[str, Any]) -> None:
    tenant = task.row.get("tenant_id")
    await audit(request, action, target=str(task.id), changes=changes,
                tenant_id=None if tenant is None else uuid.UUID(str(tenant)))


@operation("GET", "/admin/tasks", "Tariff review tasks, newest first", "tariffs",
           security="admin", query=TaskQuery, responses={200: Reply("the tasks", TaskList)})
async def list_tasks(request: web.Request) -> web.Response:
    require_admin(request)
    query = parse_query(request, TaskQuery)
    found = await tasks.list_tasks(request.app[PG_POOL], status=query.status, kind=query.kind)
    return respond(TaskList(tasks=[task_answer(t) for t in found]))


@operation("GET", "/admin/tasks/{task_id}", "A task with its figures", "tariffs",
           security="admin", path_params=TASK_ID, responses={200: Reply("the task", Task)})
async def get_task(request: web.Request) -> web.Response:
    require_admin(request)
    task_id = path_uuid(request, "task_id")
    return respond(task_answer(await tasks.get_task(request.app[PG_POOL], task_id)))


@operation("POST", "/admin/tasks/{task_id}/preview", "Render the task's offer (not sent)",
           "tariffs", security="admin", path_params=TASK_ID, body=SendOffer,
           responses={200: Reply("the offer as it would be sent", RenderedOffer)})
async def preview_offer(request: web.Request) -> web.Response:
    require_admin(request)
    task_id = path_uuid(request, "task_id")
    body = await parse_body(request, SendOffer)
    task, subject, text = await tasks.render_offer(request.app[PG_POOL], task_id=task_id,
                                                   salutation=body.salutation)
    return respond(RenderedOffer(to=body.to or task.row["billing_email"], subject=subject,
                                 text=text))


@operation("POST", "/admin/tasks/{task_id}/offer", "E-mail the task's offer", "tariffs",
           security="admin", path_params=TASK_ID, body=SendOffer,
           responses={200: Reply("the task, offer_sent", Task)},
           errors={409: ("task_resolved", "offer_already_sent", "offer_in_flight"),
                   503: ("mail_failed",)},
           description="Renders the task's template and sends it to `to` or the tenant's "
                       "billing_email while you wait. When the SMTP server fails the task "
                       "stays open with `last_error`, nothing is marked as sent, and the "
                       "answer is 503 mail_failed.")
async def send_offer(request: web.Request) -> web.Response:
    require_admin(request)
    task_id = path_uuid(request, "task_id")
    body = await parse_body(request, SendOffer)
    task = await tasks.send_offer(request.app[PG_POOL], request.app[MAILER], task_id=task_id,
                                  salutation=body.salutation, to=body.to,
                                  now=request.app[CLOCK]())
    await _audit_task(request, "task.offer_sent", task, {"to": body.to})
    return respond(task_answer(task))


@operation("POST", "/admin/tasks/{task_id}/resolve", "Record a task's outcome", "tariffs",
           security="admin", path_params=TASK_ID, body=ResolveTask,
           responses={200: Reply("the task", Task)}, errors={409: ("task_resolved",)},
           description="accepted moves the tenant to the proposed tariff from the next "
                       "cycle. Resolving a task resolves its follow-up (or first task) too.")
async def resolve_task(request: web.Request) -> web.Response:
    require_admin(request)
    task_id = path_uuid(request, "task_id")
    body = await parse_body(request, ResolveTask)
    task = await tasks.resolve_task(request.app[PG_POOL], request.app[CREDIT_STORE],
                                    task_id=task_id, outcome=body.outcome, note=body.note,
                                    now=request.app[CLOCK]())
    await _audit_task(request, "task.resolved", task, {"outcome": body.outcome})
    return respond(task_answer(task))


@operation("GET", "/admin/templates", "The offer and follow-up templates", "tariffs",
           security="admin", responses={200: Reply("every template", TemplateList)})
async def list_templates(request: web.Request) -> web.Response:
    require_admin(request)
    found = await tasks.list_templates(request.app[PG_POOL])
    return respond(TemplateList(templates=[Template(**t) for t in found]))


@operation("PUT", "/admin/templates/{name}", "Edit a template", "tariffs", security="admin",
           path_params=TEMPLATE_NAME, body=TemplateText,
           responses={200: Reply("the template as stored", Template)},
           description="A placeholder the kind does not have (`{9}`), or malformed braces, "
                       "is a 422 naming it.")
async def put_template(request: web.Request) -> web.Response:
    require_admin(request)
    name = request.match_info["name"]
    body = await parse_body(request, TemplateText)
    saved = await tasks.save_template(request.app[PG_POOL], name=name, text=body.text,
                                      now=request.app[CLOCK]())
    await audit(request, "template.changed", target=name, changes={"text": body.text})
    return respond(Template(**saved))


@operation("PUT", "/admin/tenants/{tenant_id}/billing-email", "Set the tenant's billing e-mail",
           "tariffs", security="admin", path_params=TENANT_ID, body=BillingEmail,
           responses={200: Reply("the tenant's billing e-mail", TenantBillingEmail)},
           description="Where offers go by default; null removes it.")
async def put_billing_email(request: web.Request) -> web.Response:
    tenant_id = await admin_tenant(request)
    body = await parse_body(request, BillingEmail)
    await set_billing_email(request.app[PG_POOL], tenant_id, body.billing_email)
    await audit(request, "tenant.billing_email_changed", target=str(tenant_id),
                tenant_id=tenant_id, changes={"billing_email": body.billing_email})
    return respond(TenantBillingEmail(tenant_id=str(tenant_id),
                                      billing_email=body.billing_email))


@operation("GET", "/admin/dashboard", "The operator page (a signed-in operator, or the "
           "admin token)",
           "docs", responses={200: Reply("an HTML page", media="text/html",
                                         schema={"type": "string"})})
async def admin_dashboard(request: web.Request) -> web.Response:
    return web.Response(
        text=_PAGE.read_text(encoding="utf-8"), content_type="text/html",
        headers={"Content-Security-Policy": "default-src 'self'; script-src 'self' "
                 "'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'",
                 "Cache-Control": "no-store"})


def add_routes(app: web.Application) -> None:
    add(app, run_review, list_tasks, get_task, preview_offer, send_offer, resolve_task,
        list_templates, put_template, put_billing_email, admin_dashboard)
