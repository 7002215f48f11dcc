"""Successes reported by the tenant's own systems (source `api`: a booking confirmed in its
CRM), recorded exactly like the agent's tools' successes (source `agent`, written by
`metering.outcomes.record_outcome`) in `success_events`, and the list of both.

Each is recorded once per Idempotency-Key: the same key with the same body is a replay
(the stored success comes back), with another body a Conflict. `recorded_at` is the
server's clock when it was recorded; it, not the client's `occurred_at`, decides which
invoice bills the success (docs/billing.md, late successes).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from metering.billing.errors import Conflict, InvalidField
from metering.billing.pages import Page, check_limit, decode_cursor, encode_cursor
from metering.billing.periods import utc
from metering.outcomes import OUTCOME_KINDS, OutcomeKind

MAX_TEXT = 200  # characters of a reference or a customer
MAX_KEY = 255  # characters of an Idempotency-Key


@dataclass(frozen=True)
class Success:
    id: str
    kind: OutcomeKind
    source: str  # agent | api
    channel: str
    session_id: str | None
    reference: str | None
    customer: str | None
    occurred_at: dt.datetime
    recorded_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "source": self.source,
                "channel": self.channel, "session_id": self.session_id,
                "reference": self.reference, "customer": self.customer,
                "occurred_at": self.occurred_at.isoformat(),
                "recorded_at": self.recorded_at.isoformat()}


@dataclass(frozen=True)
class RecordedSuccess:
    success: Success
    created: bool  # False: a replay of the same key and body


_COLUMNS = ("event_id, kind, source, channel, session_id, reference, customer, occurred_at, "
            "recorded_at")


def _success(row: asyncpg.Record) -> Success:
    return Success(row["event_id"], row["kind"], row["source"], row["channel"],
                   row["session_id"], row["reference"], row["customer"], row["occurred_at"],
                   row["recorded_at"])


def _text(field: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_TEXT:
        raise InvalidField(field, f"must be 1-{MAX_TEXT} characters")
    return value


def _validate(kind: Any, idempotency_key: Any, occurred_at: Any, now: dt.datetime) -> None:
    if kind not in OUTCOME_KINDS:
        raise InvalidField("kind", f"must be one of {', '.join(OUTCOME_KINDS)}")
    if not isinstance(idempotency_key, str) or not 1 <= len(idempotency_key) <= MAX_KEY:
        raise InvalidField("Idempotency-Key", f"must be 1-{MAX_KEY} characters")
    if occurred_at is not None:
        if not isinstance(occurred_at, dt.datetime) or occurred_at.tzinfo is None:
            raise InvalidField("occurred_at", "must be an RFC 3339 time with an offset")
        if occurred_at > now + dt.timedelta(minutes=5):
            raise InvalidField("occurred_at", "must not be in the future")


async def record_api_success(
    pool: asyncpg.Pool, *, tenant_id: uuid.UUID, kind: OutcomeKind, idempotency_key: str,
    now: dt.datetime, reference: str | None = None, customer: str | None = None,
    occurred_at: dt.datetime | None = None,
) -> RecordedSuccess:
    now = utc(now)
    _validate(kind, idempotency_key, occurred_at, now)
    body = {"kind": kind, "reference": _text("reference", reference),
            "customer": _text("customer", customer),
            "occurred_at": None if occurred_at is None else utc(occurred_at).isoformat()}
    digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    success_id = f"suc_{uuid.uuid4().hex}"
    row = await pool.fetchrow(
        f"""INSERT INTO success_events (event_id, tenant_id, session_id, channel, kind,
                   record_id, occurred_at, source, recorded_at, reference, customer,
                   idempotency_key, request_hash)
            VALUES ($1, $2, NULL, 'api', $3, $4, $5, 'api', $6, $7, $8, $9, $10)
            ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL
            DO NOTHING RETURNING {_COLUMNS}""",  # noqa: S608
        success_id, tenant_id, kind, uuid.uuid4(), occurred_at or now, now, reference,
        customer, idempotency_key, digest)
    if row is not None:
        return RecordedSuccess(_success(row), created=True)
    earlier = await pool.fetchrow(
        f"SELECT {_COLUMNS}, request_hash FROM success_events "  # noqa: S608
        "WHERE tenant_id = $1 AND idempotency_key = $2", tenant_id, idempotency_key)
    if earlier["request_hash"] != digest:
        raise Conflict("idempotency_conflict",
                       "this Idempotency-Key was used before with a different body")
    return RecordedSuccess(_success(earlier), created=False)


async def list_successes(
    pool: asyncpg.Pool, *, tenant_id: uuid.UUID, since: dt.datetime | None = None,
    until: dt.datetime | None = None, kind: str | None = None, cursor: str | None = None,
    limit: int = 50,
) -> Page[Success]:
    """The tenant's successes (both sources) that occurred in [since, until), newest
    first."""
    if kind is not None and kind not in OUTCOME_KINDS:
        raise InvalidField("kind", f"must be one of {', '.join(OUTCOME_KINDS)}")
    for name, value in (("from", since), ("to", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidField(name, "must be an RFC 3339 time with an offset")
    after = decode_cursor(cursor, 2)
    limit = check_limit(limit)
    rows = await pool.fetch(
        f"""SELECT {_COLUMNS} FROM success_events
            WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR occurred_at >= $2)
              AND ($3::timestamptz IS NULL OR occurred_at < $3)
              AND ($4::text IS NULL OR kind = $4)
              AND ($5::timestamptz IS NULL OR (occurred_at, event_id) < ($5, $6::text))
            ORDER BY occurred_at DESC, event_id DESC LIMIT $7""",  # noqa: S608
        tenant_id, since, until, kind, None if after is None else _cursor_time(after[0]),
        None if after is None else str(after[1]), limit + 1)
    items = [_success(row) for row in rows[:limit]]
    more = len(rows) > limit
    last = items[-1] if more else None
    return Page(items, None if last is None
                else encode_cursor(last.occurred_at.isoformat(), last.id))


def _cursor_time(value: object) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidField("cursor", "is not a cursor this list handed out") from exc
    if moment.tzinfo is None:
        raise InvalidField("cursor", "is not a cursor this list handed out")
    return moment
