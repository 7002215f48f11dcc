"""Messages, statuses, pricing, paused notices and rejects in PostgreSQL.

The inbound row is the unit of exactly-once work. Its primary key (channel, vendor id)
is the dedupe; `attempt` is a fencing token: a worker takes a row by raising it (with a
lease), and every later transition names the attempt it holds, so a worker whose lease
ran out and was taken over can no longer move the row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

LEASE_S = 120  # a message not finished within this is taken over by another worker

_COLUMNS = ("channel, vendor_id, tenant_id, business, customer, kind, body, segments, "
            "vendor_time, attempt, payload")


def _clean(value: Any) -> Any:
    """PostgreSQL text and jsonb cannot hold NUL (U+0000); a vendor payload may. Each NUL
    becomes U+FFFD, so the message is stored (and answered) instead of failing the batch."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _text(value: str | None) -> str | None:
    return None if value is None else value.replace("\x00", "\ufffd")


def _jsonb(value: Any) -> str:
    return orjson.dumps(_clean(value)).decode()


@dataclass(frozen=True)
class NewInbound:
    channel: str
    vendor_id: str
    tenant_id: uuid.UUID
    business: str
    customer: str
    kind: str
    body: str | None
    segments: int | None
    vendor_time: dt.datetime
    payload: dict[str, Any]  # {"item": what the vendor sent, "profile_name": ...}


@dataclass(frozen=True)
class Inbound:
    """An inbound message held by a worker (at `attempt`) for answering."""

    channel: str
    vendor_id: str
    tenant_id: uuid.UUID
    business: str
    customer: str
    kind: str
    body: str | None
    segments: int | None
    vendor_time: dt.datetime
    attempt: int
    profile_name: str | None = None

    @property
    def exchange_id(self) -> str:
        """The id tool outcomes of this exchange hang on, the same on every attempt."""
        return f"{'wa' if self.channel == 'whatsapp' else 'sms'}-{self.vendor_id}"

    @property
    def credit_session_id(self) -> str:
        return self.exchange_id if self.attempt == 1 else f"{self.exchange_id}.a{self.attempt}"


def _inbound(row: asyncpg.Record) -> Inbound:
    payload = orjson.loads(row["payload"]) if isinstance(row["payload"], str) else {}
    name = payload.get("profile_name") if isinstance(payload, dict) else None
    return Inbound(row["channel"], row["vendor_id"], row["tenant_id"], row["business"],
                   row["customer"], row["kind"], row["body"], row["segments"],
                   row["vendor_time"], row["attempt"], name)


async def record_inbound(conn: asyncpg.Connection, rows: Sequence[NewInbound]
                         ) -> list[Inbound]:
    """Inserts the messages not seen before (leased to the caller); duplicates vanish."""
    if not rows:
        return []
    records = await conn.fetch(
        f"""INSERT INTO messages ({_COLUMNS}, direction, state, lease_until)
            SELECT *, 'in', 'received', now() + make_interval(secs => $11)
            FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::text[],
                        $6::text[], $7::text[], $8::int[], $9::timestamptz[], $10::int[],
                        $12::jsonb[])
            ON CONFLICT DO NOTHING
            RETURNING {_COLUMNS}""",  # noqa: S608 - column names are constants
        [r.channel for r in rows], [r.vendor_id for r in rows], [r.tenant_id for r in rows],
        [r.business for r in rows], [r.customer for r in rows], [r.kind for r in rows],
        [_text(r.body) for r in rows], [r.segments for r in rows],
        [r.vendor_time for r in rows],
        [1] * len(rows), float(LEASE_S),
        [_jsonb(r.payload) for r in rows])
    return [_inbound(record) for record in records]


async def record_inbound_sms(pool: asyncpg.Pool, row: NewInbound
                             ) -> tuple[Inbound | None, bool]:
    """An SMS to our number `row.business`, stored with the tenant holding that number, in
    one statement. Returns (the message if stored now, whether it is stored at all: False
    means no tenant holds the number)."""
    record = await pool.fetchrow(
        f"""INSERT INTO messages ({_COLUMNS}, direction, state, lease_until)
            SELECT 'sms', $1, tenant_id, phone_number, $2, $3, $4, $5, $6, 1, $7::jsonb,
                   'in', 'received', now() + make_interval(secs => $8)
            FROM phone_numbers WHERE phone_number = $9 AND released_at IS NULL
            ON CONFLICT DO NOTHING
            RETURNING {_COLUMNS}""",  # noqa: S608 - column names are constants
        row.vendor_id, row.customer, row.kind, _text(row.body), row.segments,
        row.vendor_time, _jsonb(row.payload), float(LEASE_S), row.business)
    if record is not None:
        return _inbound(record), True
    seen = await pool.fetchval("SELECT true FROM messages WHERE channel = 'sms' "
                               "AND vendor_id = $1", row.vendor_id)
    return None, bool(seen)


async def take_over_stale(pool: asyncpg.Pool, limit: int) -> list[Inbound]:
    """Messages whose worker died (lease expired while `received`), taken by this one."""
    records = await pool.fetch(
        f"""UPDATE messages SET attempt = attempt + 1, updated_at = now(),
                   lease_until = now() + make_interval(secs => $1)
            WHERE (channel, vendor_id) IN (
                SELECT channel, vendor_id FROM messages
                WHERE direction = 'in' AND state = 'received' AND lease_until < now()
                ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED)
            RETURNING {_COLUMNS}""",  # noqa: S608 - column names are constants
        float(LEASE_S), limit)
    return [_inbound(record) for record in records]


async def give_up_sending(pool: asyncpg.Pool) -> int:
    """Messages whose worker died between deciding to send and recording the answer: we
    cannot know whether the vendor got the reply, so it is not sent again."""
    status: str = await pool.execute(
        """UPDATE messages SET state = 'unknown', updated_at = now()
           WHERE direction = 'in' AND state = 'sending' AND lease_until < now()""")
    return int(status.split()[-1])


async def move(pool: asyncpg.Pool, msg: Inbound, to_state: str, *,
               from_states: Iterable[str] = ("received",), error: Any = None,
               reply_id: str | None = None, session_id: str | None = None) -> bool:
    """A fenced transition: only the worker holding `msg.attempt` moves the row."""
    status: str = await pool.execute(
        """UPDATE messages SET state = $4, updated_at = now(),
               error = COALESCE($5::jsonb, error), reply_id = COALESCE($6, reply_id),
               session_id = COALESCE($8, session_id),
               lease_until = CASE WHEN $4 = 'sending' THEN now() + make_interval(secs => $9)
                                  ELSE lease_until END
           WHERE channel = $1 AND vendor_id = $2 AND attempt = $3 AND state = ANY($7)""",
        msg.channel, msg.vendor_id, msg.attempt, to_state,
        None if error is None else _jsonb(error), reply_id,
        list(from_states), session_id, float(LEASE_S))
    return status.endswith(" 1")


async def retry_later(pool: asyncpg.Pool, msg: Inbound, delay_s: float) -> None:
    """Lets the lease run out in `delay_s`, for the recovery loop to try again."""
    await pool.execute(
        """UPDATE messages SET lease_until = now() + make_interval(secs => $4)
           WHERE channel = $1 AND vendor_id = $2 AND attempt = $3 AND state = 'received'""",
        msg.channel, msg.vendor_id, msg.attempt, float(delay_s))


@dataclass(frozen=True)
class Outbound:
    channel: str
    vendor_id: str
    tenant_id: uuid.UUID
    business: str
    customer: str
    kind: str  # reply | api | notice
    body: str
    segments: int | None
    reply_to: str | None = None
    session_id: str | None = None
    charge_pending: bool = False


async def record_outbound(pool: asyncpg.Pool, out: Outbound) -> None:
    await pool.execute(
        """INSERT INTO messages (channel, vendor_id, direction, tenant_id, business, customer,
               kind, body, segments, vendor_time, state, attempt, reply_to, session_id,
               charge_pending)
           VALUES ($1, $2, 'out', $3, $4, $5, $6, $7, $8, now(), 'sent', 1, $9, $10, $11)
           ON CONFLICT DO NOTHING""",
        out.channel, out.vendor_id, out.tenant_id, out.business, out.customer, out.kind,
        _text(out.body), out.segments, out.reply_to, out.session_id, out.charge_pending)


async def record_reply(pool: asyncpg.Pool, msg: Inbound, out: Outbound) -> bool:
    """The reply sent and the inbound message `replied`, in one statement (fenced)."""
    moved: bool | None = await pool.fetchval(
        """WITH reply AS (
               INSERT INTO messages (channel, vendor_id, direction, tenant_id, business,
                   customer, kind, body, segments, vendor_time, state, attempt, reply_to,
                   session_id)
               VALUES ($1, $2, 'out', $3, $4, $5, $6, $7, $8, now(), 'sent', 1, $9, $10)
               ON CONFLICT DO NOTHING)
           UPDATE messages SET state = 'replied', reply_id = $2, updated_at = now()
           WHERE channel = $1 AND vendor_id = $9 AND attempt = $11 AND state = 'sending'
           RETURNING true""",
        out.channel, out.vendor_id, out.tenant_id, out.business, out.customer, out.kind,
        _text(out.body), out.segments, msg.vendor_id, out.session_id, msg.attempt)
    return bool(moved)


async def set_charge_pending(pool: asyncpg.Pool, channel: str, vendor_id: str,
                             pending: bool) -> None:
    await pool.execute("UPDATE messages SET charge_pending = $3 WHERE channel = $1 "
                       "AND vendor_id = $2", channel, vendor_id, pending)


async def pending_charges(pool: asyncpg.Pool, limit: int) -> list[asyncpg.Record]:
    return list(await pool.fetch(
        """SELECT channel, vendor_id, direction, tenant_id, kind, segments,
                  extract(epoch FROM created_at) * 1000 AS created_ms
           FROM messages WHERE charge_pending ORDER BY created_at LIMIT $1""", limit))


async def claim_paused_notice(pool: asyncpg.Pool, tenant_id: uuid.UUID, channel: str,
                              customer: str, episode: int) -> bool:
    inserted: bool | None = await pool.fetchval(
        """INSERT INTO paused_notices (tenant_id, channel, customer, episode)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true""",
        tenant_id, channel, customer, episode)
    return bool(inserted)


async def notice_sent(pool: asyncpg.Pool, tenant_id: uuid.UUID, channel: str, customer: str,
                      episode: int, vendor_id: str) -> None:
    await pool.execute(
        """UPDATE paused_notices SET vendor_id = $5 WHERE tenant_id = $1 AND channel = $2
           AND customer = $3 AND episode = $4""", tenant_id, channel, customer, episode,
        vendor_id)


@dataclass(frozen=True)
class StatusRow:
    channel: str
    vendor_id: str
    status: str
    tenant_id: uuid.UUID | None
    occurred_at: dt.datetime
    errors: list[dict[str, Any]]
    payload: dict[str, Any]


async def record_statuses(conn: asyncpg.Connection, rows: Sequence[StatusRow]) -> None:
    if rows:
        await conn.executemany(
            """INSERT INTO message_statuses (channel, vendor_id, status, tenant_id,
                   occurred_at, errors, payload)
               VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb) ON CONFLICT DO NOTHING""",
            [(r.channel, r.vendor_id, r.status, r.tenant_id, r.occurred_at,
              _jsonb(r.errors), _jsonb(r.payload))
             for r in rows])


async def record_pricing(conn: asyncpg.Connection,
                         rows: Sequence[tuple[str, uuid.UUID | None, Any, dict[str, Any]]]
                         ) -> None:
    """(wamid, tenant, Pricing, raw status) rows, kept once per message id."""
    if rows:
        await conn.executemany(
            """INSERT INTO message_pricing (vendor_id, tenant_id, billable, pricing_model,
                   category, conversation_id, conversation_origin, payload)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) ON CONFLICT DO NOTHING""",
            [(wamid, tenant, p.billable, p.pricing_model, p.category, p.conversation_id,
              p.conversation_origin, _jsonb(raw))
             for wamid, tenant, p, raw in rows])


async def record_rejects(conn: asyncpg.Connection | asyncpg.Pool, channel: str,
                         items: Sequence[tuple[str, str]]) -> None:
    """(reason, content) pairs, each kept once."""
    if items:
        await conn.executemany(
            """INSERT INTO webhook_rejects (channel, reason, payload, payload_sha256)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
            [(channel, _text(reason[:300]), _text(content),
              hashlib.sha256(content.encode("utf-8", "replace")).hexdigest())
             for reason, content in items])


async def tenants_by_whatsapp_id(conn: asyncpg.Connection, ids: Iterable[str]
                                 ) -> dict[str, uuid.UUID]:
    rows = await conn.fetch(
        """SELECT whatsapp_phone_number_id AS id, tenant_id FROM phone_numbers
           WHERE whatsapp_phone_number_id = ANY($1) AND released_at IS NULL""", list(ids))
    return {row["id"]: row["tenant_id"] for row in rows}


async def tenant_of_message(pool: asyncpg.Pool, channel: str, vendor_id: str
                            ) -> uuid.UUID | None:
    found: uuid.UUID | None = await pool.fetchval(
        "SELECT tenant_id FROM messages WHERE channel = $1 AND vendor_id = $2",
        channel, vendor_id)
    return found


async def sender_for(pool: asyncpg.Pool, tenant_id: uuid.UUID, channel: str
                     ) -> str | None:
    """The tenant's number to send from: its WhatsApp id, or its phone number for SMS."""
    found: str | None = await pool.fetchval(
        """SELECT CASE WHEN $2 = 'whatsapp' THEN whatsapp_phone_number_id ELSE phone_number END
           FROM phone_numbers WHERE tenant_id = $1 AND released_at IS NULL
             AND ($2 <> 'whatsapp' OR whatsapp_phone_number_id IS NOT NULL)
           ORDER BY held_from LIMIT 1""", tenant_id, channel)
    return found
