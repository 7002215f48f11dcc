"""Which rate card a tenant is on: its own (stored with the tenant) or the default."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson

from metering.ratecard import RateCard, default_rate_card, load_rate_card


def _card(raw: Any) -> RateCard:
    if raw is None:
        return default_rate_card()
    return load_rate_card(orjson.loads(raw) if isinstance(raw, (str, bytes)) else raw)


async def card_for_tenant(pool: asyncpg.Pool, tenant: uuid.UUID | str) -> RateCard:
    raw = await pool.fetchval("SELECT rate_card FROM tenants WHERE id = $1::uuid", str(tenant))
    return _card(raw)


class CardsByTenant(dict[str, RateCard]):
    """Every tenant's card, loaded at once (the hourly jobs); unknown tenants: default."""

    def __missing__(self, tenant: str) -> RateCard:
        return default_rate_card()


async def all_cards(pool: asyncpg.Pool) -> CardsByTenant:
    rows = await pool.fetch("SELECT id::text AS id, rate_card FROM tenants "
                            "WHERE rate_card IS NOT NULL")
    return CardsByTenant({row["id"]: _card(row["rate_card"]) for row in rows})
