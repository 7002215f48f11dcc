"""Top-ups: credit a tenant exactly once per Idempotency-Key, never past the balance bound.

One PostgreSQL transaction locks the tenant's row, finds an earlier top-up with the same
key, or checks the bound and inserts the new one: racing top-ups of a tenant are
serialized, so together they can never pass MAX_BALANCE_MICRO. The check uses the
ledger's balance (top-ups less the debits the sink has written), which is never below
the live one (Redis has at most the committed top-ups, and at least the ledger's
debits): conservative while the sink lags.

The tenant's `topup.applied` webhook is written in the same transaction as the top-up.

Only after the commit is the live balance in Redis credited, itself idempotent on the
top-up id. If that step fails, `TopupPending` says so (the ledger row stays: the credit is
owed) and a retry with the same key applies it; `voicegw reconcile` repairs any that is
never retried.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from redis.exceptions import RedisError

from metering.bounds import MAX_BALANCE_MICRO, MAX_TOPUP_CREDITS, BalanceLimit, OutOfBounds
from metering.credit_store import CreditStore
from metering.money import format_credits
from metering.notify.outbox import emit
from metering.ratecard import MICRO

__all__ = ["MAX_TOPUP_CREDITS", "IdempotencyConflict", "TopupPending", "TopupResult", "topup"]


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request body."""


class TopupPending(Exception):
    """The top-up is committed in the ledger but not yet on the live balance: retry with
    the same Idempotency-Key to complete it."""

    def __init__(self, topup_id: uuid.UUID, reason: str) -> None:
        super().__init__(f"top-up {topup_id} is recorded but not yet credited: {reason}")
        self.topup_id = topup_id


@dataclass(frozen=True)
class TopupResult:
    topup_id: uuid.UUID
    credits: int
    reference: str | None
    created: bool  # False: a replay of an earlier request with the same key


def request_fingerprint(credits: int, reference: str | None) -> str:
    canonical: dict[str, Any] = {"credits": credits, "reference": reference}
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def ledger_balance(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> int:
    """Top-ups and plan-credit grants less recorded debits and expired plan credits, in
    micro-credits (numeric sums: no overflow)."""
    value = await conn.fetchval(
        """SELECT (SELECT coalesce(sum(micro_credits), 0) FROM topups WHERE tenant_id = $1)
                + (SELECT coalesce(sum(CASE kind WHEN 'grant' THEN micro_credits
                                                 ELSE -micro_credits END), 0)
                   FROM plan_credits WHERE tenant_id = $1)
                - (SELECT coalesce(sum(micro_credits), 0) FROM ledger_entries
                   WHERE tenant_id = $1)""",
        tenant_id)
    return int(value)


async def _record(conn: asyncpg.Connection, tenant_id: uuid.UUID, idempotency_key: str,
                  fingerprint: str, credits: int, reference: str | None) -> tuple[uuid.UUID, bool]:
    """The top-up's id and whether this call created it; inside the caller's transaction."""
    # NO KEY UPDATE: serializes top-ups of the tenant without blocking inserts that only
    # reference the row (foreign keys take KEY SHARE).
    await conn.execute("SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE", tenant_id)
    existing = await conn.fetchrow(
        """SELECT id, request_hash FROM topups WHERE tenant_id = $1 AND idempotency_key = $2""",
        tenant_id, idempotency_key)
    if existing is not None:
        if existing["request_hash"] != fingerprint:
            raise IdempotencyConflict(idempotency_key)
        return existing["id"], False
    balance = await ledger_balance(conn, tenant_id)
    if balance + credits * MICRO > MAX_BALANCE_MICRO:
        raise BalanceLimit(balance, credits * MICRO)
    new_id = uuid.uuid4()
    await conn.execute(
        """INSERT INTO topups (id, tenant_id, idempotency_key, request_hash, credits,
                               micro_credits, reference)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        new_id, tenant_id, idempotency_key, fingerprint, credits, credits * MICRO, reference)
    await emit(conn, tenant_id, "topup.applied", {
        "topup_id": str(new_id), "credits": format_credits(credits * MICRO),
        "micro_credits": credits * MICRO, "reference": reference}, str(new_id))
    return new_id, True


async def topup(
    pool: asyncpg.Pool,
    store: CreditStore,
    *,
    tenant_id: uuid.UUID,
    idempotency_key: str,
    credits: int,
    reference: str | None = None,
) -> TopupResult:
    """Raises BalanceLimit (nothing recorded), IdempotencyConflict, or TopupPending
    (recorded, not yet credited: a retry with the same key completes it)."""
    if isinstance(credits, bool) or not 0 < credits <= MAX_TOPUP_CREDITS:
        raise ValueError(f"credits must be between 1 and {MAX_TOPUP_CREDITS}")
    fingerprint = request_fingerprint(credits, reference)
    async with pool.acquire() as conn, conn.transaction():
        topup_id, created = await _record(conn, tenant_id, idempotency_key, fingerprint,
                                          credits, reference)
    # After commit: credit the live balance (a no-op when a retry finds it applied).
    try:
        await store.apply_topup(str(tenant_id), str(topup_id), credits * MICRO)
    except (RedisError, OSError, OutOfBounds) as exc:
        raise TopupPending(topup_id, type(exc).__name__) from exc
    return TopupResult(topup_id, credits, reference, created)
