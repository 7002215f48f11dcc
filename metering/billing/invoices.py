"""Invoices, one per tenant and cycle: reading them (a draft is computed live), and the
status changes after finalization (paid, void).

A draft's lines follow the plan version its cycle pinned and the successes it would claim
now; a finalized invoice is read as stored and never changes. Statuses: draft ->
finalized -> paid, and finalized or paid -> void (a void invoice keeps its number and the
successes it billed; they are never billed again).
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from metering.billing.call_figures import cycle_usage
from metering.billing.errors import InvalidField, InvalidTransition, NotFound
from metering.billing.lines import Line, Totals, invoice_lines
from metering.billing.money import Currency, currency, format_amount
from metering.billing.pages import Page, check_limit, decode_cursor, encode_cursor
from metering.billing.periods import Period, from_date, parse_period, period_of, utc
from metering.billing.plans import plan_version
from metering.billing.subscriptions import open_cycles
from metering.money import format_credits


class Status(enum.Enum):
    DRAFT = "draft"
    FINALIZED = "finalized"
    PAID = "paid"
    VOID = "void"


@dataclass(frozen=True)
class Invoice:
    id: uuid.UUID
    tenant_id: uuid.UUID
    number: str | None
    period: Period
    status: Status
    currency: Currency
    plan_id: str
    plan_version: int
    lines: tuple[Line, ...]
    total: int
    successes: int
    cost_per_success: Decimal | None
    credits_used: dict[str, int]  # micro-credits per meter, informational
    finalized_at: dt.datetime | None
    paid_at: dt.datetime | None
    voided_at: dt.datetime | None

    def to_json(self) -> dict[str, Any]:
        when = {name: None if value is None else value.isoformat() for name, value in
                (("finalized_at", self.finalized_at), ("paid_at", self.paid_at),
                 ("voided_at", self.voided_at))}
        return {"id": str(self.id), "number": self.number, "period": str(self.period),
                "status": self.status.value, "currency": self.currency.code,
                "plan": {"id": self.plan_id, "version": self.plan_version},
                "lines": [line.to_json(self.currency) for line in self.lines],
                "total": format_amount(self.total, self.currency),
                "successes": self.successes,
                "cost_per_success": None if self.cost_per_success is None
                else str(self.cost_per_success),
                "credits_used": {meter: format_credits(micro)
                                 for meter, micro in self.credits_used.items()},
                "credits_used_micro_credits": self.credits_used, **when}


def unclaimed_successes_sql(lower: str, upper: str) -> str:
    """Successes a draft bills: not yet on an invoice, recorded before the period's end,
    and not recorded before the end of an earlier draft of the tenant (that one bills
    them)."""
    return (f"tenant_id = $1 AND invoice_id IS NULL AND recorded_at < {upper} "
            f"AND ({lower}::timestamptz IS NULL OR recorded_at >= {lower})")


async def credits_used(conn: asyncpg.Connection, tenant_id: uuid.UUID,
                       period: Period) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT meter, sum(micro_credits)::bigint AS micro FROM usage_events "
        "WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 GROUP BY meter "
        "ORDER BY meter", tenant_id, period.start, period.end)
    return {row["meter"]: row["micro"] for row in rows}


async def claim_lower_bound(conn: asyncpg.Connection,
                            row: asyncpg.Record) -> dt.datetime | None:
    """Where this draft's successes start: the end of the tenant's latest earlier draft."""
    earlier = await conn.fetchval(
        "SELECT max(period) FROM invoices WHERE tenant_id = $1 AND period < $2 "
        "AND status = 'draft'", row["tenant_id"], row["period"])
    return None if earlier is None else from_date(earlier).end


async def draft_totals(conn: asyncpg.Connection, row: asyncpg.Record) -> Totals:
    period = from_date(row["period"])
    lower = await claim_lower_bound(conn, row)
    successes = await conn.fetchval(
        f"SELECT count(*) FROM success_events WHERE {unclaimed_successes_sql('$2', '$3')}",  # noqa: S608
        row["tenant_id"], lower, period.end)
    plan = await plan_version(conn, row["plan_id"], row["plan_version"])
    usage = None if plan.tariff is None else await cycle_usage(conn, row["tenant_id"], period)
    return invoice_lines(plan, period, row["starts_on"], row["first_cycle"], int(successes),
                         usage)


async def invoice_from_row(conn: asyncpg.Connection, row: asyncpg.Record) -> Invoice:
    status = Status(row["status"])
    period = from_date(row["period"])
    if status is Status.DRAFT:
        totals = await draft_totals(conn, row)
        used = await credits_used(conn, row["tenant_id"], period)
    else:
        stored = orjson.loads(row["lines"])
        cps = row["cost_per_success"]
        totals = Totals(tuple(Line.from_stored(line) for line in stored), row["total"],
                        row["successes"], None if cps is None else Decimal(cps))
        used = orjson.loads(row["credits_used"])
    return Invoice(row["id"], row["tenant_id"], row["number"], period, status,
                   currency(row["currency"]), row["plan_id"], row["plan_version"],
                   totals.lines, totals.total, totals.successes, totals.cost_per_success,
                   used, row["finalized_at"], row["paid_at"], row["voided_at"])


COLUMNS = ("id, tenant_id, number, period, status, currency, plan_id, plan_version, "
           "starts_on, first_cycle, lines::text AS lines, total, successes, "
           "cost_per_success::text AS cost_per_success, credits_used::text AS credits_used, "
           "finalized_at, paid_at, voided_at")


async def get_invoice(pool: asyncpg.Pool, *, invoice_id: uuid.UUID,
                      tenant_id: uuid.UUID | None = None) -> Invoice:
    """One invoice; with `tenant_id`, only that tenant's (another's is NotFound)."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT {COLUMNS} FROM invoices WHERE id = $1 "  # noqa: S608
            "AND ($2::uuid IS NULL OR tenant_id = $2)", invoice_id, tenant_id)
        if row is None:
            raise NotFound("invoice")
        return await invoice_from_row(conn, row)


async def upcoming_invoice(pool: asyncpg.Pool, *, tenant_id: uuid.UUID,
                           now: dt.datetime) -> Invoice:
    """The running cycle's draft, live (opening the cycle if the cycle job has not yet).
    NotFound for a tenant without a plan."""
    running = period_of(utc(now))
    async with pool.acquire() as conn:
        async with conn.transaction():
            await open_cycles(conn, tenant_id, running, utc(now))
        row = await conn.fetchrow(f"SELECT {COLUMNS} FROM invoices "  # noqa: S608
                                  "WHERE tenant_id = $1 AND period = $2",
                                  tenant_id, running.first_day)
        if row is None:
            raise NotFound("invoice (the tenant has no plan)")
        return await invoice_from_row(conn, row)


async def list_invoices(pool: asyncpg.Pool, *, tenant_id: uuid.UUID,
                        cursor: str | None = None, limit: int = 50) -> Page[Invoice]:
    """The tenant's invoices, newest period first (drafts computed live)."""
    after = decode_cursor(cursor, 1)
    limit = check_limit(limit)
    before = None if after is None else _cursor_period(after[0])
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM invoices WHERE tenant_id = $1 "  # noqa: S608
            "AND ($2::date IS NULL OR period < $2) ORDER BY period DESC LIMIT $3",
            tenant_id, before, limit + 1)
        items = [await invoice_from_row(conn, row) for row in rows[:limit]]
    more = len(rows) > limit
    return Page(items, encode_cursor(str(items[-1].period)) if more else None)


def _cursor_period(value: object) -> dt.date:
    try:
        return parse_period(value).first_day
    except InvalidField as exc:
        raise InvalidField("cursor", "is not a cursor this list handed out") from exc


_TRANSITIONS = {Status.PAID: ({Status.FINALIZED}, "paid_at"),
                Status.VOID: ({Status.FINALIZED, Status.PAID}, "voided_at")}


async def _transition(pool: asyncpg.Pool, invoice_id: uuid.UUID, target: Status,
                      now: dt.datetime) -> Invoice:
    allowed, stamp = _TRANSITIONS[target]
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow("SELECT status FROM invoices WHERE id = $1 FOR UPDATE",
                                  invoice_id)
        if row is None:
            raise NotFound("invoice")
        status = Status(row["status"])
        if status is not target:
            if status not in allowed:
                raise InvalidTransition(f"a {status.value} invoice cannot become "
                                        f"{target.value}")
            await conn.execute(f"UPDATE invoices SET status = $2, {stamp} = $3 "  # noqa: S608
                               "WHERE id = $1", invoice_id, target.value, utc(now))
        fresh = await conn.fetchrow(f"SELECT {COLUMNS} FROM invoices WHERE id = $1",  # noqa: S608
                                    invoice_id)
        return await invoice_from_row(conn, fresh)


async def mark_paid(pool: asyncpg.Pool, *, invoice_id: uuid.UUID, now: dt.datetime) -> Invoice:
    """finalized -> paid (again: unchanged); a draft or void invoice: InvalidTransition."""
    return await _transition(pool, invoice_id, Status.PAID, now)


async def void_invoice(pool: asyncpg.Pool, *, invoice_id: uuid.UUID,
                       now: dt.datetime) -> Invoice:
    """finalized or paid -> void, keeping its number (again: unchanged); a draft:
    InvalidTransition (it has no number; it is finalized at the cycle's end)."""
    return await _transition(pool, invoice_id, Status.VOID, now)
