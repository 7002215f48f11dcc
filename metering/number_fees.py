"""Monthly fees for the phone numbers tenants hold, charged pro rata by day.

Each (number, month) is one one-shot charge with the event id
`numfee:<number>:<YYYY-MM>`, so running this any number of times, from any number of
gateways, charges each month once. It runs when a number is assigned (the rest of that
month) and hourly in every gateway (each month as it starts). A tenant without the credit
is paused anyway; its fee is charged by a later run once it has topped up.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from metering.credit_store import CreditStore
from metering.ratecard import RateCard, RateCardError
from metering.rating import prorate_number_fee

METER_OF_KIND = {"local": "number_local_months", "mobile": "number_mobile_months"}
CHANNEL = "numbers"


class FeeStatus(StrEnum):
    CHARGED = "charged"
    REPLAY = "replay"  # this (number, month) was charged before: nothing more
    INSUFFICIENT = "insufficient"  # the balance cannot pay: a later run charges it
    NONE = "none"  # the number was not held that month: nothing to charge
    CARD_INVALID = "card_invalid"  # the tenant's stored card no longer loads: logged, waits


@dataclass(frozen=True)
class FeeResult:
    tenant: str
    phone_number: str
    month: str
    micro: int
    status: FeeStatus


def _month_bounds(month: dt.date) -> tuple[dt.date, dt.date]:
    first = month.replace(day=1)
    return first, (first + dt.timedelta(days=32)).replace(day=1)


async def charge_number_fee(store: CreditStore, *, card: RateCard, tenant: str,
                            phone_number: str, kind: str, held_from: dt.date,
                            released_at: dt.date | None, month: dt.date, now_ms: int
                            ) -> FeeResult:
    """One number's fee for one month, pro rata by the days it was held in that month;
    charged once per (number, month) whoever runs it and however often."""
    first, after = _month_bounds(month)
    label = f"{first:%Y-%m}"
    meter = METER_OF_KIND[kind]
    start = max(held_from, first)
    end = min(released_at or after, after)
    micro = prorate_number_fee(card, meter, start, end)
    if micro == 0:
        return FeeResult(tenant, phone_number, label, 0, FeeStatus.NONE)
    charge = await store.charge(tenant, f"numfee:{phone_number}:{label}", channel=CHANNEL,
                                micro=micro, usage={meter: 1}, now_ms=now_ms)
    return FeeResult(tenant, phone_number, label, micro, FeeStatus(charge.status))


async def charge_number_fees(
    pool: asyncpg.Pool, store: CreditStore, card_for: dict[str, RateCard] | RateCard,
    month: dt.date, now_ms: int, tenant: str | None = None,
) -> list[FeeResult]:
    """Every held number's fee for `month` (of one tenant, or of all)."""
    first, after = _month_bounds(month)
    rows = await pool.fetch(
        """SELECT phone_number, tenant_id::text AS tenant, kind,
                  (held_from AT TIME ZONE 'UTC')::date AS held_from,
                  (released_at AT TIME ZONE 'UTC')::date AS released_at
           FROM phone_numbers
           WHERE held_from < $2 AND (released_at IS NULL OR released_at >= $1)
             AND ($3::uuid IS NULL OR tenant_id = $3::uuid)
           ORDER BY phone_number""",
        first, after, tenant)
    results: list[FeeResult] = []
    for row in rows:
        try:
            card = card_for if isinstance(card_for, RateCard) else card_for[row["tenant"]]
        except RateCardError:  # logged when loaded; charged once the operator fixes it
            results.append(FeeResult(row["tenant"], row["phone_number"], f"{first:%Y-%m}", 0,
                                     FeeStatus.CARD_INVALID))
            continue
        results.append(await charge_number_fee(
            store, card=card, tenant=row["tenant"], phone_number=row["phone_number"],
            kind=row["kind"], held_from=row["held_from"], released_at=row["released_at"],
            month=month, now_ms=now_ms))
    return results
