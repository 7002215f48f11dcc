"""The writes of conversations (migration 0007's contract).

Phone: `start_call` inserts the row when the media stream starts (`call_sid` set, unique:
one conversation per call), `settle_call` writes everything final in one UPDATE that
sets `settled_at` (only while it is NULL: once). Text (WhatsApp, SMS): `customer_turn`
finds the customer's open conversation on the channel, or starts one when there is none
or its last message is more than the tenant's `conversation_idle_minutes` old; turns
are appended idempotently (each carries a `key`, so a retried exchange adds nothing).
`close_text` settles text conversations: those idle past their window (the job), or one
the agent ended (`end_call`). Outcomes, successes and the handoff come from the ledger
(`success_events`, `handoffs`) of the sessions the conversation spans, in the settling
statement itself.

Masking (`mask_transcripts`) is applied as turns and tool calls are written: the
unmasked text is never stored.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from metering.conversations.masking import mask_text, mask_value

# What settling computes from the ledger: the outcomes, successes and handoff of the
# sessions in `session_ids`. Used by every settling statement.
_FROM_LEDGER = """
    outcomes = COALESCE((SELECT jsonb_agg(jsonb_build_object(
                    'kind', s.kind, 'record_id', s.record_id::text, 'at', s.occurred_at)
                    ORDER BY s.occurred_at)
                FROM success_events s WHERE s.tenant_id = c.tenant_id
                 AND s.session_id = ANY(c.session_ids)), '[]'::jsonb),
    successes = (SELECT count(*) FROM success_events s WHERE s.tenant_id = c.tenant_id
                 AND s.session_id = ANY(c.session_ids)),
    handoff = c.handoff OR {handoff} OR EXISTS (SELECT 1 FROM handoffs h
                 WHERE h.tenant_id = c.tenant_id AND h.session_id = ANY(c.session_ids))"""
_RETURNING = """RETURNING c.id, c.tenant_id, c.channel, c.direction, c.customer_hash,
    c.customer_masked, c.call_sid, c.started_at, c.ended_at, c.disposition, c.outcomes::text,
    c.successes, c.handoff, c.resolved, c.micro_credits, c.session_ids,
    c.transcript::text, c.tool_calls::text, c.summary, c.rating"""


@dataclass(frozen=True)
class Settled:
    """A conversation as it was settled: what the summary, the CSAT question and the
    `session.completed` webhook need."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    channel: str
    direction: str
    customer_hash: str
    customer_masked: str
    call_sid: str | None
    started_at: dt.datetime
    ended_at: dt.datetime
    disposition: str
    outcomes: list[dict[str, Any]]
    successes: int
    handoff: bool
    resolved: bool
    micro_credits: int
    session_ids: list[str]
    transcript: list[dict[str, Any]]
    tool_calls: list[dict[str, Any]]
    summary: str | None
    rating: int | None


def _settled(row: asyncpg.Record) -> Settled:
    return Settled(row["id"], row["tenant_id"], row["channel"], row["direction"],
                   row["customer_hash"], row["customer_masked"], row["call_sid"],
                   row["started_at"], row["ended_at"], row["disposition"] or "completed",
                   orjson.loads(row["outcomes"] or "[]"), row["successes"], row["handoff"],
                   row["resolved"], row["micro_credits"], list(row["session_ids"]),
                   orjson.loads(row["transcript"] or "[]"),
                   orjson.loads(row["tool_calls"] or "[]"), row["summary"], row["rating"])


def turn(role: str, text: str, started_at: dt.datetime, ended_at: dt.datetime, *,
         interrupted: bool = False, heard_text: str | None = None,
         key: str | None = None) -> dict[str, Any]:
    """One transcript turn as stored (`key`: what makes appending it idempotent)."""
    item: dict[str, Any] = {"role": role, "text": text, "started_at": started_at.isoformat(),
                            "ended_at": ended_at.isoformat(), "interrupted": interrupted,
                            "heard_text": heard_text}
    if key is not None:
        item["key"] = key
    return item


def tool_call(name: str, arguments: Any, result: Any, at: dt.datetime) -> dict[str, Any]:
    return {"name": name, "arguments": arguments, "result": result, "at": at.isoformat()}


def masked_turns(turns: Sequence[dict[str, Any]], mask: bool) -> list[dict[str, Any]]:
    if not mask:
        return list(turns)
    return [{**t, "text": mask_text(t["text"]),
             "heard_text": None if t.get("heard_text") is None else mask_text(t["heard_text"])}
            for t in turns]


def masked_tool_calls(calls: Sequence[dict[str, Any]], mask: bool) -> list[dict[str, Any]]:
    if not mask:
        return list(calls)
    return [{**c, "arguments": mask_value(c["arguments"]), "result": mask_value(c["result"])}
            for c in calls]


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


# -- phone -----------------------------------------------------------------------------

async def start_call(pool: asyncpg.Pool, *, tenant_id: uuid.UUID, call_sid: str,
                     session_id: str, customer_hash: str, customer_masked: str,
                     started_at: dt.datetime) -> uuid.UUID:
    """The call's row, written when its stream starts (once per call)."""
    conversation_id = uuid.uuid4()
    found = await pool.fetchval(
        """INSERT INTO conversations (id, tenant_id, channel, direction, customer_hash,
               customer_masked, call_sid, started_at, last_activity_at, session_ids,
               transcript, tool_calls)
           VALUES ($1, $2, 'phone', 'inbound', $3, $4, $5, $6, $6, ARRAY[$7], '[]', '[]')
           ON CONFLICT (call_sid) DO UPDATE SET call_sid = EXCLUDED.call_sid
           RETURNING id""",
        conversation_id, tenant_id, customer_hash, customer_masked, call_sid, started_at,
        session_id)
    return uuid.UUID(str(found))


@dataclass(frozen=True)
class CallEnding:
    ended_at: dt.datetime
    answered_at: dt.datetime | None  # the agent's first audio; None: abandoned
    disposition: str
    resolved: bool
    micro_credits: int
    transcript: list[dict[str, Any]]
    tool_calls: list[dict[str, Any]]
    summary: str | None = None
    rating: int | None = None


async def settle_call(pool: asyncpg.Pool, call_sid: str, ending: CallEnding, *,
                      mask: bool) -> Settled | None:
    """Everything final, once (None: settled before, or no row for the call)."""
    row = await pool.fetchrow(
        f"""UPDATE conversations c SET ended_at = $2::timestamptz,
                last_activity_at = $2::timestamptz,
                answered_at = $3,
                first_response_ms = CASE WHEN $3::timestamptz IS NULL THEN NULL ELSE
                    greatest(0, (extract(epoch FROM $3::timestamptz - c.started_at)
                                 * 1000)::int) END,
                disposition = $4::text, resolved = $5, micro_credits = $6, transcript = $7::jsonb,
                tool_calls = $8::jsonb, summary = $9, rating = $10,
                rated_at = CASE WHEN $10::smallint IS NULL THEN NULL
                                ELSE $2::timestamptz END,
                settled_at = now(),
                {_FROM_LEDGER.format(handoff="$4::text = 'transferred'")}
            WHERE c.call_sid = $1 AND c.settled_at IS NULL {_RETURNING}""",  # noqa: S608
        call_sid, ending.ended_at, ending.answered_at, ending.disposition, ending.resolved,
        ending.micro_credits, _json(masked_turns(ending.transcript, mask)),
        _json(masked_tool_calls(ending.tool_calls, mask)), ending.summary, ending.rating)
    return None if row is None else _settled(row)


LOST_CALL_GRACE = dt.timedelta(minutes=5)


async def settle_lost_calls(pool: asyncpg.Pool, *, now: dt.datetime,
                            limit: int = 500) -> list[Settled]:
    """Calls whose gateway died before settling their conversation: once the call's
    credit session is in the ledger (swept, or settled) for `LOST_CALL_GRACE`, the
    conversation is settled from it (disposition and credits of the record; no
    transcript: it died with the process)."""
    rows = await pool.fetch(
        f"""UPDATE conversations c SET ended_at = s.ended_at, last_activity_at = s.ended_at,
                disposition = COALESCE(s.details->>'disposition', 'gateway_lost'),
                micro_credits = s.micro_credits, settled_at = now(),
                {_FROM_LEDGER.format(handoff="false")}
            FROM sessions s
            WHERE c.id IN (SELECT o.id FROM conversations o JOIN sessions l
                               ON l.session_id = o.session_ids[1]
                           WHERE o.channel = 'phone' AND o.settled_at IS NULL
                             AND l.ended_at < $1::timestamptz - $2::interval
                           LIMIT $3 FOR UPDATE OF o SKIP LOCKED)
              AND s.session_id = c.session_ids[1] AND c.settled_at IS NULL
            {_RETURNING}""",  # noqa: S608 - fixed SQL fragments
        now, LOST_CALL_GRACE, limit)
    return [_settled(row) for row in rows]


# -- text ------------------------------------------------------------------------------

@dataclass(frozen=True)
class TextCustomer:
    tenant_id: uuid.UUID
    channel: str
    customer_hash: str
    customer_masked: str


async def customer_turn(pool: asyncpg.Pool, who: TextCustomer, *, at: dt.datetime,
                        idle_minutes: int, session_id: str, item: dict[str, Any],
                        micro_credits: int, mask: bool) -> uuid.UUID:
    """The customer's message in their open conversation, or in a new one when there is
    none or the last message is more than `idle_minutes` old. Returns the conversation."""
    item = masked_turns([item], mask)[0]
    # Migration 0012: lock the customer, find their open conversation, skip a turn
    # appended before (its key), then insert or update; one round trip.
    found = await pool.fetchval(
        "SELECT conversation_customer_turn($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, "
        "$10, $11)",
        who.tenant_id, who.channel, who.customer_hash, who.customer_masked, at, idle_minutes,
        session_id, _json(item),
        _json([{"key": item["key"]}]) if transcript_has(item) else None,
        micro_credits, uuid.uuid4())
    return uuid.UUID(str(found))


def transcript_has(item: dict[str, Any]) -> bool:
    return item.get("key") is not None


async def agent_turn(pool: asyncpg.Pool, conversation_id: uuid.UUID, *,
                     item: dict[str, Any], tool_calls: list[dict[str, Any]],
                     micro_credits: int, resolved: bool, mask: bool) -> bool:
    """The agent's reply (and the tool calls of its exchange), once per key; the first
    reply sets `answered_at`. False when it was appended before."""
    item = masked_turns([item], mask)[0]
    status: str = await pool.execute(
        """UPDATE conversations SET
               transcript = COALESCE(transcript, '[]'::jsonb) || $2::jsonb,
               tool_calls = COALESCE(tool_calls, '[]'::jsonb) || $3::jsonb,
               micro_credits = micro_credits + $4,
               resolved = resolved OR $5,
               answered_at = COALESCE(answered_at, $6),
               first_response_ms = COALESCE(first_response_ms, greatest(0,
                   (extract(epoch FROM $6::timestamptz - started_at) * 1000)::int)),
               last_activity_at = greatest(last_activity_at, $6)
           WHERE id = $1 AND settled_at IS NULL
             AND NOT COALESCE(transcript, '[]'::jsonb) @> $7::jsonb""",
        conversation_id, _json([item]), _json(masked_tool_calls(tool_calls, mask)),
        micro_credits, resolved, dt.datetime.fromisoformat(item["ended_at"]),
        _json([{"key": item.get("key")}]))
    return status.endswith(" 1")


async def add_credits(pool: asyncpg.Pool, conversation_id: uuid.UUID, micro: int) -> None:
    """Credits of the conversation billed outside a reply (an exchange without one)."""
    if micro:
        await pool.execute("UPDATE conversations SET micro_credits = micro_credits + $2 "
                           "WHERE id = $1 AND settled_at IS NULL", conversation_id, micro)


async def close_text(pool: asyncpg.Pool, *, now: dt.datetime,
                     conversation_id: uuid.UUID | None = None,
                     disposition: str = "completed", limit: int = 500) -> list[Settled]:
    """Settles text conversations: `conversation_id` (the agent ended it) or, without one,
    every open text conversation idle past its tenant's window at `now`. The end is the
    last message. Each is settled once, whichever process gets there first."""
    if conversation_id is not None:
        where = "c.id = $2"
        args: list[Any] = [disposition, conversation_id]
    else:
        where = """c.id IN (SELECT o.id FROM conversations o JOIN tenants t ON t.id = o.tenant_id
                    WHERE o.ended_at IS NULL AND o.channel <> 'phone'
                      AND o.last_activity_at < $2::timestamptz
                          - make_interval(mins => t.conversation_idle_minutes)
                    ORDER BY o.last_activity_at LIMIT $3 FOR UPDATE OF o SKIP LOCKED)"""
        args = [disposition, now, limit]
    rows = await pool.fetch(
        f"""UPDATE conversations c SET ended_at = c.last_activity_at, disposition = $1,
                settled_at = now(), {_FROM_LEDGER.format(handoff="false")}
            WHERE {where} AND c.channel <> 'phone' AND c.settled_at IS NULL
            {_RETURNING}""",  # noqa: S608 - fixed SQL fragments
        *args)
    return [_settled(row) for row in rows]


SUMMARY_RETRY_AFTER = dt.timedelta(minutes=2)
SUMMARY_RETRY_FOR = dt.timedelta(hours=1)


async def unsummarized(pool: asyncpg.Pool, *, now: dt.datetime, limit: int = 50
                       ) -> list[Settled]:
    """Text conversations settled a while ago without a summary (the process that closed
    them died, or the LLM failed): tried again for an hour. What follows a close is
    idempotent (the summary's charge and webhook are keyed by the conversation, the rating
    question is asked once)."""
    rows = await pool.fetch(
        f"""SELECT {_RETURNING.removeprefix("RETURNING ")} FROM conversations c
            WHERE c.channel <> 'phone' AND c.summary IS NULL AND c.transcript IS NOT NULL
              AND c.settled_at < $1::timestamptz - $2::interval
              AND c.settled_at > $1::timestamptz - $3::interval
            ORDER BY c.settled_at LIMIT $4""",  # noqa: S608 - fixed SQL fragments
        now, SUMMARY_RETRY_AFTER, SUMMARY_RETRY_FOR, limit)
    return [_settled(row) for row in rows]


async def save_summary(pool: asyncpg.Pool, conversation_id: uuid.UUID, summary: str) -> None:
    await pool.execute("UPDATE conversations SET summary = $2 WHERE id = $1 AND summary IS NULL",
                       conversation_id, summary)


async def mark_csat_asked(pool: asyncpg.Pool, conversation_id: uuid.UUID,
                          at: dt.datetime) -> bool:
    status: str = await pool.execute(
        "UPDATE conversations SET csat_asked_at = $2 WHERE id = $1 AND csat_asked_at IS NULL",
        conversation_id, at)
    return status.endswith(" 1")


CSAT_REPLY_WINDOW = dt.timedelta(hours=24)


async def record_text_rating(pool: asyncpg.Pool, who: TextCustomer, rating: int,
                             at: dt.datetime) -> uuid.UUID | None:
    """A 1-5 answer to the rating question of the customer's last conversation on the
    channel (asked within the last 24 hours, not answered yet): recorded once."""
    if not 1 <= rating <= 5:
        return None
    found = await pool.fetchval(
        """UPDATE conversations SET rating = $4, rated_at = $5
           WHERE id = (SELECT id FROM conversations
                       WHERE tenant_id = $1 AND channel = $2 AND customer_hash = $3
                         AND csat_asked_at > $5::timestamptz - $6::interval
                         AND rating IS NULL
                       ORDER BY started_at DESC LIMIT 1)
             AND rating IS NULL
           RETURNING id""",
        who.tenant_id, who.channel, who.customer_hash, rating, at, CSAT_REPLY_WINDOW)
    return None if found is None else uuid.UUID(str(found))


async def awaiting_rating(pool: asyncpg.Pool, who: TextCustomer, at: dt.datetime) -> bool:
    return bool(await pool.fetchval(
        """SELECT EXISTS (SELECT 1 FROM conversations
               WHERE tenant_id = $1 AND channel = $2 AND customer_hash = $3
                 AND csat_asked_at > $4::timestamptz - $5::interval AND rating IS NULL
                 AND NOT EXISTS (SELECT 1 FROM conversations n WHERE n.tenant_id = $1
                     AND n.channel = $2 AND n.customer_hash = $3 AND n.ended_at IS NULL))""",
        who.tenant_id, who.channel, who.customer_hash, at, CSAT_REPLY_WINDOW))


# -- retention ------------------------------------------------------------------------

async def purge_transcripts(pool: asyncpg.Pool, *, now: dt.datetime,
                            limit: int = 5000) -> int:
    """Deletes the transcripts (and tool calls) older than each tenant's
    `transcript_retention_days`; the conversation row and its figures stay."""
    status: str = await pool.execute(
        """UPDATE conversations c SET transcript = NULL, tool_calls = NULL,
               transcript_purged_at = $1
           WHERE c.id IN (SELECT o.id FROM conversations o JOIN tenants t ON t.id = o.tenant_id
                          WHERE o.transcript IS NOT NULL
                            AND o.started_at < $1::timestamptz
                                - make_interval(days => t.transcript_retention_days)
                          LIMIT $2 FOR UPDATE OF o SKIP LOCKED)""",
        now, limit)
    return int(status.split()[-1])
