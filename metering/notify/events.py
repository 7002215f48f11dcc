"""Event types, their public ids and the body every endpoint receives. Pure: no I/O.

The body is `{"type", "timestamp", "data"}`. The `webhook-id` is derived from the event's
type and the id of its cause (a success's event id, a session id, a top-up id), so an
event emitted twice (a retried transaction, a replayed batch) is one message.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson

EVENT_TYPES: tuple[str, ...] = (
    "success.created", "session.completed", "handoff.requested", "balance.low",
    "balance.depleted", "balance.restored", "topup.applied", "invoice.finalized",
)
TEST_EVENT = "webhook.test"  # sent by `send_test` only; nobody subscribes to it
BALANCE_EVENTS = ("balance.low", "balance.depleted", "balance.restored")

_NAMESPACE = uuid.UUID("0b4f8f0e-7a1c-4b9e-9d7e-5c2a3f6e8d11")


def webhook_id(event_type: str, cause_id: str) -> str:
    """`msg_<32 hex>`: stable for one cause, safe in a header whatever the cause id holds."""
    return "msg_" + uuid.uuid5(_NAMESPACE, f"{event_type}:{cause_id}").hex


def rfc3339(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_body(event_type: str, data: dict[str, Any], at: dt.datetime) -> bytes:
    return orjson.dumps({"type": event_type, "timestamp": rfc3339(at), "data": data})
