"""Successful outcomes (appointment booked, ticket taken, order placed) and handoffs to a
human, written once each to the ledger of record.

An outcome and its business record are written in one transaction, keyed by an event id
derived from the session and the LLM's tool-call id: a retried or replayed tool call
finds the event already there and returns the record it created the first time, so the
customer gets the same confirmation and the tenant is billed one success.

The tenant's `success.created` and `handoff.requested` webhooks are written in the same
transaction as the event (metering.notify.outbox): sent exactly when it was recorded.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
import orjson

from metering.notify.outbox import emit

OutcomeKind = Literal["appointment_booked", "ticket_created", "order_placed"]
OUTCOME_KINDS: tuple[OutcomeKind, ...] = ("appointment_booked", "ticket_created",
                                          "order_placed")

# A namespace for record ids derived from event ids (uuid5): the same event, the same id.
_RECORD_NAMESPACE = uuid.UUID("6f1f8c1e-4a53-4d0b-9b0e-2f7c9b7a1d42")


@dataclass(frozen=True)
class Origin:
    """Where an outcome comes from: whose session, on which channel, with which customer."""

    tenant_id: uuid.UUID
    session_id: str
    channel: str
    customer: str


@dataclass(frozen=True)
class Appointment:
    name: str
    requested_for: str
    service: str
    notes: str = ""


@dataclass(frozen=True)
class Ticket:
    summary: str
    priority: str = "normal"


@dataclass(frozen=True)
class Order:
    items: tuple[tuple[str, int], ...]
    notes: str = ""


@dataclass(frozen=True)
class RecordedOutcome:
    event_id: str
    kind: OutcomeKind
    record_id: uuid.UUID
    created: bool  # False: the event was already recorded (a replayed tool call)


def outcome_event_id(session_id: str, call_id: str) -> str:
    return f"{session_id}:{call_id}"


async def record_outcome(pool: asyncpg.Pool, origin: Origin, call_id: str,
                         record: Appointment | Ticket | Order) -> RecordedOutcome:
    """Writes the business record and its success event in one transaction, once."""
    event_id = outcome_event_id(origin.session_id, call_id)
    record_id = uuid.uuid5(_RECORD_NAMESPACE, event_id)
    kind, table, columns, values = _business_row(record)
    async with pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetchval(
            """INSERT INTO success_events (event_id, tenant_id, session_id, channel, kind,
                                           record_id)
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING true""",
            event_id, origin.tenant_id, origin.session_id, origin.channel, kind, record_id)
        if inserted:
            names = ", ".join(("id", "tenant_id", "session_id", "customer", *columns))
            marks = ", ".join(f"${i}" for i in range(1, 5 + len(columns)))
            await conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})",  # noqa: S608
                               record_id, origin.tenant_id, origin.session_id,
                               origin.customer, *values)
            await emit(conn, origin.tenant_id, "success.created", {
                "event_id": event_id, "kind": kind, "record_id": str(record_id),
                "session_id": origin.session_id, "channel": origin.channel,
                "source": "agent"}, event_id)
    return RecordedOutcome(event_id, kind, record_id, created=bool(inserted))


def _business_row(record: Appointment | Ticket | Order
                  ) -> tuple[OutcomeKind, str, tuple[str, ...], tuple[Any, ...]]:
    if isinstance(record, Appointment):
        return ("appointment_booked", "appointments",
                ("name", "requested_for", "service", "notes"),
                (record.name, record.requested_for, record.service, record.notes))
    if isinstance(record, Ticket):
        return "ticket_created", "support_tickets", ("summary", "priority"), \
            (record.summary, record.priority)
    items = [{"name": name, "quantity": quantity} for name, quantity in record.items]
    return "order_placed", "orders", ("items", "notes"), \
        (orjson.dumps(items).decode(), record.notes)


async def record_handoff(pool: asyncpg.Pool, origin: Origin, call_id: str, reason: str,
                         target: str | None) -> bool:
    """Records a handoff to a human once; True when this call recorded it."""
    event_id = outcome_event_id(origin.session_id, call_id)
    async with pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetchval(
            """INSERT INTO handoffs (event_id, tenant_id, session_id, channel, reason, target)
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING true""",
            event_id, origin.tenant_id, origin.session_id, origin.channel, reason, target)
        if inserted:
            await emit(conn, origin.tenant_id, "handoff.requested", {
                "event_id": event_id, "session_id": origin.session_id,
                "channel": origin.channel, "reason": reason, "target": target}, event_id)
    return bool(inserted)


async def outcomes_of_session(pool: asyncpg.Pool, session_id: str) -> list[asyncpg.Record]:
    return list(await pool.fetch(
        "SELECT event_id, kind, record_id, channel, occurred_at FROM success_events "
        "WHERE session_id = $1 ORDER BY occurred_at", session_id))


async def success_counts(pool: asyncpg.Pool, tenant_id: uuid.UUID, since: dt.datetime,
                         until: dt.datetime) -> dict[str, int]:
    """Successes per kind in a period, for reports and the dashboard."""
    rows = await pool.fetch(
        "SELECT kind, count(*) AS n FROM success_events WHERE tenant_id = $1 "
        "AND occurred_at >= $2 AND occurred_at < $3 GROUP BY kind", tenant_id, since, until)
    return {row["kind"]: int(row["n"]) for row in rows}
