"""Finalizing invoices: at a cycle's end, or on demand for an ended period.

Each invoice is finalized in its own transaction, which locks the invoice row, claims the
successes it bills (`success_events.invoice_id`), freezes its lines and totals, and takes
the next number of its issuer and year from `invoice_counters`, whose row stays locked
until the commit: a rolled-back finalization gives its number back, so numbers have no
gaps. N closers racing serialize on the invoice row (the loser finds it finalized) and
the unique (tenant, period) key keeps one invoice per tenant and cycle. A closer killed
mid-run leaves drafts; the next run finishes them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg
import orjson

from metering.billing.call_figures import cycle_usage
from metering.billing.errors import NotFound, PeriodNotEnded
from metering.billing.invoices import claim_lower_bound, credits_used, unclaimed_successes_sql
from metering.billing.lines import invoice_lines
from metering.billing.money import format_amount
from metering.billing.periods import Period, from_date, parse_period, utc
from metering.billing.plans import plan_version
from metering.billing.subscriptions import open_cycles
from metering.notify.outbox import emit

DEFAULT_ISSUER = "VGW"


@dataclass(frozen=True)
class Finalized:
    invoice_id: uuid.UUID
    number: str
    created: bool  # False: it was finalized already (another closer, an earlier run)


@dataclass(frozen=True)
class CloseResult:
    period: Period
    finalized: list[Finalized]  # by this run


def invoice_number(issuer: str, year: int, counter: int) -> str:
    return f"{issuer}-{year:04d}-{counter:06d}"


async def _next_number(conn: asyncpg.Connection, issuer: str, year: int) -> str:
    counter = await conn.fetchval(
        """INSERT INTO invoice_counters (issuer, year, last_number) VALUES ($1, $2, 1)
           ON CONFLICT (issuer, year)
           DO UPDATE SET last_number = invoice_counters.last_number + 1
           RETURNING last_number""", issuer, year)
    return invoice_number(issuer, year, int(counter))


async def finalize_invoice(pool: asyncpg.Pool, *, invoice_id: uuid.UUID, now: dt.datetime,
                           issuer: str = DEFAULT_ISSUER) -> Finalized:
    """Finalizes one draft of an ended period (finalize the tenant's earlier drafts
    first: the earliest open draft bills the successes recorded before its end)."""
    now = utc(now)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT id, tenant_id, period, status, number, plan_id, plan_version, starts_on, "
            "first_cycle FROM invoices WHERE id = $1 FOR UPDATE", invoice_id)
        if row is None:
            raise NotFound("invoice")
        if row["status"] != "draft":
            return Finalized(invoice_id, row["number"], created=False)
        period = from_date(row["period"])
        if now < period.end:
            raise PeriodNotEnded(str(period))
        claimed = await conn.fetchval(
            f"""WITH claimed AS (UPDATE success_events SET invoice_id = $4
                    WHERE {unclaimed_successes_sql('$2', '$3')} RETURNING 1)
                SELECT count(*) FROM claimed""",  # noqa: S608
            row["tenant_id"], await claim_lower_bound(conn, row), period.end, invoice_id)
        plan = await plan_version(conn, row["plan_id"], row["plan_version"])
        usage = None if plan.tariff is None \
            else await cycle_usage(conn, row["tenant_id"], period)
        totals = invoice_lines(plan, period, row["starts_on"], row["first_cycle"],
                               int(claimed), usage)
        number = await _next_number(conn, issuer, now.year)
        used = await credits_used(conn, row["tenant_id"], period)
        await conn.execute(
            """UPDATE invoices SET status = 'finalized', number = $2, lines = $3::jsonb,
                   total = $4, successes = $5, cost_per_success = $6::numeric,
                   credits_used = $7::jsonb, finalized_at = $8
               WHERE id = $1""",
            invoice_id, number, orjson.dumps([line.to_stored() for line in totals.lines]).decode(),
            totals.total, totals.successes,
            None if totals.cost_per_success is None else str(totals.cost_per_success),
            orjson.dumps(used).decode(), now)
        # Told in the same transaction: a finalization that rolls back sends nothing.
        await emit(conn, row["tenant_id"], "invoice.finalized", {
            "id": str(invoice_id), "number": number, "period": str(period),
            "currency": plan.currency.code, "total": format_amount(totals.total, plan.currency),
            "successes": totals.successes,
            "cost_per_success": None if totals.cost_per_success is None
            else str(totals.cost_per_success)}, f"invoice:{invoice_id}", at=now)
    return Finalized(invoice_id, number, created=True)


async def _tenants_to_close(pool: asyncpg.Pool, period: Period) -> list[uuid.UUID]:
    """Subscribed tenants whose invoice for `period` is missing or whose drafts up to it
    are not all finalized."""
    rows = await pool.fetch(
        """SELECT s.tenant_id FROM subscriptions s WHERE s.started_on < $2 AND (
               NOT EXISTS (SELECT 1 FROM invoices i WHERE i.tenant_id = s.tenant_id
                           AND i.period = $1)
               OR EXISTS (SELECT 1 FROM invoices i WHERE i.tenant_id = s.tenant_id
                          AND i.period <= $1 AND i.status = 'draft'))
           ORDER BY s.tenant_id""", period.first_day, period.next().first_day)
    return [row["tenant_id"] for row in rows]


async def close_tenant(pool: asyncpg.Pool, *, tenant_id: uuid.UUID, period: Period,
                       now: dt.datetime, issuer: str = DEFAULT_ISSUER) -> list[Finalized]:
    """Opens any missing cycle of the tenant up to `period` and finalizes its drafts up to
    it, oldest first."""
    async with pool.acquire() as conn, conn.transaction():
        await open_cycles(conn, tenant_id, period, now)
    drafts = await pool.fetch("SELECT id FROM invoices WHERE tenant_id = $1 AND period <= $2 "
                              "AND status = 'draft' ORDER BY period", tenant_id,
                              period.first_day)
    done = [await finalize_invoice(pool, invoice_id=row["id"], now=now, issuer=issuer)
            for row in drafts]
    return [item for item in done if item.created]


async def close_period(pool: asyncpg.Pool, *, period: str | Period, now: dt.datetime,
                       issuer: str = DEFAULT_ISSUER) -> CloseResult:
    """Finalizes every subscribed tenant's invoice of an ENDED period (a running or future
    period: PeriodNotEnded). Idempotent: run it again, from any number of gateways."""
    target = period if isinstance(period, Period) else parse_period(period)
    now = utc(now)
    if now < target.end:
        raise PeriodNotEnded(str(target))
    finalized: list[Finalized] = []
    for tenant_id in await _tenants_to_close(pool, target):
        finalized.extend(await close_tenant(pool, tenant_id=tenant_id, period=target, now=now,
                                            issuer=issuer))
    return CloseResult(target, finalized)
