"""`emit`: one webhook message per subscribed endpoint, written in the caller's
transaction, so an event exists exactly when its cause committed. A NOTIFY in the same
transaction wakes the delivery workers at the commit (none for a rollback).

Idempotent on (endpoint, webhook id): emitting the same cause again (a retried
transaction, a replayed sink batch) adds nothing. A tenant without a subscribed,
enabled endpoint costs one indexed lookup and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from metering.notify.events import EVENT_TYPES, TEST_EVENT, event_body, webhook_id


@dataclass(frozen=True)
class Event:
    tenant_id: uuid.UUID
    event_type: str
    data: dict[str, Any]
    cause_id: str  # the id of what caused it: a success's event id, a session id, ...
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def webhook_id(self) -> str:
        return webhook_id(self.event_type, self.cause_id)


# PostgreSQL NOTIFY channel the delivery workers LISTEN on (metering.notify.delivery).
NOTIFY_CHANNEL = "voicegw_webhooks"

_INSERT = """
INSERT INTO webhook_messages (endpoint_id, tenant_id, webhook_id, event_type, body,
                              next_attempt_at, created_at)
SELECT e.id, e.tenant_id, ev.webhook_id, ev.event_type, ev.body, ev.at, ev.at
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::timestamptz[])
     WITH ORDINALITY AS ev(tenant_id, event_type, webhook_id, body, at, n)
JOIN webhook_endpoints e ON e.tenant_id = ev.tenant_id AND e.enabled
                         AND ev.event_type = ANY(e.events)
ORDER BY ev.n  -- ids in the order the events happened (delivery order among equals)
ON CONFLICT (endpoint_id, webhook_id) DO NOTHING
"""


async def emit_many(conn: asyncpg.Connection, events: Sequence[Event]) -> int:
    """Writes the messages of many events in one statement; how many were new."""
    if not events:
        return 0
    for event in events:
        if event.event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event.event_type!r}")
    status = await conn.execute(
        _INSERT, [e.tenant_id for e in events], [e.event_type for e in events],
        [e.webhook_id for e in events],
        [event_body(e.event_type, e.data, e.at) for e in events], [e.at for e in events])
    written = int(status.rsplit(" ", 1)[-1])
    if written:  # wakes the delivery workers when (and only if) the transaction commits
        await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    return written


async def emit(conn: asyncpg.Connection, tenant_id: uuid.UUID, event_type: str,
               data: dict[str, Any], event_id: str, at: dt.datetime | None = None) -> int:
    """One event to every endpoint of the tenant subscribed to `event_type`, inside the
    caller's transaction; `event_id` is the cause's id (same id, same message)."""
    event = Event(tenant_id, event_type, data, event_id, at or dt.datetime.now(dt.UTC))
    return await emit_many(conn, [event])


async def subscribed_tenants(conn: asyncpg.Connection, tenants: Iterable[uuid.UUID],
                             event_type: str) -> set[uuid.UUID]:
    """Which of `tenants` have an enabled endpoint subscribed to `event_type`."""
    rows = await conn.fetch(
        "SELECT DISTINCT tenant_id FROM webhook_endpoints WHERE tenant_id = ANY($1::uuid[]) "
        "AND enabled AND $2 = ANY(events)", list(set(tenants)), event_type)
    return {row["tenant_id"] for row in rows}


async def emit_test(conn: asyncpg.Connection, endpoint_id: uuid.UUID, tenant_id: uuid.UUID,
                    at: dt.datetime) -> str:
    """A `webhook.test` message to one endpoint (whatever it subscribes to)."""
    cause = uuid.uuid4().hex
    msg_id = webhook_id(TEST_EVENT, cause)
    body = event_body(TEST_EVENT, {"endpoint_id": str(endpoint_id)}, at)
    await conn.execute(
        """INSERT INTO webhook_messages (endpoint_id, tenant_id, webhook_id, event_type, body,
                                         next_attempt_at, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $6)""",
        endpoint_id, tenant_id, msg_id, TEST_EVENT, body, at)
    return msg_id
