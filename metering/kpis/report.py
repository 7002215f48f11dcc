"""The KPIs of a range of the tenant's local days: totals, a series per day, week (ISO,
from Monday) or month, dispositions and channel mix, from the rollups (a few hundred to a
few thousand small rows for a month, whatever the number of conversations).

A series period is labelled by its first calendar day (`2026-11-30` for the ISO week
starting that Monday); the first and last periods count only the days inside the range.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from metering.billing.money import currency
from metering.kpis.figures import SUM_COLUMNS, PlanPrice, Sums, kpis

Granularity = Literal["day", "week", "month"]
CHANNELS = ("phone", "whatsapp", "sms", "web")
DIRECTIONS = ("inbound", "outbound")

_SUMS = ", ".join(f"sum({name})::bigint AS {name}" for name in SUM_COLUMNS)


@dataclass(frozen=True)
class KpiQuery:
    tenant_id: uuid.UUID
    start: dt.date
    end: dt.date  # inclusive
    channel: str | None = None
    direction: str | None = None
    granularity: Granularity = "day"


def period_start(day: dt.date, granularity: Granularity) -> dt.date:
    if granularity == "week":
        return day - dt.timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def periods(start: dt.date, end: dt.date, granularity: Granularity) -> list[dt.date]:
    found: list[dt.date] = []
    day = start
    while day <= end:
        first = period_start(day, granularity)
        if not found or found[-1] != first:
            found.append(first)
        day += dt.timedelta(days=1)
    return found


async def tenant_today(pool: asyncpg.Pool, tenant_id: uuid.UUID, now: dt.datetime) -> dt.date:
    """Today in the tenant's time zone."""
    day: dt.date = await pool.fetchval(
        "SELECT ($2::timestamptz AT TIME ZONE timezone)::date FROM tenants WHERE id = $1",
        tenant_id, now)
    return day


async def plan_price(conn: asyncpg.Pool | asyncpg.Connection,
                     tenant_id: uuid.UUID) -> PlanPrice | None:
    """The price of the tenant's current plan (its latest version), if it has one."""
    row = await conn.fetchrow(
        """SELECT p.currency, p.monthly_fee, p.success_fee, s.started_on
           FROM subscriptions s JOIN plans p ON p.id = s.plan_id
           WHERE s.tenant_id = $1 ORDER BY p.version DESC LIMIT 1""", tenant_id)
    if row is None:
        return None
    return PlanPrice(currency(row["currency"]), row["monthly_fee"], row["success_fee"],
                     row["started_on"])


async def kpi_report(pool: asyncpg.Pool, q: KpiQuery) -> dict[str, Any]:
    """{"totals", "series", "dispositions", "channel_mix"} of the query's days."""
    # Filters are bound parameters; `granularity` is one of three literals.
    where = ("tenant_id = $1 AND day BETWEEN $2 AND $3 "
             "AND ($4::text IS NULL OR channel = $4) AND ($5::text IS NULL OR direction = $5)")
    args = (q.tenant_id, q.start, q.end, q.channel, q.direction)
    period = f"greatest(date_trunc('{q.granularity}', day::timestamp)::date, $2)"
    async with pool.acquire() as conn, conn.transaction(readonly=True,
                                                       isolation="repeatable_read"):
        rows = await conn.fetch(
            f"""SELECT {period} AS period, channel, {_SUMS}
                FROM kpi_days WHERE {where} GROUP BY 1, 2""", *args)  # noqa: S608
        customers = await conn.fetch(
            f"""SELECT {period} AS period,
                       sum(customers) FILTER (WHERE prev_day < {period})::bigint AS in_period,
                       sum(customers) FILTER (WHERE prev_day < $2)::bigint AS in_range
                FROM kpi_customer_days
                WHERE tenant_id = $1 AND day BETWEEN $2 AND $3 AND channel = $4
                  AND direction = $5
                GROUP BY 1""",  # noqa: S608 - granularity is a Literal
            q.tenant_id, q.start, q.end, q.channel or "", q.direction or "")
        dispositions = await conn.fetch(
            f"""SELECT disposition, sum(conversations)::bigint AS n FROM kpi_disposition_days
                WHERE {where} GROUP BY 1 ORDER BY 1""", *args)  # noqa: S608
        price = await plan_price(conn, q.tenant_id)
    return assemble(q, rows, customers, dispositions, price)


def assemble(q: KpiQuery, rows: list[Any], customers: list[Any], dispositions: list[Any],
             price: PlanPrice | None) -> dict[str, Any]:
    by_period: dict[dt.date, Sums] = {}
    mix = dict.fromkeys(CHANNELS, 0)
    for row in rows:
        sums = Sums.of_row(row)
        by_period.setdefault(row["period"], Sums()).add(sums)
        mix[row["channel"]] = mix.get(row["channel"], 0) + sums.conversations
    totals = Sums()
    for sums in by_period.values():
        totals.add(sums)
    for row in customers:
        by_period.setdefault(row["period"], Sums()).customers = int(row["in_period"] or 0)
        totals.customers += int(row["in_range"] or 0)
    series = []
    starts = periods(q.start, q.end, q.granularity)
    for index, first in enumerate(starts):
        clipped = max(first, q.start)
        last = (starts[index + 1] - dt.timedelta(days=1)) if index + 1 < len(starts) else q.end
        sums = by_period.get(clipped, Sums())
        series.append({"period": first.isoformat(), **kpis(sums, clipped, last, price)})
    return {
        "from": q.start.isoformat(), "to": q.end.isoformat(), "granularity": q.granularity,
        "channel": q.channel, "direction": q.direction,
        "totals": kpis(totals, q.start, q.end, price),
        "series": series,
        "dispositions": {row["disposition"]: int(row["n"]) for row in dispositions},
        "channel_mix": mix,
    }
