"""Which rate card a tenant is on: its own (stored with the tenant by the operator), else
the card of the plan its running billing cycle bills (`metering.billing`), else the
default.

The plan's card applies from the cycle it takes effect in: the cycle's invoice pins the
plan version; before the cycle job has opened a new cycle, a plan change that is due
already counts (the latest version of the pending plan).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
import orjson

from metering.ratecard import RateCard, default_rate_card, load_rate_card


def _card(raw: Any) -> RateCard:
    if raw is None:
        return default_rate_card()
    return load_rate_card(orjson.loads(raw) if isinstance(raw, (str, bytes)) else raw)


# The card per tenant at $1 (a time; NULL: now): own card, else the plan's, else NULL.
_CARDS = """
SELECT t.id::text AS id, coalesce(t.rate_card, (
    SELECT CASE WHEN s.pending_from <= (coalesce($1, now()) AT TIME ZONE 'UTC')::date
           THEN (SELECT p.rate_card FROM plans p WHERE p.id = s.pending_plan_id
                 ORDER BY p.version DESC LIMIT 1)
           ELSE (SELECT p.rate_card FROM invoices i JOIN plans p
                   ON p.id = i.plan_id AND p.version = i.plan_version
                 WHERE i.tenant_id = t.id
                   AND i.period <= (coalesce($1, now()) AT TIME ZONE 'UTC')::date
                 ORDER BY i.period DESC LIMIT 1) END
    FROM subscriptions s WHERE s.tenant_id = t.id)) AS rate_card
FROM tenants t"""


async def card_for_tenant(pool: asyncpg.Pool, tenant: uuid.UUID | str,
                          at: dt.datetime | None = None) -> RateCard:
    row = await pool.fetchrow(f"{_CARDS} WHERE t.id = $2::uuid", at, str(tenant))
    return _card(None if row is None else row["rate_card"])


class CardsByTenant(dict[str, RateCard]):
    """Every tenant's card, loaded at once (the hourly jobs); unknown tenants: default."""

    def __missing__(self, tenant: str) -> RateCard:
        return default_rate_card()


async def all_cards(pool: asyncpg.Pool, at: dt.datetime | None = None) -> CardsByTenant:
    rows = await pool.fetch(f"SELECT * FROM ({_CARDS}) c "  # noqa: S608
                            "WHERE c.rate_card IS NOT NULL", at)
    return CardsByTenant({row["id"]: _card(row["rate_card"]) for row in rows})
