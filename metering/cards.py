"""Which rate card a tenant is on: its own (stored with the tenant by the operator), else
the card of the plan its running billing cycle bills (`metering.billing`), else the
default.

The plan's card applies from the cycle it takes effect in: the cycle's invoice pins the
plan version; before the cycle job has opened a new cycle, a plan change that is due
already counts (the latest version of the pending plan).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

import asyncpg
import orjson

from metering.ratecard import RateCard, RateCardError, default_rate_card, load_rate_card

log = logging.getLogger("voicegw.cards")


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
    """Every tenant's card, loaded at once (the hourly jobs); unknown tenants: default.
    A stored card that no longer loads (stored before a bound existed) is in `unusable`:
    looking it up raises, so one bad card stops that tenant's job, not every tenant's, and
    never silently bills the default price instead."""

    def __init__(self, cards: dict[str, RateCard], unusable: dict[str, str]) -> None:
        super().__init__(cards)
        self.unusable = unusable

    def __missing__(self, tenant: str) -> RateCard:
        if tenant in self.unusable:
            raise RateCardError(self.unusable[tenant])
        return default_rate_card()


async def all_cards(pool: asyncpg.Pool, at: dt.datetime | None = None) -> CardsByTenant:
    rows = await pool.fetch(f"SELECT * FROM ({_CARDS}) c "  # noqa: S608
                            "WHERE c.rate_card IS NOT NULL", at)
    cards: dict[str, RateCard] = {}
    unusable: dict[str, str] = {}
    for row in rows:
        try:
            cards[row["id"]] = _card(row["rate_card"])
        except RateCardError as exc:
            log.error("tenant %s has a rate card that does not load: %s", row["id"], exc,
                      extra={"tenant_id": row["id"]})
            unusable[row["id"]] = str(exc)
    return CardsByTenant(cards, unusable)
