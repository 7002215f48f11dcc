"""One period's rollup sums, and the KPIs derived from them (docs/kpis.md).

Rates are exact ratios rounded half-up to 4 decimals (0..1); `aht_s` has 1 decimal,
`asa_ms` none, `csat` 2, `conversations_per_customer` 4. A KPI whose denominator is zero
is None (JSON null), never 0. Outbound KPIs come with campaigns: None until then.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from metering.billing.money import Currency, round_half_up
from metering.money import format_credits

SUM_COLUMNS = ("conversations", "converted", "successes", "appointments", "tickets",
               "orders", "handoffs", "calls", "abandoned", "answered_calls", "handle_ms",
               "answered", "response_ms", "within_sl", "resolved", "fcr", "rating_sum",
               "rating_count", "micro_credits")
OUTBOUND_KPIS = ("dial_efficiency", "conversion_rate", "avg_call_duration_s",
                 "lead_response_time_s", "appointment_rate", "follow_up_rate",
                 "pipeline_velocity_h")


@dataclass
class Sums:
    conversations: int = 0
    converted: int = 0
    successes: int = 0
    appointments: int = 0
    tickets: int = 0
    orders: int = 0
    handoffs: int = 0
    calls: int = 0
    abandoned: int = 0
    answered_calls: int = 0
    handle_ms: int = 0
    answered: int = 0
    response_ms: int = 0
    within_sl: int = 0
    resolved: int = 0
    fcr: int = 0
    rating_sum: int = 0
    rating_count: int = 0
    micro_credits: int = 0
    customers: int = 0

    def add(self, other: Sums) -> None:
        for item in fields(self):
            if item.name != "customers":  # distinct customers do not add up
                setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))

    @classmethod
    def of_row(cls, row: Any) -> Sums:
        return cls(**{name: int(row[name] or 0) for name in SUM_COLUMNS})


@dataclass(frozen=True)
class PlanPrice:
    """What the tenant's plan charges, for cost per success in money: the success fee per
    success and the monthly fee spread over the days of each month (pro rata per day, the
    way invoices count a partial month); the one-time setup fee is left out."""

    currency: Currency
    monthly_fee: int  # minor units
    success_fee: int
    since: dt.date  # the subscription's first day: no monthly fee before it

    def charges(self, start: dt.date, end: dt.date, successes: int) -> Fraction:
        """Minor units charged for days start..end (inclusive) with `successes`."""
        total = Fraction(self.success_fee * successes)
        day = max(start, self.since)
        while day <= end:
            month_end = _month_end(day)
            last = min(end, month_end)
            days = (last - day).days + 1
            total += Fraction(self.monthly_fee * days, month_end.day)
            day = last + dt.timedelta(days=1)
        return total


def _month_end(day: dt.date) -> dt.date:
    following = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return following - dt.timedelta(days=1)


def ratio(numerator: int, denominator: int, places: int = 4) -> float | None:
    if denominator <= 0:
        return None
    exact = Decimal(numerator) / Decimal(denominator)
    return float(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def _whole(numerator: int, denominator: int) -> int | None:
    return None if denominator <= 0 else round_half_up(Fraction(numerator, denominator))


def kpis(s: Sums, start: dt.date, end: dt.date, price: PlanPrice | None) -> dict[str, Any]:
    """Every KPI of days start..end (inclusive) from their sums."""
    per_success: dict[str, Any] = {"credits": None, "micro_credits": None, "money": None,
                                   "currency": price.currency.code if price else None}
    if s.successes > 0:
        micro = round_half_up(Fraction(s.micro_credits, s.successes))
        per_success.update(credits=format_credits(micro), micro_credits=micro)
        if price is not None:
            charged = price.charges(start, end, s.successes)
            cents = round_half_up(charged * 100 / (price.currency.scale * s.successes))
            per_success["money"] = str(Decimal(cents).scaleb(-2))
    return {
        "conversations": s.conversations,
        "successes": s.successes,
        "success_rate": ratio(s.converted, s.conversations),
        "appointments": s.appointments,
        "tickets": s.tickets,
        "orders": s.orders,
        "handoffs": s.handoffs,
        "escalation_rate": ratio(s.handoffs, s.conversations),
        "aht_s": ratio(s.handle_ms, s.answered_calls * 1000, 1),
        "asa_ms": _whole(s.response_ms, s.answered),
        "abandonment_rate": ratio(s.abandoned, s.calls),
        "service_level": ratio(s.within_sl, s.conversations),
        "resolution_rate": ratio(s.resolved, s.conversations),
        "fcr_rate": ratio(s.fcr, s.conversations),
        "csat": ratio(s.rating_sum, s.rating_count, 2),
        "csat_responses": s.rating_count,
        "customers": s.customers,
        "conversations_per_customer": ratio(s.conversations, s.customers),
        "credits_used": format_credits(s.micro_credits),
        "micro_credits_used": s.micro_credits,
        "cost_per_success": per_success,
        **{name: None for name in OUTBOUND_KPIS},
    }
