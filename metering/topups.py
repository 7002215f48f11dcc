"""Top-ups: credit a tenant exactly once per Idempotency-Key.

The ledger row is written first; the unique (tenant, key) constraint decides which of
two racing requests credits. Only after the transaction commits is the live balance in
Redis credited, itself idempotent on the top-up id; a replay of the request applies it
again (a no-op if it was applied), so a crash between commit and Redis heals on retry,
and `voicegw reconcile` finds and repairs any that was never retried.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from metering.credit_store import CreditStore
from metering.ratecard import MICRO

# 10^12 credits is far beyond any real purchase, and keeps micro-credit sums of many
# top-ups well inside BIGINT (9.2 * 10^18).
MAX_TOPUP_CREDITS = 1_000_000_000


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request body."""


@dataclass(frozen=True)
class TopupResult:
    topup_id: uuid.UUID
    credits: int
    reference: str | None
    created: bool  # False: a replay of an earlier request with the same key


def request_fingerprint(credits: int, reference: str | None) -> str:
    canonical: dict[str, Any] = {"credits": credits, "reference": reference}
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def topup(
    pool: asyncpg.Pool,
    store: CreditStore,
    *,
    tenant_id: uuid.UUID,
    idempotency_key: str,
    credits: int,
    reference: str | None = None,
) -> TopupResult:
    if not 0 < credits <= MAX_TOPUP_CREDITS:
        raise ValueError(f"credits must be between 1 and {MAX_TOPUP_CREDITS}")
    fingerprint = request_fingerprint(credits, reference)
    new_id = uuid.uuid4()
    row = await pool.fetchrow(
        """INSERT INTO topups (id, tenant_id, idempotency_key, request_hash, credits,
                               micro_credits, reference)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
           RETURNING id""",
        new_id,
        tenant_id,
        idempotency_key,
        fingerprint,
        credits,
        credits * MICRO,
        reference,
    )
    created = row is not None
    if not created:
        existing = await pool.fetchrow(
            """SELECT id, request_hash, credits, reference FROM topups
               WHERE tenant_id = $1 AND idempotency_key = $2""",
            tenant_id,
            idempotency_key,
        )
        assert existing is not None  # the conflicting row is committed: we waited on it
        if existing["request_hash"] != fingerprint:
            raise IdempotencyConflict(idempotency_key)
        new_id = existing["id"]
    # After commit (each pool.execute above is its own transaction): credit the live balance.
    await store.apply_topup(str(tenant_id), str(new_id), credits * MICRO)
    return TopupResult(new_id, credits, reference, created)
