"""Cursor pagination for lists: `{"<plural>": [...], "next_cursor": str | null}`.

A cursor is opaque to clients: the sort key and the id of the last item returned,
base64url-encoded JSON. The next page is the items strictly after it in the list's order
(keyset pagination: stable while rows are added, one index range scan per page).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson

from metering.billing.errors import InvalidField

T = TypeVar("T")
MAX_LIMIT = 100
DEFAULT_LIMIT = 50


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(*key: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(cursor: str | None, arity: int) -> list[Any] | None:
    """The key a cursor holds, or InvalidField("cursor") for one we did not hand out."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = orjson.loads(raw)
    except (ValueError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidField("cursor", "is not a cursor this list handed out") from exc
    if not isinstance(key, list) or len(key) != arity \
            or not all(isinstance(k, (str, int)) for k in key):
        raise InvalidField("cursor", "is not a cursor this list handed out")
    return key


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidField("limit", f"must be between 1 and {MAX_LIMIT}")
    return limit
