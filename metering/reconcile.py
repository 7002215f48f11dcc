"""Reconciliation: does every tenant's live balance in Redis agree with the ledger?

The ledger of record is PostgreSQL: top-ups and plan-credit grants minus settled debits
and expired plan credits. Redis must show the same top-ups, grants, debits and expiries,
and available = top-ups + grants - debits - expiries - open reservations. A grant whose
live credit is still pending (Redis was down; the billing cycle job retries it) shows as
a difference until it is applied. Compare
after the sink has drained (the CLI drains first), or the newest debits are still on
their way. `repair` rebuilds each differing tenant from the ledger (Redis lost its data),
unless the ledger's totals are beyond what an account can hold (`metering.bounds`): then
nothing is written and the differences say why (`refused`), for an operator to decide.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace

import asyncpg

from metering.bounds import OutOfBounds
from metering.credit_store import CreditStore


@dataclass(frozen=True)
class Difference:
    tenant: str
    field: str
    redis: int
    ledger: int
    refused: str = ""  # why --repair did not repair it

    def __str__(self) -> str:
        text = (f"tenant {self.tenant}: {self.field} redis={self.redis} ledger={self.ledger} "
                f"(difference {self.redis - self.ledger:+d} micro-credits)")
        return f"{text}; NOT repaired: {self.refused}" if self.refused else text


@dataclass(frozen=True)
class LedgerTotals:
    topped_up: int
    billed: int
    topup_ids: list[str]
    granted: int = 0
    expired: int = 0
    plan_credits: dict[str, int] = field(default_factory=dict)  # "grant:2026-11" -> micro

    @property
    def balance(self) -> int:
        return self.topped_up + self.granted - self.billed - self.expired


async def ledger_totals(pool: asyncpg.Pool, tenant: uuid.UUID) -> LedgerTotals:
    topups = await pool.fetch("SELECT id, micro_credits FROM topups WHERE tenant_id = $1", tenant)
    billed = await pool.fetchval(
        "SELECT coalesce(sum(micro_credits), 0)::bigint FROM ledger_entries WHERE tenant_id = $1",
        tenant)
    credits = await pool.fetch(
        "SELECT kind, period, micro_credits FROM plan_credits WHERE tenant_id = $1", tenant)
    plan_credits = {f"{r['kind']}:{r['period']:%Y-%m}": r["micro_credits"] for r in credits}
    return LedgerTotals(sum(r["micro_credits"] for r in topups), int(billed),
                        [str(r["id"]) for r in topups],
                        granted=sum(r["micro_credits"] for r in credits if r["kind"] == "grant"),
                        expired=sum(r["micro_credits"] for r in credits
                                    if r["kind"] == "expiry"),
                        plan_credits=plan_credits)


async def reconcile_tenant(pool: asyncpg.Pool, store: CreditStore,
                           tenant: uuid.UUID) -> list[Difference]:
    ledger = await ledger_totals(pool, tenant)
    live = await store.balance(str(tenant))
    name = str(tenant)
    found: list[Difference] = []
    if live.topped_up != ledger.topped_up:
        found.append(Difference(name, "topped_up", live.topped_up, ledger.topped_up))
    if live.billed != ledger.billed:
        found.append(Difference(name, "billed", live.billed, ledger.billed))
    if live.granted != ledger.granted:
        found.append(Difference(name, "granted", live.granted, ledger.granted))
    if live.expired != ledger.expired:
        found.append(Difference(name, "expired", live.expired, ledger.expired))
    expected_available = ledger.balance - live.reserved
    if live.available != expected_available:
        found.append(Difference(name, "available", live.available, expected_available))
    return found


async def reconcile(pool: asyncpg.Pool, store: CreditStore, *,
                    repair: bool = False) -> list[Difference]:
    """Every difference found (before repair, when repairing; those a repair refused carry
    the reason in `refused`)."""
    tenants = [row["id"] for row in await pool.fetch("SELECT id FROM tenants ORDER BY id")]
    found: list[Difference] = []
    for tenant in tenants:
        differences = await reconcile_tenant(pool, store, tenant)
        if differences and repair:
            ledger = await ledger_totals(pool, tenant)
            try:
                await store.rebuild(str(tenant), topped_up=ledger.topped_up,
                                    billed=ledger.billed, topup_ids=ledger.topup_ids,
                                    granted=ledger.granted, expired=ledger.expired,
                                    plan_credits=ledger.plan_credits)
            except OutOfBounds as exc:
                differences = [replace(d, refused=str(exc)) for d in differences]
        found.extend(differences)
    return found
