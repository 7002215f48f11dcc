"""The monthly tariff review (seed 004, docs/tariffs.md): per tenant on a cost-cap,
flat-rate or per-call tariff, the month's figures, whether the tariff is unprofitable
beyond its tolerance, the offer, and an operator task for a flagged tenant.

`review_period` runs for one month, once per tenant and month in effect: an ended month's
review is recorded in `tariff_reviews` (first writer wins) and its task is unique per
tenant, tariff and period, so N gateways running it at once open one task. A month not
yet ended is reviewed as preliminary: it opens no task unless `open_tasks` (an operator
acting early). All arithmetic is exact (fractions of minor units); only the figures shown
are rounded.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import asyncpg
import orjson

from metering.billing.call_figures import cycle_usage
from metering.billing.errors import InvalidField
from metering.billing.lines import CycleUsage, tariff_lines
from metering.billing.money import Currency, format_amount, round_half_up
from metering.billing.periods import Period, parse_period, period_of, utc
from metering.billing.plans import Plan, plan_from_row
from metering.billing.tariffs import REVIEWED_KINDS, Tariff, format_pct


@dataclass(frozen=True)
class Assessment:
    """The pure outcome of a review: figures as shown, the proposal, flagged or not."""

    flagged: bool
    figures: dict[str, Any]
    offer: dict[str, Any] | None  # {"price", "tariff"}: what the tenant would move to


@dataclass(frozen=True)
class ReviewResult:
    tenant_id: uuid.UUID
    tenant_name: str
    tariff: str
    period: Period
    preliminary: bool
    flagged: bool
    figures: dict[str, Any]
    offer: dict[str, Any] | None
    task_id: uuid.UUID | None

    def to_json(self) -> dict[str, Any]:
        return {"tenant_id": str(self.tenant_id), "tenant_name": self.tenant_name,
                "tariff": self.tariff,
                "period": str(self.period), "preliminary": self.preliminary,
                "flagged": self.flagged, "figures": self.figures, "offer": self.offer,
                "task_id": None if self.task_id is None else str(self.task_id)}


def show(value: Fraction, places: int = 2) -> str:
    """An exact ratio shown half-up with `places` decimals (minutes: 2)."""
    scaled = round_half_up(value * 10**places)
    return str(Decimal(scaled).scaleb(-places).quantize(Decimal(1).scaleb(-places),
                                                       rounding=ROUND_HALF_UP))


def money(value: Fraction, cur: Currency) -> str:
    """Exact minor units shown to the minor unit, half-up."""
    return format_amount(round_half_up(value), cur)


def _limit(price: int, tolerance: Decimal) -> Fraction:
    return Fraction(price) * (1 + Fraction(tolerance) / 100)


def assess(tariff: Tariff, usage: CycleUsage, period: Period, cur: Currency) -> Assessment:
    """Flagged when the cost exceeds the agreed price x (1 + tolerance); equal is fine."""
    minutes = Fraction(usage.handled_seconds, 60)
    figures: dict[str, Any] = {
        "minutes": show(minutes), "seconds": usage.handled_seconds,
        "calls": usage.handled_calls, "tolerance_pct": format_pct(tariff.tolerance_pct)}
    if tariff.kind == "cost_cap":
        lines = tariff_lines(Tariff("usage", prices=tariff.prices), usage, period)
        capped = sum(line.amount for line, price in zip(lines, tariff.prices, strict=True)
                     if price.meter in tariff.capped_meters)
        limit = _limit(tariff.cap, tariff.tolerance_pct)
        figures.update(category=tariff.category, cap=format_amount(tariff.cap, cur),
                       capped_sum=format_amount(capped, cur), limit=money(limit, cur),
                       paid=format_amount(min(capped, tariff.cap), cur))
        if tariff.category < 7:
            proposed = replace(tariff, category=tariff.category + 1)
            offer = {"price": format_amount(proposed.cap, cur),
                     "category": proposed.category, "tariff": proposed.to_json(cur)}
        else:  # no higher category: billed by call minutes (usage, the same prices)
            proposed = Tariff("usage", prices=tariff.prices)
            offer = {"price": None, "category": None, "tariff": proposed.to_json(cur)}
        return Assessment(capped > limit, figures, offer)
    reference = tariff.reference_price_per_minute
    cost = minutes * reference  # minor units, exact
    figures.update(reference_price_per_minute=format_amount(reference, cur),
                   cost_at_reference=money(cost, cur))
    if tariff.kind == "flat_rate":
        ten = 10 * cur.scale
        # The nearest ten below: in the tenant's favour. Under ten, a flat rate of 0 would
        # be no price at all: the cost itself, rounded down to the minor unit.
        price = (cost // ten) * ten or max(math.floor(cost), 1)
        limit = _limit(tariff.monthly_price, tariff.tolerance_pct)
        figures.update(monthly_price=format_amount(tariff.monthly_price, cur),
                       limit=money(limit, cur), paid=format_amount(tariff.monthly_price, cur))
        proposed = replace(tariff, monthly_price=int(price))
        offer = {"price": format_amount(int(price), cur), "tariff": proposed.to_json(cur)}
        return Assessment(cost > limit, figures, offer)
    limit = _limit(tariff.price_per_call, tariff.tolerance_pct)
    calls = usage.handled_calls
    figures.update(price_per_call=format_amount(tariff.price_per_call, cur),
                   limit=money(limit, cur),
                   paid=format_amount(calls * tariff.price_per_call, cur))
    if calls == 0:
        figures["cost_per_call"] = None
        return Assessment(False, figures, None)
    per_call = cost / calls
    new_price = round_half_up(per_call)
    figures["cost_per_call"] = money(per_call, cur)
    proposed = replace(tariff, price_per_call=new_price)
    offer = {"price": format_amount(new_price, cur), "tariff": proposed.to_json(cur)}
    return Assessment(per_call > limit, figures, offer)


def check_period(value: Any, now: dt.datetime) -> tuple[Period, bool]:
    """The period to review and whether it is preliminary (not ended); a future period is
    InvalidField `period`."""
    period = value if isinstance(value, Period) else parse_period(value)
    running = period_of(utc(now))
    if period > running:
        raise InvalidField("period", f"{period} is in the future; the running period is "
                                     f"{running}")
    return period, period == running


async def _reviewed_plans(conn: asyncpg.Connection,
                          period: Period) -> list[tuple[uuid.UUID, str, Plan]]:
    rows = await conn.fetch(
        """SELECT i.tenant_id, t.name AS tenant_name, p.id, p.version, p.name, p.currency,
                  p.setup_fee, p.monthly_fee, p.success_fee, p.included_credits, p.credit_rollover,
                  p.rate_card::text AS rate_card, p.created_at, p.billing,
                  p.tariff::text AS tariff
           FROM invoices i JOIN plans p ON p.id = i.plan_id AND p.version = i.plan_version
             JOIN tenants t ON t.id = i.tenant_id
           WHERE i.period = $1 AND p.tariff->>'kind' = ANY($2::text[])
           ORDER BY i.tenant_id""", period.first_day, list(REVIEWED_KINDS))
    return [(row["tenant_id"], row["tenant_name"], plan_from_row(row)) for row in rows]


async def open_task(conn: asyncpg.Connection, *, tenant_id: uuid.UUID, plan: Plan,
                    period: Period, assessment: Assessment, now: dt.datetime) -> uuid.UUID:
    """Opens the review's task once per tenant, tariff and period (the existing one is
    returned to a second reviewer). Inside the caller's transaction."""
    assert plan.tariff is not None
    kind = plan.tariff.kind
    created = await conn.fetchval(
        """INSERT INTO tariff_tasks (id, tenant_id, kind, tariff, period, plan_id,
                                     plan_version, currency, figures, offer, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb, $11)
           ON CONFLICT (tenant_id, tariff, period) WHERE follows_task_id IS NULL
           DO NOTHING RETURNING id""",
        uuid.uuid4(), tenant_id, f"{kind}_offer", kind, period.first_day, plan.id,
        plan.version, plan.currency.code, orjson.dumps(assessment.figures).decode(),
        orjson.dumps(assessment.offer or {}).decode(), now)
    if created is not None:
        return uuid.UUID(str(created))
    existing = await conn.fetchval(
        "SELECT id FROM tariff_tasks WHERE tenant_id = $1 AND tariff = $2 AND period = $3 "
        "AND follows_task_id IS NULL", tenant_id, kind, period.first_day)
    return uuid.UUID(str(existing))


async def review_period(pool: asyncpg.Pool, *, period: Any, now: dt.datetime,
                        open_tasks: bool = False,
                        tenant_id: uuid.UUID | None = None) -> list[ReviewResult]:
    """Reviews every tenant whose cycle of `period` bills a cost-cap, flat-rate or
    per-call tariff (or only `tenant_id`)."""
    now = utc(now)
    target, preliminary = check_period(period, now)
    results = []
    async with pool.acquire() as conn:
        for tenant, name, plan in await _reviewed_plans(conn, target):
            if tenant_id is not None and tenant != tenant_id:
                continue
            assert plan.tariff is not None
            usage = await cycle_usage(conn, tenant, target)
            outcome = assess(plan.tariff, usage, target, plan.currency)
            task_id = None
            async with conn.transaction():
                if not preliminary:
                    await conn.execute(
                        """INSERT INTO tariff_reviews (tenant_id, period, tariff, flagged,
                                                       figures, offer, reviewed_at)
                           VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7)
                           ON CONFLICT (tenant_id, period) DO NOTHING""",
                        tenant, target.first_day, plan.tariff.kind, outcome.flagged,
                        orjson.dumps(outcome.figures).decode(),
                        None if outcome.offer is None else orjson.dumps(outcome.offer).decode(),
                        now)
                if outcome.flagged and (open_tasks or not preliminary):
                    task_id = await open_task(conn, tenant_id=tenant, plan=plan,
                                              period=target, assessment=outcome, now=now)
            results.append(ReviewResult(tenant, name, plan.tariff.kind, target, preliminary,
                                        outcome.flagged, outcome.figures, outcome.offer,
                                        task_id))
    return results


async def review_ended_month(pool: asyncpg.Pool, *, now: dt.datetime) -> list[ReviewResult]:
    """The in-process job: reviews the month before `now` for every tenant not reviewed
    for it yet (nothing to do once every gateway's first run after the month end is
    done)."""
    previous = period_of(utc(now)).previous()
    pending = await pool.fetch(
        """SELECT i.tenant_id FROM invoices i JOIN plans p
             ON p.id = i.plan_id AND p.version = i.plan_version
           WHERE i.period = $1 AND p.tariff->>'kind' = ANY($2::text[])
             AND NOT EXISTS (SELECT 1 FROM tariff_reviews r
                             WHERE r.tenant_id = i.tenant_id AND r.period = $1)""",
        previous.first_day, list(REVIEWED_KINDS))
    results = []
    for row in pending:
        results.extend(await review_period(pool, period=previous, now=now, open_tasks=True,
                                           tenant_id=row["tenant_id"]))
    return results
