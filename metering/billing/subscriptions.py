"""Subscriptions: a tenant's plan now and the change waiting for the next cycle.

The first subscription starts at once (or on a back-dated day of the running cycle) and
opens the cycle's invoice with the setup fee; a later change waits for the next cycle
(calendar month, UTC) as the pending change, and the latest request wins. Each tenant's
subscription row is locked for the whole change, so concurrent changes serialize.

Cycles are opened in order by `open_cycles`: each opened cycle pins the plan version it
bills (the latest version of the plan in effect then) and takes a pending change that is
due. A tenant without a subscription is on prepaid top-ups only.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass

import asyncpg

from metering.billing.credits import GrantResult, grant_plan_credits
from metering.billing.errors import InvalidField, NotFound
from metering.billing.periods import Period, from_date, period_of, utc
from metering.billing.plans import Plan, latest_version, plan_version
from metering.credit_store import CreditStore


class Change(enum.Enum):
    STARTED = "started"  # the first subscription: at once, with the setup fee
    SCHEDULED = "scheduled"  # a change waits for the next cycle
    CANCELLED = "cancelled"  # back to the current plan: the pending change is dropped
    UNCHANGED = "unchanged"  # already so (a replay)


@dataclass(frozen=True)
class PlanTerm:
    plan: Plan
    effective_from: dt.date


@dataclass(frozen=True)
class TenantPlan:
    current: PlanTerm | None
    pending: PlanTerm | None


@dataclass(frozen=True)
class Subscribed:
    change: Change
    plan: TenantPlan
    grant: GrantResult | None = None  # the first cycle's plan credits (STARTED only)


async def _new_invoice(conn: asyncpg.Connection, tenant_id: uuid.UUID, period: Period,
                       plan: Plan, starts_on: dt.date, first: bool, now: dt.datetime) -> None:
    await conn.execute(
        """INSERT INTO invoices (id, tenant_id, period, plan_id, plan_version, starts_on,
                                 first_cycle, currency, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING""",
        uuid.uuid4(), tenant_id, period.first_day, plan.id, plan.version, starts_on, first,
        plan.currency.code, now)


async def open_cycles(conn: asyncpg.Connection, tenant_id: uuid.UUID, upto: Period,
                      now: dt.datetime) -> None:
    """Opens every cycle of the tenant up to `upto` that is not open yet, in order, taking
    pending changes as they fall due. Inside the caller's transaction; locks the
    subscription row. Nothing for a tenant without a subscription."""
    sub = await conn.fetchrow("SELECT * FROM subscriptions WHERE tenant_id = $1 FOR UPDATE",
                              tenant_id)
    if sub is None:
        return
    last = await conn.fetchval("SELECT max(period) FROM invoices WHERE tenant_id = $1",
                               tenant_id)
    period = from_date(last).next() if last is not None else from_date(sub["started_on"])
    plan_id, pending_id, pending_from = sub["plan_id"], sub["pending_plan_id"], \
        sub["pending_from"]
    while period <= upto:
        if pending_from is not None and pending_from <= period.first_day:
            plan_id, pending_id = pending_id, None
            await conn.execute(
                """UPDATE subscriptions SET plan_id = $2, current_from = $3,
                       pending_plan_id = NULL, pending_from = NULL, updated_at = $4
                   WHERE tenant_id = $1""", tenant_id, plan_id, pending_from, now)
            pending_from = None
        plan = await latest_version(conn, plan_id)
        assert plan is not None  # plans are never deleted
        await _new_invoice(conn, tenant_id, period, plan, period.first_day, False, now)
        period = period.next()


def _start_day(start: dt.date | None, today: dt.date) -> dt.date:
    if start is None:
        return today
    if not isinstance(start, dt.date) or isinstance(start, dt.datetime):
        raise InvalidField("start", "must be a date YYYY-MM-DD")
    if start > today or not period_of(today).contains(start):
        raise InvalidField("start", "may only go back to the first day of the running "
                                    "cycle, and not into the future")
    return start


async def subscribe(pool: asyncpg.Pool, store: CreditStore, *, tenant_id: uuid.UUID,
                    plan_id: str, now: dt.datetime, start: dt.date | None = None) -> Subscribed:
    """Subscribes a tenant (at once, granting the plan's credits after the commit) or
    schedules its change of plan (next cycle). `start` back-dates a first subscription
    within the running cycle."""
    now = utc(now)
    today = now.date()
    if not isinstance(plan_id, str) or not plan_id:
        raise InvalidField("plan_id", "must be a plan id")
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval("SELECT 1 FROM tenants WHERE id = $1", tenant_id) is None:
            raise NotFound("tenant")
        plan = await latest_version(conn, plan_id)
        if plan is None:
            raise InvalidField("plan_id", f"no plan {plan_id!r}")
        first_day = _start_day(start, today)
        inserted = await conn.fetchval(
            """INSERT INTO subscriptions (tenant_id, plan_id, current_from, started_on,
                                          updated_at)
               VALUES ($1, $2, $3, $3, $4) ON CONFLICT (tenant_id) DO NOTHING
               RETURNING true""", tenant_id, plan_id, first_day, now)
        if inserted:
            await _new_invoice(conn, tenant_id, period_of(today), plan, first_day, True, now)
            change = Change.STARTED
        else:
            if start is not None:
                raise InvalidField("start", "only a first subscription takes a start date")
            await open_cycles(conn, tenant_id, period_of(today), now)  # locks the row
            change = await _schedule(conn, tenant_id, plan_id, period_of(today).next(), now)
        view = await _tenant_plan(conn, tenant_id, now)
    if change is not Change.STARTED:
        return Subscribed(change, view)
    grant = await grant_plan_credits(pool, store, tenant_id=tenant_id,
                                     period=period_of(today), now=now)
    return Subscribed(change, view, grant)


async def _schedule(conn: asyncpg.Connection, tenant_id: uuid.UUID, plan_id: str,
                    next_cycle: Period, now: dt.datetime) -> Change:
    sub = await conn.fetchrow("SELECT plan_id, pending_plan_id FROM subscriptions "
                              "WHERE tenant_id = $1", tenant_id)
    if plan_id == sub["plan_id"]:
        if sub["pending_plan_id"] is None:
            return Change.UNCHANGED
        await conn.execute("UPDATE subscriptions SET pending_plan_id = NULL, "
                           "pending_from = NULL, updated_at = $2 WHERE tenant_id = $1",
                           tenant_id, now)
        return Change.CANCELLED
    if plan_id == sub["pending_plan_id"]:
        return Change.UNCHANGED
    await conn.execute("UPDATE subscriptions SET pending_plan_id = $2, pending_from = $3, "
                       "updated_at = $4 WHERE tenant_id = $1",
                       tenant_id, plan_id, next_cycle.first_day, now)
    return Change.SCHEDULED


async def tenant_plan(pool: asyncpg.Pool, tenant_id: uuid.UUID, now: dt.datetime) -> TenantPlan:
    """The plan billed in the running cycle and the one waiting for the next (a scheduled
    change, or a newer version of the current plan)."""
    async with pool.acquire() as conn:
        return await _tenant_plan(conn, tenant_id, utc(now))


async def _tenant_plan(conn: asyncpg.Connection, tenant_id: uuid.UUID,
                       now: dt.datetime) -> TenantPlan:
    sub = await conn.fetchrow("SELECT * FROM subscriptions WHERE tenant_id = $1", tenant_id)
    if sub is None:
        return TenantPlan(None, None)
    running = period_of(now)
    pending_id, pending_from = sub["pending_plan_id"], sub["pending_from"]
    invoice = await conn.fetchrow("SELECT plan_id, plan_version FROM invoices "
                                  "WHERE tenant_id = $1 AND period = $2",
                                  tenant_id, running.first_day)
    if invoice is not None:
        current = PlanTerm(await plan_version(conn, invoice["plan_id"], invoice["plan_version"]),
                           sub["current_from"])
    else:  # the cycle is not opened yet: what opening it will pin
        due = pending_from is not None and pending_from <= running.first_day
        plan = await latest_version(conn, pending_id if due else sub["plan_id"])
        assert plan is not None
        current = PlanTerm(plan, pending_from if due else sub["current_from"])
        if due:
            pending_id = pending_from = None
    if pending_id is not None and pending_from is not None:
        plan = await latest_version(conn, pending_id)
        assert plan is not None
        return TenantPlan(current, PlanTerm(plan, pending_from))
    newest = await latest_version(conn, current.plan.id)
    if newest is not None and newest.version > current.plan.version:
        return TenantPlan(current, PlanTerm(newest, running.next().first_day))
    return TenantPlan(current, None)
