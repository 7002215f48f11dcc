"""Shared steps of the billing scenario tests: plans as the operator writes them, a clock
the tests move, credits spent through the credit store and settled by the sink."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg

from gateway.cli_metering import drain
from metering.billing.plans import PlanInput, create_plan
from metering.credit_store import CreditStore
from metering.sink import Sink

C = 1_000_000


def at(text: str) -> dt.datetime:
    """"2027-01-15 10:00" in UTC."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def growth(**changes: Any) -> PlanInput:
    """Seed 000's plan: 20,000 setup, 4,950 a month, 12 per success (TRY)."""
    fields: dict[str, Any] = dict(id="growth", name="Growth", currency="TRY",
                                  setup_fee="20000.00", monthly_fee="4950.00",
                                  success_fee="12.00", included_credits=150_000,
                                  credit_rollover=False)
    fields.update(changes)
    return PlanInput(**fields)


async def add_plan(pool: asyncpg.Pool, now: dt.datetime, **changes: Any) -> None:
    await create_plan(pool, growth(**changes), now=now)


async def spend(pool: asyncpg.Pool, store: CreditStore, tenant: uuid.UUID, micro: int,
                now: dt.datetime) -> None:
    """A one-shot charge at `now`, settled into the ledger."""
    await store.charge(str(tenant), f"chg-{uuid.uuid4().hex[:12]}", channel="sms",
                       micro=micro, usage={"sms_sent_segments": 1},
                       now_ms=int(now.timestamp() * 1000))
    await drain(Sink(store.redis, pool, store.prefix))
