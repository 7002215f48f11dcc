"""Every delivery attempt of an endpoint, newest first, as the tenant sees them."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from metering.notify.endpoints import get_endpoint
from metering.notify.errors import InvalidField
from metering.notify.pagination import Page, check_limit, decode_cursor, encode_cursor


@dataclass(frozen=True)
class Attempt:
    id: int
    webhook_id: str
    event_type: str
    attempt: int
    status: str  # succeeded | failed
    response_code: int | None
    error: str | None
    duration_ms: int
    attempted_at: dt.datetime


async def list_deliveries(pool: asyncpg.Pool, tenant_id: uuid.UUID, endpoint_id: uuid.UUID,
                          *, cursor: str | None = None, limit: int = 50) -> Page[Attempt]:
    """Raises NotFound for another tenant's (or no) endpoint."""
    check_limit(limit)
    await get_endpoint(pool, tenant_id, endpoint_id)
    before_at, before_id = (decode_cursor(cursor) if cursor
                            else (dt.datetime.max.replace(tzinfo=dt.UTC), str(2**62)))
    if not before_id.isdigit():
        raise InvalidField("cursor", "is not a cursor this list gave out")
    rows = await pool.fetch(
        """SELECT a.id, m.webhook_id, m.event_type, a.attempt, a.status, a.response_code,
                  a.error, a.duration_ms, a.attempted_at
           FROM webhook_attempts a JOIN webhook_messages m ON m.id = a.message_id
           WHERE a.endpoint_id = $1 AND (a.attempted_at, a.id) < ($2, $3)
           ORDER BY a.attempted_at DESC, a.id DESC LIMIT $4""",
        endpoint_id, before_at, int(before_id), limit + 1)
    items = [Attempt(**dict(row)) for row in rows[:limit]]
    more = len(rows) > limit
    return Page(items, encode_cursor(items[-1].attempted_at, str(items[-1].id)) if more else None)
