"""Tenant API (`Authorization: Bearer <api key>`): top-ups, balance, usage."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
from aiohttp import web

from api.balance import balance_json
from api.context import CREDIT_STORE, PG_POOL
from api.problems import Problem
from api.requests import json_object, optional_str, path_uuid, require_tenant, strict_int
from api.usage import usage_handler
from metering.bounds import MAX_BALANCE_CREDITS, MAX_BALANCE_MICRO, BalanceLimit
from metering.money import format_credits
from metering.topups import (
    MAX_TOPUP_CREDITS,
    IdempotencyConflict,
    TopupPending,
    TopupResult,
    topup,
)

MAX_IDEMPOTENCY_KEY = 255
TOPUP_RETRY_AFTER_S = 1
log = logging.getLogger("voicegw.topups")


def _idempotency_key(request: web.Request) -> str:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        raise Problem(400, "idempotency_key_required",
                      "POST /v1/topups needs an Idempotency-Key header")
    if len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise Problem(400, "invalid_idempotency_key",
                      f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters")
    return key


async def create_topup(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    key = _idempotency_key(request)
    body = await json_object(request)
    credits = strict_int(body, "credits", 1, MAX_TOPUP_CREDITS)
    reference = optional_str(body, "reference", 200)
    pool = request.app[PG_POOL]
    try:
        result = await topup(pool, request.app[CREDIT_STORE], tenant_id=tenant_id,
                             idempotency_key=key, credits=credits, reference=reference)
    except IdempotencyConflict as exc:
        raise Problem(409, "idempotency_key_reused",
                      "this Idempotency-Key was used with a different request body") from exc
    except BalanceLimit as exc:
        raise Problem(409, "balance_limit",
                      f"a balance may hold at most {MAX_BALANCE_CREDITS} credits; this top-up "
                      "would pass it (nothing was recorded)",
                      max_balance_credits=format_credits(MAX_BALANCE_MICRO),
                      balance_credits=format_credits(exc.balance_micro)) from exc
    except TopupPending as exc:
        # The ledger has it; the live balance does not yet. No answer is stored, so a
        # retry with the same key applies it and gets the first real answer.
        log.warning("top-up %s recorded but not credited: %s", exc.topup_id, exc.__cause__)
        raise Problem(503, "topup_pending",
                      "the top-up is recorded but not yet credited; retry with the same "
                      "Idempotency-Key to complete it", topup_id=str(exc.topup_id),
                      headers={"Retry-After": str(TOPUP_RETRY_AFTER_S)}) from exc
    answer = await _first_answer(request, tenant_id, result)
    return web.json_response(answer, status=201 if result.created else 200)


async def _first_answer(
    request: web.Request, tenant_id: uuid.UUID, result: TopupResult
) -> dict[str, Any]:
    """The body of the first answer for this key, stored once and replayed verbatim."""
    pool = request.app[PG_POOL]
    candidate = {
        "topup_id": str(result.topup_id),
        "credits": result.credits,
        "reference": result.reference,
        "balance": await balance_json(request.app, tenant_id),
    }
    stored = await pool.fetchval(
        """UPDATE topups SET response = COALESCE(response, $2::jsonb) WHERE id = $1
           RETURNING response""",
        result.topup_id,
        orjson.dumps(candidate).decode(),
    )
    answer: dict[str, Any] = orjson.loads(stored) if isinstance(stored, str) else stored
    return answer


async def get_topup(request: web.Request) -> web.Response:
    """One top-up of the caller's; another tenant's is as unknown as a missing one (404)."""
    tenant_id = await require_tenant(request)
    topup_id = path_uuid(request, "topup_id")
    row = await request.app[PG_POOL].fetchrow(
        """SELECT id, credits, reference, created_at FROM topups
           WHERE id = $1 AND tenant_id = $2""", topup_id, tenant_id)
    if row is None:
        raise Problem(404, "not_found", "no such top-up")
    return web.json_response({"topup_id": str(row["id"]), "credits": row["credits"],
                              "reference": row["reference"],
                              "created_at": row["created_at"].isoformat()})


async def get_balance(request: web.Request) -> web.Response:
    tenant_id = await require_tenant(request)
    return web.json_response(await balance_json(request.app, tenant_id))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/topups", create_topup)
    app.router.add_get("/v1/topups/{topup_id}", get_topup)
    app.router.add_get("/v1/balance", get_balance)
    app.router.add_get("/v1/usage", usage_handler)
