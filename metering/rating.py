"""Rating: a pure function of (card, cumulative usage) -> micro-credits.

Per meter: usage is rounded up to the billing increment, raised to the session minimum,
placed after what the tenant used earlier in the month (`month_to_date`, for the free
allowance and graduated tiers), priced exactly in `Decimal`, and converted to integer
micro-credits with ROUND_HALF_UP once per meter. A session is charged the difference
between the rating of its new cumulative usage and what it was already charged, so the
rounding of one report never carries into the next: the sum of all debits of a session
equals the rating of its final usage, to the micro-credit.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from metering.ratecard import MICRO, MeterRate, RateCard

Usage = Mapping[str, int]


@dataclass(frozen=True)
class Rating:
    per_meter: dict[str, int]  # micro-credits per meter, free meters included as 0
    total: int


def billable_units(rate: MeterRate, units: int) -> int:
    """Usage rounded up to the increment, then raised to the session minimum."""
    if units < 0:
        raise ValueError("usage cannot be negative")
    if units == 0:
        return 0
    rounded = -(-units // rate.increment) * rate.increment
    return max(rounded, rate.minimum)


def _price_range(rate: MeterRate, start: int, end: int) -> Decimal:
    """Exact credits for the month's units in [start, end), free allowance first."""
    start, end = max(start, rate.free_allowance), max(end, rate.free_allowance)
    credits = Decimal(0)
    floor = 0
    for band in rate.bands():
        ceiling = end if band.up_to is None else band.up_to
        overlap = min(end, ceiling) - max(start, floor)
        if overlap > 0:
            credits += Decimal(overlap) * band.price / Decimal(rate.block)
        if band.up_to is None or band.up_to >= end:
            break
        floor = band.up_to
    return credits


def to_micro(credits: Decimal) -> int:
    return int((credits * MICRO).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def rate_meter(rate: MeterRate, units: int, month_to_date: int = 0) -> int:
    billable = billable_units(rate, units)
    return to_micro(_price_range(rate, month_to_date, month_to_date + billable))


def rate_usage(card: RateCard, usage: Usage, *, month_to_date: Usage | None = None) -> Rating:
    earlier = month_to_date or {}
    per_meter = {
        meter: rate_meter(card.rate(meter), units, earlier.get(meter, 0))
        for meter, units in usage.items()
    }
    return Rating(per_meter, sum(per_meter.values()))


def charge_delta(
    card: RateCard, previous_charged: int, usage: Usage, month_to_date: Usage | None = None
) -> int:
    """What to debit now: the rating of the cumulative usage less what was charged.
    Never negative: a correction downwards is not a refund path."""
    return max(0, rate_usage(card, usage, month_to_date=month_to_date).total - previous_charged)


def max_units_for_credits(
    card: RateCard, meter: str, micro_credits: int, already_used_units: int = 0,
    month_to_date: int = 0,
) -> int:
    """How many more raw units of `meter` `micro_credits` buy after `already_used_units`
    in this session. Free meters buy without limit: returns a very large number."""
    rate = card.rate(meter)
    base = rate_meter(rate, already_used_units, month_to_date)
    limit = 10**15
    if rate_meter(rate, already_used_units + limit, month_to_date) - base <= micro_credits:
        return limit
    low, high = 0, limit  # invariant: low affordable, high not
    while high - low > 1:
        middle = (low + high) // 2
        cost = rate_meter(rate, already_used_units + middle, month_to_date) - base
        if cost <= micro_credits:
            low = middle
        else:
            high = middle
    return low


def prorate_number_fee(card: RateCard, meter: str, start: dt.date, end: dt.date) -> int:
    """A number held from `start` (inclusive) to `end` (exclusive), both in one month:
    the monthly price times days held over days in that month."""
    if end <= start:
        return 0
    if (start.year, start.month) != ((end - dt.timedelta(days=1)).year,
                                     (end - dt.timedelta(days=1)).month):
        raise ValueError("the period must lie within one calendar month")
    days_in_month = calendar.monthrange(start.year, start.month)[1]
    rate = card.rate(meter)
    monthly = rate.bands()[0].price / Decimal(rate.block)  # one number for one month
    return to_micro(monthly * Decimal((end - start).days) / Decimal(days_in_month))


def monthly_number_fees(
    card: RateCard, held: list[tuple[str, dt.date, dt.date]], month: dt.date
) -> int:
    """Fees for `month` of every (meter, start, end) holding, clipped to that month."""
    first = month.replace(day=1)
    after = (first + dt.timedelta(days=32)).replace(day=1)
    total = 0
    for meter, start, end in held:
        clipped_start, clipped_end = max(start, first), min(end, after)
        total += prorate_number_fee(card, meter, clipped_start, clipped_end)
    return total


def smallest_billable_micro(card: RateCard) -> int:
    """The cheapest non-free step of any meter: below it a tenant can buy nothing (paused)."""
    steps = [rate_meter(rate, rate.increment) for rate in card.meters.values()]
    priced = [step for step in steps if step > 0]
    return min(priced) if priced else 1
