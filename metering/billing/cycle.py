"""The billing cycle job: what a gateway's background task runs every minute or so.

`run_cycle(now)`, for every subscribed tenant with something due: opens the running cycle
(taking a pending plan change that falls due), grants its plan credits (or applies a
grant whose live credit was pending), expires the previous cycle's unused plan credits
when its plan does not roll them over, and finalizes the previous cycle's invoice. Every
step is idempotent, so N gateways run it at once safely and a run killed half-way is
finished by the next.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

import asyncpg

from metering.billing.closing import DEFAULT_ISSUER, Finalized, close_tenant
from metering.billing.credits import (
    ExpiryResult,
    GrantResult,
    expire_plan_credits,
    grant_plan_credits,
)
from metering.billing.periods import period_of, utc
from metering.billing.subscriptions import open_cycles
from metering.credit_store import CreditStore


@dataclass
class CycleReport:
    tenants: int = 0
    grants: list[GrantResult] = field(default_factory=list)  # of each tenant visited
    expiries: list[ExpiryResult] = field(default_factory=list)  # created now
    finalized: list[Finalized] = field(default_factory=list)


async def _due_tenants(pool: asyncpg.Pool, running: dt.date, previous: dt.date) -> list[uuid.UUID]:
    """Tenants with work: no open running cycle, no applied grant for it, a draft before
    it, or a previous cycle without rollover whose expiry is not written."""
    rows = await pool.fetch(
        """SELECT s.tenant_id FROM subscriptions s WHERE
               NOT EXISTS (SELECT 1 FROM invoices i WHERE i.tenant_id = s.tenant_id
                           AND i.period = $1)
            OR NOT EXISTS (SELECT 1 FROM plan_credits g WHERE g.tenant_id = s.tenant_id
                           AND g.period = $1 AND g.kind = 'grant' AND g.applied_at IS NOT NULL)
            OR EXISTS (SELECT 1 FROM invoices i WHERE i.tenant_id = s.tenant_id
                       AND i.period < $1 AND i.status = 'draft')
            OR EXISTS (SELECT 1 FROM plan_credits g JOIN plans p
                         ON p.id = g.plan_id AND p.version = g.plan_version
                       WHERE g.tenant_id = s.tenant_id AND g.period = $2
                         AND g.kind = 'grant' AND NOT p.credit_rollover
                         AND NOT EXISTS (SELECT 1 FROM plan_credits e
                                         WHERE e.tenant_id = s.tenant_id AND e.period = $2
                                           AND e.kind = 'expiry'))
           ORDER BY s.tenant_id""", running, previous)
    return [row["tenant_id"] for row in rows]


async def run_cycle(pool: asyncpg.Pool, store: CreditStore, *, now: dt.datetime,
                    issuer: str = DEFAULT_ISSUER) -> CycleReport:
    now = utc(now)
    running = period_of(now)
    previous = running.previous()
    report = CycleReport()
    for tenant_id in await _due_tenants(pool, running.first_day, previous.first_day):
        report.tenants += 1
        async with pool.acquire() as conn, conn.transaction():
            await open_cycles(conn, tenant_id, running, now)
        # Expire before granting: the new cycle's credits are never counted as left over.
        expiry = await expire_plan_credits(pool, store, tenant_id=tenant_id,
                                           period=previous, now=now)
        if expiry is not None and expiry.created:
            report.expiries.append(expiry)
        grant = await grant_plan_credits(pool, store, tenant_id=tenant_id, period=running,
                                         now=now)
        if grant is not None and (grant.created or grant.applied):
            report.grants.append(grant)
        report.finalized.extend(await close_tenant(pool, tenant_id=tenant_id, period=previous,
                                                   now=now, issuer=issuer))
    return report
