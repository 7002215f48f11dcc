"""The reads of the conversations API: one conversation, a filtered page, CSV rows.

Filters: `from`/`to` (dates, in the tenant's time zone, `to` inclusive), `channel`,
`disposition`, `has_success`. Pages are newest first and keyset-paginated on
(started_at, id): the cursor names the last row shown, so rows added meanwhile never
shift a page.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from metering.money import format_credits

CHANNELS = ("phone", "whatsapp", "sms", "web")
_COLUMNS = """id, channel, direction, customer_masked, customer_hash, started_at, ended_at,
    answered_at, first_response_ms, disposition, outcomes::text, successes, handoff, resolved,
    micro_credits, summary, rating, transcript::text, tool_calls::text, transcript_purged_at"""


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class Filters:
    since: dt.datetime | None = None  # inclusive
    until: dt.datetime | None = None  # exclusive
    channel: str | None = None
    disposition: str | None = None
    has_success: bool | None = None


def encode_cursor(started_at: dt.datetime, conversation_id: uuid.UUID) -> str:
    raw = f"{started_at.isoformat()}|{conversation_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, key = text.split("|", 1)
        started = dt.datetime.fromisoformat(at)
        if started.tzinfo is None:
            raise ValueError("no offset")
        return started, uuid.UUID(key)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadCursor("is not a cursor this list gave out") from exc


def _where(tenant_id: uuid.UUID, filters: Filters) -> tuple[list[str], list[Any]]:
    clauses, args = ["tenant_id = $1"], [tenant_id]

    def add(sql: str, value: Any) -> None:
        args.append(value)
        clauses.append(sql.replace("?", f"${len(args)}"))

    if filters.since is not None:
        add("started_at >= ?", filters.since)
    if filters.until is not None:
        add("started_at < ?", filters.until)
    if filters.channel is not None:
        add("channel = ?", filters.channel)
    if filters.disposition is not None:
        add("disposition = ?", filters.disposition)
    if filters.has_success is True:
        clauses.append("successes > 0")
    elif filters.has_success is False:
        clauses.append("successes = 0")
    return clauses, args


def conversation_json(row: asyncpg.Record, *, full: bool = True) -> dict[str, Any]:
    """A conversation as the API shows it (docs/conversations.md)."""
    item: dict[str, Any] = {
        "id": str(row["id"]), "channel": row["channel"], "direction": row["direction"],
        "customer": {"masked": row["customer_masked"], "hash": row["customer_hash"]},
        "started_at": row["started_at"].isoformat(),
        "ended_at": None if row["ended_at"] is None else row["ended_at"].isoformat(),
        "first_response_ms": row["first_response_ms"],
        "disposition": row["disposition"],
        "outcomes": orjson.loads(row["outcomes"] or "[]"),
        "successes": row["successes"], "handoff": row["handoff"],
        "resolved": row["resolved"],
        "credits": format_credits(row["micro_credits"]),
        "micro_credits": row["micro_credits"],
        "summary": row["summary"], "rating": row["rating"],
    }
    if full:
        turns = orjson.loads(row["transcript"]) if row["transcript"] else None
        item["transcript"] = None if turns is None else [
            {k: t.get(k) for k in ("role", "text", "started_at", "ended_at", "interrupted",
                                   "heard_text")} for t in turns]
        item["tool_calls"] = (orjson.loads(row["tool_calls"]) if row["tool_calls"]
                              else None if turns is None else [])
        purged = row["transcript_purged_at"]
        item["transcript_purged_at"] = None if purged is None else purged.isoformat()
    return item


async def get_conversation(pool: asyncpg.Pool, tenant_id: uuid.UUID,
                           conversation_id: uuid.UUID) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM conversations WHERE id = $1 AND tenant_id = $2",  # noqa: S608
        conversation_id, tenant_id)
    return None if row is None else conversation_json(row)


async def list_conversations(pool: asyncpg.Pool, tenant_id: uuid.UUID, filters: Filters,
                             *, cursor: str | None, limit: int
                             ) -> tuple[list[dict[str, Any]], str | None]:
    clauses, args = _where(tenant_id, filters)
    if cursor is not None:
        started, last_id = decode_cursor(cursor)
        args += [started, last_id]
        clauses.append(f"(started_at, id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit + 1)
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM conversations WHERE {' AND '.join(clauses)} "  # noqa: S608
        f"ORDER BY started_at DESC, id DESC LIMIT ${len(args)}", *args)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1]["started_at"], rows[-1]["id"]) if more else None
    return [conversation_json(row, full=False) for row in rows], next_cursor


CSV_HEADER = ("id", "channel", "direction", "customer", "started_at", "ended_at",
              "first_response_ms", "disposition", "successes", "outcomes", "handoff",
              "resolved", "credits", "rating", "summary")


async def csv_rows(pool: asyncpg.Pool, tenant_id: uuid.UUID, filters: Filters,
                   batch: int = 1000) -> AsyncIterator[list[Any]]:
    """Every matching conversation, newest first, read in batches (keyset), as CSV cells."""
    cursor: str | None = None
    while True:
        items, cursor = await list_conversations(pool, tenant_id, filters, cursor=cursor,
                                                 limit=batch)
        for c in items:
            yield [c["id"], c["channel"], c["direction"], c["customer"]["masked"],
                   c["started_at"], c["ended_at"] or "", c["first_response_ms"] or "",
                   c["disposition"] or "", c["successes"],
                   " ".join(o["kind"] for o in c["outcomes"]), str(c["handoff"]).lower(),
                   str(c["resolved"]).lower(), c["credits"], c["rating"] or "",
                   c["summary"] or ""]
        if cursor is None:
            return
