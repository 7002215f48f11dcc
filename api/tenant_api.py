"""Tenant API (`Authorization: Bearer <api key>`): top-ups, balance, usage."""

from __future__ import annotations

import uuid

import orjson
from aiohttp import web

from api.audit import audit
from api.balance import balance_of
from api.context import CREDIT_STORE, PG_POOL
from api.errors import BadRequest, NotFound
from api.models import Balance, CreateTopup, Topup, TopupAnswer
from api.operations import Header, Reply, add, operation, respond
from api.requests import parse_body, path_uuid, require_tenant
from api.usage import usage_handler
from metering.topups import TopupResult, topup

MAX_IDEMPOTENCY_KEY = 255


def idempotency_key(request: web.Request) -> str:
    """The request's Idempotency-Key: 400 when missing or not 1-255 printable characters."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        raise BadRequest(f"{request.method} {request.path} needs an Idempotency-Key header",
                         code="idempotency_key_required")
    if len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise BadRequest(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters",
                         code="invalid_idempotency_key")
    return key


@operation(
    "POST", "/v1/topups", "Add credits, exactly once per Idempotency-Key", "tenant",
    security="tenant", body=CreateTopup,
    headers=(Header("Idempotency-Key", "one key per top-up; a retry sends the same key",
                    schema={"type": "string", "minLength": 1,
                            "maxLength": MAX_IDEMPOTENCY_KEY}),),
    responses={201: Reply("credited", TopupAnswer),
               200: Reply("the same key again: the first answer's body", TopupAnswer)},
    errors={400: ("idempotency_key_required", "invalid_idempotency_key"),
            409: ("idempotency_key_reused", "balance_limit"), 503: ("topup_pending",)},
    description="The same key with another body answers 409 `idempotency_key_reused`. A "
                "top-up that would take the balance past 10^9 credits answers 409 "
                "`balance_limit` (nothing recorded); 503 `topup_pending` means recorded but "
                "not yet credited: retry with the same key.")
async def create_topup(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    key = idempotency_key(request)
    body = await parse_body(request, CreateTopup)
    # IdempotencyConflict, BalanceLimit and TopupPending are mapped by the middleware.
    result = await topup(request.app[PG_POOL], request.app[CREDIT_STORE], tenant_id=tenant_id,
                         idempotency_key=key, credits=body.credits, reference=body.reference)
    answer = await _first_answer(request, tenant_id, result)
    if result.created:
        await audit(request, "topup.created", target=str(result.topup_id),
                    changes={"credits": result.credits, "reference": result.reference})
    return web.Response(body=answer, status=201 if result.created else 200,
                        content_type="application/json")


async def _first_answer(request: web.Request, tenant_id: uuid.UUID, result: TopupResult
                        ) -> bytes:
    """The body of the first answer for this key, stored once and replayed verbatim."""
    candidate = TopupAnswer(topup_id=str(result.topup_id), credits=result.credits,
                            reference=result.reference,
                            balance=await balance_of(request.app, tenant_id))
    stored = await request.app[PG_POOL].fetchval(
        """UPDATE topups SET response = COALESCE(response, $2::jsonb) WHERE id = $1
           RETURNING response""",
        result.topup_id,
        candidate.model_dump_json(),
    )
    return stored.encode() if isinstance(stored, str) else orjson.dumps(stored)


@operation("GET", "/v1/topups/{topup_id}", "One of your top-ups", "tenant", security="tenant",
           path_params={"topup_id": {"type": "string", "format": "uuid"}},
           responses={200: Reply("the top-up", Topup)})
async def get_topup(request: web.Request) -> web.Response:
    """One top-up of the caller's; another tenant's is as unknown as a missing one (404)."""
    tenant_id = await require_tenant(request)
    topup_id = path_uuid(request, "topup_id")
    row = await request.app[PG_POOL].fetchrow(
        """SELECT id, credits, reference, created_at FROM topups
           WHERE id = $1 AND tenant_id = $2""", topup_id, tenant_id)
    if row is None:
        raise NotFound("no such top-up")
    return respond(Topup(topup_id=str(row["id"]), credits=row["credits"],
                         reference=row["reference"], created_at=row["created_at"].isoformat()))


@operation("GET", "/v1/balance", "Live balance", "tenant", security="tenant",
           responses={200: Reply("the balance", Balance)})
async def get_balance(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    return respond(await balance_of(request.app, tenant_id))


def add_routes(app: web.Application) -> None:
    add(app, create_topup, get_topup, get_balance, usage_handler)
