"""Conversations written the way the capture side writes them (migration 0007): a row when
the conversation starts, the final figures and `settled_at` in one UPDATE when it ends, a
rating on text arriving after that."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

UTC = dt.UTC


@dataclass
class Conv:
    channel: str
    customer: str
    start: dt.datetime  # UTC
    seconds: int
    answered_ms: int | None = None  # first response; None: never answered
    disposition: str = "completed"
    outcomes: list[str] = field(default_factory=list)  # kinds
    handoff: bool = False
    resolved: bool = False
    micro_credits: int = 0
    rating: int | None = None  # given during the conversation (phone: DTMF)
    rating_after: int | None = None  # arrives after settlement (text)
    settle: bool = True
    direction: str = "inbound"
    id: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=self.seconds)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


async def start(pool: asyncpg.Pool, tenant_id: str, c: Conv) -> None:
    await pool.execute(
        """INSERT INTO conversations (id, tenant_id, channel, direction, customer_hash,
               customer_masked, call_sid, started_at, last_activity_at)
           VALUES ($1, $2::uuid, $3, $4, $5, $6, $7, $8, $8)""",
        c.id, tenant_id, c.channel, c.direction, f"hash-{c.customer}",
        f"+90******{c.customer}", f"CA{c.id.hex}" if c.channel == "phone" else None, c.start)


async def settle(pool: asyncpg.Pool, c: Conv) -> None:
    answered = None if c.answered_ms is None else c.start + dt.timedelta(
        milliseconds=c.answered_ms)
    outcomes = [{"kind": kind, "record_id": str(uuid.uuid4()), "at": c.end.isoformat()}
                for kind in c.outcomes]
    await pool.execute(
        """UPDATE conversations SET ended_at = $2, last_activity_at = $2, answered_at = $3,
               first_response_ms = $4, disposition = $5, outcomes = $6::jsonb,
               successes = $7, handoff = $8, resolved = $9, micro_credits = $10,
               rating = $11,
               rated_at = CASE WHEN $11::smallint IS NULL THEN NULL ELSE $2::timestamptz END,
               settled_at = $2
           WHERE id = $1""",
        c.id, c.end, answered, c.answered_ms, c.disposition, orjson.dumps(outcomes).decode(),
        len(c.outcomes), c.handoff, c.resolved, c.micro_credits, c.rating)


async def rate(pool: asyncpg.Pool, c: Conv, rating: int) -> None:
    await pool.execute("UPDATE conversations SET rating = $2, rated_at = now() WHERE id = $1",
                       c.id, rating)


async def play(pool: asyncpg.Pool, tenant_id: str, conversations: list[Conv]) -> None:
    """Starts and ends the conversations in the order things happen."""
    events: list[tuple[dt.datetime, int, Conv]] = []
    for c in conversations:
        events.append((c.start, 0, c))
        if c.settle:
            events.append((c.end, 1, c))
            if c.rating_after is not None:
                events.append((c.end + dt.timedelta(minutes=5), 2, c))
    for _, kind, c in sorted(events, key=lambda e: (e[0], e[1])):
        if kind == 0:
            await start(pool, tenant_id, c)
        elif kind == 1:
            await settle(pool, c)
        else:
            assert c.rating_after is not None
            await rate(pool, c, c.rating_after)


async def subscribe_plan(pool: asyncpg.Pool, tenant_id: str, started_on: dt.date, *,
                         monthly_fee: int, success_fee: int, currency: str = "TRY") -> None:
    """The rows a subscription leaves (metering.billing.subscriptions), written directly."""
    await pool.execute(
        """INSERT INTO plans (id, version, name, currency, setup_fee, monthly_fee, success_fee,
               included_credits, credit_rollover, request_hash, created_at)
           VALUES ('growth', 1, 'Growth', $1, 0, $2, $3, 0, true, 'x', now())
           ON CONFLICT DO NOTHING""", currency, monthly_fee, success_fee)
    await pool.execute(
        """INSERT INTO subscriptions (tenant_id, plan_id, current_from, started_on, updated_at)
           VALUES ($1::uuid, 'growth', $2, $2, now())""", tenant_id, started_on)


def kpi(body: dict[str, Any], name: str) -> Any:
    return body["totals"][name]
