"""Plan credits: granted once per tenant and cycle, and expired at the end of a cycle
whose plan does not roll them over.

Grant: a ledger row (unique per tenant, cycle and kind) committed first, then applied to
the live balance by `grant.lua`, idempotent on the id `grant:YYYY-MM`; if Redis fails, the
row stays unapplied (`applied_at` NULL) and the cycle job applies it later. A grant never
takes the balance past MAX_BALANCE_MICRO: it is cut to what fits.

Expiry: the plan credits left at the end of cycle P are

    min(available now, granted for P - debits in the ledger since P's start)

never below zero. Usage spends plan credits before purchased ones, credits held by open
sessions are not available and do not expire, and debits after P's end count as used too:
every approximation is in the tenant's favour. Purchased top-ups never expire. The live
balance goes first (`expire.lua`, idempotent on `expiry:YYYY-MM`, which remembers the
amount taken), then the ledger row records that amount; a crash in between is finished by
the next run, which replays the same amount.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg
from redis.exceptions import RedisError

from metering.billing.errors import PeriodNotEnded
from metering.billing.periods import Period, utc
from metering.billing.plans import plan_version
from metering.bounds import MAX_BALANCE_MICRO, OutOfBounds
from metering.credit_store import CreditStore
from metering.ratecard import MICRO
from metering.topups import ledger_balance


@dataclass(frozen=True)
class GrantResult:
    period: Period
    micro_credits: int
    created: bool  # this call wrote the ledger row
    applied: bool  # the live balance has it (False: pending, the cycle job retries)


@dataclass(frozen=True)
class ExpiryResult:
    period: Period
    micro_credits: int  # expired (0: nothing was left, or the plan rolls over)
    created: bool


async def grant_plan_credits(pool: asyncpg.Pool, store: CreditStore, *,
                             tenant_id: uuid.UUID, period: Period,
                             now: dt.datetime) -> GrantResult | None:
    """Grants the included credits of the plan the cycle bills, once; None when the
    tenant has no open cycle for `period`."""
    async with pool.acquire() as conn, conn.transaction():
        # Serializes with top-ups: the balance bound holds for both together.
        await conn.execute("SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE", tenant_id)
        row = await conn.fetchrow("SELECT id, micro_credits, applied_at FROM plan_credits "
                                  "WHERE tenant_id = $1 AND period = $2 AND kind = 'grant'",
                                  tenant_id, period.first_day)
        created = row is None
        if row is None:
            invoice = await conn.fetchrow("SELECT plan_id, plan_version FROM invoices "
                                          "WHERE tenant_id = $1 AND period = $2",
                                          tenant_id, period.first_day)
            if invoice is None:
                return None
            plan = await plan_version(conn, invoice["plan_id"], invoice["plan_version"])
            room = MAX_BALANCE_MICRO - await ledger_balance(conn, tenant_id)
            micro = max(0, min(plan.included_credits * MICRO, room))
            row = await conn.fetchrow(
                """INSERT INTO plan_credits (id, tenant_id, period, kind, plan_id,
                                             plan_version, micro_credits, applied_at,
                                             created_at)
                   VALUES ($1, $2, $3, 'grant', $4, $5, $6, $7, $8)
                   RETURNING id, micro_credits, applied_at""",
                uuid.uuid4(), tenant_id, period.first_day, plan.id, plan.version, micro,
                now if micro == 0 else None, now)
    applied = row["applied_at"] is not None or await _apply(pool, store, tenant_id, period,
                                                            row["micro_credits"], now)
    return GrantResult(period, row["micro_credits"], created, applied)


async def _apply(pool: asyncpg.Pool, store: CreditStore, tenant_id: uuid.UUID,
                 period: Period, micro: int, now: dt.datetime) -> bool:
    try:
        await store.apply_grant(str(tenant_id), f"grant:{period}", micro)
    except (RedisError, OSError, OutOfBounds):
        return False  # the ledger row stays unapplied: the cycle job tries again
    await pool.execute("UPDATE plan_credits SET applied_at = $3 WHERE tenant_id = $1 "
                       "AND period = $2 AND kind = 'grant'", tenant_id, period.first_day, now)
    return True


async def expire_plan_credits(pool: asyncpg.Pool, store: CreditStore, *,
                              tenant_id: uuid.UUID, period: Period,
                              now: dt.datetime) -> ExpiryResult | None:
    """Expires what is left of an ended cycle's plan credits, once, when its plan does
    not roll them over. None: nothing to do (no grant, rollover, or the grant is not on
    the live balance yet: expiring then could take purchased credits)."""
    if utc(now) < period.end:
        raise PeriodNotEnded(str(period))
    existing = await pool.fetchrow("SELECT micro_credits FROM plan_credits WHERE "
                                   "tenant_id = $1 AND period = $2 AND kind = 'expiry'",
                                   tenant_id, period.first_day)
    if existing is not None:
        return ExpiryResult(period, existing["micro_credits"], created=False)
    grant = await pool.fetchrow(
        """SELECT g.micro_credits, g.applied_at, g.plan_id, g.plan_version
           FROM plan_credits g WHERE g.tenant_id = $1 AND g.period = $2
           AND g.kind = 'grant'""", tenant_id, period.first_day)
    if grant is None:
        return None
    plan = await plan_version(pool, grant["plan_id"], grant["plan_version"])
    if plan.credit_rollover:
        return None
    if grant["applied_at"] is None and not await _apply(
            pool, store, tenant_id, period, grant["micro_credits"], now):
        return None
    used = await pool.fetchval(
        "SELECT coalesce(sum(micro_credits), 0)::numeric FROM ledger_entries "
        "WHERE tenant_id = $1 AND occurred_at >= $2", tenant_id, period.start)
    requested = max(grant["micro_credits"] - int(used), 0)
    micro = await store.expire_credits(str(tenant_id), f"expiry:{period}", requested)
    inserted = await pool.fetchval(
        """INSERT INTO plan_credits (id, tenant_id, period, kind, plan_id, plan_version,
                                     micro_credits, applied_at, created_at)
           VALUES ($1, $2, $3, 'expiry', $4, $5, $6, $7, $7)
           ON CONFLICT (tenant_id, period, kind) DO NOTHING RETURNING true""",
        uuid.uuid4(), tenant_id, period.first_day, plan.id, plan.version, micro, now)
    return ExpiryResult(period, micro, created=bool(inserted))
