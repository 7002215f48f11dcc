"""Outbox events (as the Lua scripts write them) turned into ledger rows. Pure: no I/O.

Event types and the rows they become:
- `debit`   -> one `ledger_entries` row (kind session_debit), id `<session>:<seq>`
- `charge`  -> one `ledger_entries` row (kind charge) and a `usage_events` row per meter
- `session` -> one `sessions` row (the call record) and a `usage_events` row per meter,
               priced per meter from `details.charges` when the settling code put it there
- `alert`   -> a balance alert (low, depleted, restored) for metering.notify; its id is
               the stream entry's id, so a replayed entry raises nothing twice

Every row carries an id derived from the event id, so writing an event twice is a no-op.
An entry that cannot be read is never dropped: it goes to `outbox_rejects` for an
operator to look at, and the rest of the batch lands.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson

LEDGER_COLUMNS = ("event_id", "tenant_id", "session_id", "kind", "channel", "micro_credits",
                  "usage", "occurred_at")
SESSION_COLUMNS = ("session_id", "tenant_id", "channel", "status", "started_at", "ended_at",
                   "usage", "micro_credits", "written_off", "details")
USAGE_COLUMNS = ("event_id", "tenant_id", "session_id", "channel", "meter", "units",
                 "micro_credits", "occurred_at")


class BadEvent(ValueError):
    """An outbox entry missing a field or holding an unreadable value."""


@dataclass
class EventRows:
    ledger: list[tuple[Any, ...]] = field(default_factory=list)
    sessions: list[tuple[Any, ...]] = field(default_factory=list)
    usage: list[tuple[Any, ...]] = field(default_factory=list)
    alerts: list[BalanceAlert] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def tables(self) -> Iterator[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]:
        yield "ledger_entries", LEDGER_COLUMNS, self.ledger
        yield "sessions", SESSION_COLUMNS, self.sessions
        yield "usage_events", USAGE_COLUMNS, self.usage

    def __len__(self) -> int:
        return len(self.ledger) + len(self.sessions) + len(self.usage)


Fields = dict[str, str]


@dataclass(frozen=True)
class BalanceAlert:
    """A balance alert as the credit scripts raise it (lua/lib.lua `alerts`)."""

    cause_id: str  # <tenant>:<stream entry id>
    tenant_id: uuid.UUID
    alert: str  # balance.low | balance.depleted | balance.restored
    available: int
    reserved: int
    threshold: int
    at: dt.datetime


def _text(fields: Fields, name: str) -> str:
    value = fields.get(name)
    if value is None:
        raise BadEvent(f"missing field {name!r}")
    return value


def _int(fields: Fields, name: str) -> int:
    try:
        return int(_text(fields, name))
    except ValueError as exc:
        raise BadEvent(f"field {name!r} is not an integer") from exc


def _json(fields: Fields, name: str) -> tuple[dict[str, Any], str]:
    """The parsed object and its text (stored as is: it was written by orjson)."""
    raw = fields.get(name) or "{}"
    if raw == "[]":  # an empty Lua table encodes as an array
        raw = "{}"
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadEvent(f"field {name!r} is not JSON") from exc
    if not isinstance(value, dict):
        raise BadEvent(f"field {name!r} is not a JSON object")
    return value, raw


def _when(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


@lru_cache(maxsize=65536)
def _tenant(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError as exc:
        raise BadEvent("field 'tenant' is not a UUID") from exc


def _units(fields: Fields) -> tuple[dict[str, int], str]:
    usage, raw = _json(fields, "usage")
    for meter, value in usage.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BadEvent(f"usage of {meter!r} is not a non-negative integer")
    return usage, raw


def _alert(rows: EventRows, fields: Fields, tenant: uuid.UUID, entry_id: str) -> None:
    ms = entry_id.split("-", 1)[0]
    if not ms.isdigit():
        raise BadEvent("an alert needs its stream entry id")
    rows.alerts.append(BalanceAlert(f"{tenant}:{entry_id}", tenant, _text(fields, "alert"),
                                    _int(fields, "available"), _int(fields, "reserved"),
                                    _int(fields, "threshold"), _when(int(ms))))


def add_event(rows: EventRows, fields: Fields, entry_id: str = "") -> None:
    kind = _text(fields, "type")
    tenant = _tenant(_text(fields, "tenant"))
    if kind == "alert":
        _alert(rows, fields, tenant, entry_id)
        return
    channel = _text(fields, "channel")
    if kind == "debit":
        _, usage_text = _units(fields)
        rows.ledger.append((_text(fields, "id"), tenant, _text(fields, "session"),
                            "session_debit", channel, _int(fields, "micro"), usage_text,
                            _when(_int(fields, "at"))))
    elif kind == "charge":
        event_id = _text(fields, "id")
        usage, usage_text = _units(fields)
        at = _when(_int(fields, "at"))
        micro = _int(fields, "micro")
        kind = "number_fee" if channel == "numbers" else "charge"
        rows.ledger.append((event_id, tenant, None, kind, channel, micro, usage_text, at))
        _add_usage(rows, event_id, tenant, None, channel, usage, {}, micro, at)
    elif kind == "session":
        session = _text(fields, "session")
        usage, usage_text = _units(fields)
        details, details_text = _json(fields, "details")
        ended = _when(_int(fields, "ended_ms"))
        micro = _int(fields, "micro")
        rows.sessions.append((session, tenant, channel, _text(fields, "status"),
                              _when(_int(fields, "started_ms")), ended, usage_text, micro,
                              _int(fields, "written_off"), details_text))
        charges = details.get("charges") if isinstance(details.get("charges"), dict) else {}
        _add_usage(rows, f"{session}:settled", tenant, session, channel, usage,
                   charges or {}, micro, ended)
    else:
        raise BadEvent(f"unknown event type {kind!r}")


def _add_usage(rows: EventRows, base_id: str, tenant: uuid.UUID, session: str | None, channel: str,
               usage: dict[str, int], charges: dict[str, Any], total: int,
               at: dt.datetime) -> None:
    """A usage row per meter; with no per-meter prices, the whole amount goes to the one
    metered meter (one-shot charges are for a single meter)."""
    for meter, units in sorted(usage.items()):
        priced = charges.get(meter)
        if isinstance(priced, int) and not isinstance(priced, bool):
            micro = priced
        else:
            micro = total if len(usage) == 1 else 0
        rows.usage.append((f"{base_id}:{meter}", tenant, session, channel, meter, units,
                           micro, at))


def rows_from_entries(entries: Sequence[tuple[bytes, dict[bytes, bytes]]]) -> EventRows:
    rows = EventRows()
    for entry_id, raw_fields in entries:
        try:
            fields = {k.decode(): v.decode() for k, v in raw_fields.items()}
            add_event(rows, fields, entry_id.decode())
        except (BadEvent, UnicodeDecodeError) as exc:
            readable = {k.decode(errors="replace"): v.decode(errors="replace")
                        for k, v in raw_fields.items()}
            readable["_error"] = str(exc)
            rows.rejected.append((entry_id.decode(), orjson.dumps(readable).decode()))
    return rows
