"""Keyset pagination: a page of items and an opaque cursor to the next one.

The cursor encodes the (time, id) of the last item shown; the next page starts strictly
after it in the list's order, so items added meanwhile never shift a page."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass
from typing import Generic, TypeVar

from metering.notify.errors import InvalidField

T = TypeVar("T")
MAX_PAGE = 100


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(at: dt.datetime, key: str) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, key = text.split("|", 1)
        return dt.datetime.fromisoformat(at), key
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidField("cursor", "is not a cursor this list gave out") from exc


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidField("limit", f"must be between 1 and {MAX_PAGE}")
    return limit
