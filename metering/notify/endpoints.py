"""Webhook endpoints as data: one service function per operation of the API.

`create_endpoint` returns the signing secret; it is shown once (the API never shows it
again), and stored because signing needs the key itself.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from metering.notify.errors import InvalidField, NotFound
from metering.notify.events import EVENT_TYPES
from metering.notify.outbox import emit_test
from metering.notify.pagination import Page, check_limit, decode_cursor, encode_cursor
from metering.notify.signing import new_secret
from metering.notify.urls import check_url

MAX_ENDPOINTS = 20  # per tenant


@dataclass(frozen=True)
class Endpoint:
    id: uuid.UUID
    url: str
    events: list[str]
    enabled: bool
    created_at: dt.datetime
    disabled_at: dt.datetime | None


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: Endpoint
    secret: str  # whsec_...: shown once



def _endpoint(row: asyncpg.Record) -> Endpoint:
    return Endpoint(row["id"], row["url"], list(row["events"]), row["enabled"],
                    row["created_at"], row["disabled_at"])


def check_events(events: Sequence[str]) -> list[str]:
    if isinstance(events, str) or not isinstance(events, Sequence) or not events:
        raise InvalidField("events", "must be a non-empty list of event types")
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise InvalidField("events", f"unknown event types {unknown}; known: "
                                     f"{', '.join(EVENT_TYPES)}")
    return sorted(set(events), key=EVENT_TYPES.index)


async def create_endpoint(pool: asyncpg.Pool, tenant_id: uuid.UUID, url: str,
                          events: Sequence[str], *, allow_private: bool) -> CreatedEndpoint:
    """Raises InvalidField naming `url` or `events`."""
    chosen = check_events(events)
    await check_url(url, allow_private=allow_private)
    secret = new_secret()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE", tenant_id)
        count = await conn.fetchval(
            "SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1", tenant_id)
        if count >= MAX_ENDPOINTS:
            raise InvalidField("url", f"a tenant has at most {MAX_ENDPOINTS} endpoints")
        row = await conn.fetchrow(
            """INSERT INTO webhook_endpoints (id, tenant_id, url, events, secret)
                VALUES ($1, $2, $3, $4, $5)
               RETURNING id, url, events, enabled, created_at, disabled_at""",
            uuid.uuid4(), tenant_id, url, chosen, secret)
    return CreatedEndpoint(_endpoint(row), secret)


async def list_endpoints(pool: asyncpg.Pool, tenant_id: uuid.UUID, *,
                         cursor: str | None = None, limit: int = 50) -> Page[Endpoint]:
    """Oldest first."""
    check_limit(limit)
    after_at, after_id = (decode_cursor(cursor) if cursor
                          else (dt.datetime.min.replace(tzinfo=dt.UTC), str(uuid.UUID(int=0))))
    try:
        after_uuid = uuid.UUID(after_id)
    except ValueError as exc:
        raise InvalidField("cursor", "is not a cursor this list gave out") from exc
    rows = await pool.fetch(
        """SELECT id, url, events, enabled, created_at, disabled_at FROM webhook_endpoints
            WHERE tenant_id = $1
            AND (created_at, id) > ($2, $3) ORDER BY created_at, id LIMIT $4""",
        tenant_id, after_at, after_uuid, limit + 1)
    items = [_endpoint(row) for row in rows[:limit]]
    more = len(rows) > limit
    return Page(items, encode_cursor(items[-1].created_at, str(items[-1].id)) if more else None)


async def get_endpoint(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID,
                       endpoint_id: uuid.UUID) -> Endpoint:
    row = await conn.fetchrow(
        "SELECT id, url, events, enabled, created_at, disabled_at FROM webhook_endpoints "
        "WHERE id = $1 AND tenant_id = $2",
        endpoint_id, tenant_id)
    if row is None:
        raise NotFound("no such webhook endpoint")
    return _endpoint(row)


async def delete_endpoint(pool: asyncpg.Pool, tenant_id: uuid.UUID,
                          endpoint_id: uuid.UUID) -> None:
    """Deletes the endpoint, its pending messages and its attempt log."""
    status = await pool.execute(
        "DELETE FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2", endpoint_id, tenant_id)
    if status == "DELETE 0":
        raise NotFound("no such webhook endpoint")


async def send_test(pool: asyncpg.Pool, tenant_id: uuid.UUID, endpoint_id: uuid.UUID,
                    at: dt.datetime | None = None) -> str:
    """Queues a `webhook.test` event to the endpoint; its webhook id (see its deliveries)."""
    async with pool.acquire() as conn, conn.transaction():
        await get_endpoint(conn, tenant_id, endpoint_id)
        return await emit_test(conn, endpoint_id, tenant_id, at or dt.datetime.now(dt.UTC))
