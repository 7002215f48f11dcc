"""An invoice's lines and totals from its plan, days and successes: pure arithmetic.

Rounding: a pro-rata monthly fee is monthly_fee x days billed / days in the month, rounded
half-up to the minor unit; the cost per success is total / successes, two decimals,
half-up; a usage line of a tariff is billed units x price / block, half-up (one rounding
per line). Everything else is exact integer minor units. A postpaid plan's tariff adds
its lines (`tariff_lines`, docs/tariffs.md).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from metering.billing.money import Currency, cost_per_success, format_amount, round_half_up
from metering.billing.periods import Period
from metering.billing.plans import Plan
from metering.billing.tariffs import MeterPrice, Tariff


class LineKind(enum.Enum):
    SETUP_FEE = "setup_fee"
    MONTHLY_FEE = "monthly_fee"
    SUCCESS_FEE = "success_fee"
    USAGE = "usage"
    COST_CAP = "cost_cap"
    FLAT_RATE = "flat_rate"
    PER_CALL = "per_call"


@dataclass(frozen=True)
class CycleUsage:
    """What a tariff bills from a cycle: billed units per meter (after each record's
    billing increment) and the handled inbound calls with their billed call seconds."""

    billed_units: dict[str, int]
    handled_calls: int
    handled_seconds: int


@dataclass(frozen=True)
class Line:
    kind: LineKind
    description: str
    quantity: int
    unit_price: int  # minor units
    amount: int  # minor units; for a pro-rata monthly fee: the share, not quantity x price

    def to_json(self, cur: Currency) -> dict[str, Any]:
        return {"kind": self.kind.value, "description": self.description,
                "quantity": self.quantity, "unit_price": format_amount(self.unit_price, cur),
                "amount": format_amount(self.amount, cur)}

    def to_stored(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "description": self.description,
                "quantity": self.quantity, "unit_price": self.unit_price,
                "amount": self.amount}

    @classmethod
    def from_stored(cls, raw: dict[str, Any]) -> Line:
        return cls(LineKind(raw["kind"]), raw["description"], raw["quantity"],
                   raw["unit_price"], raw["amount"])


@dataclass(frozen=True)
class Totals:
    lines: tuple[Line, ...]
    total: int
    successes: int
    cost_per_success: Decimal | None


def monthly_share(monthly_fee: int, period: Period, starts_on: dt.date) -> int:
    """The monthly fee for the days from `starts_on` (included) to the period's end."""
    if starts_on <= period.first_day:
        return monthly_fee
    return round_half_up(Fraction(monthly_fee * period.days_from(starts_on), period.days))


def usage_amount(units: int, price: int, block: int) -> int:
    return round_half_up(Fraction(units * price, block))


def _usage_description(price: MeterPrice, quantity: int) -> str:
    """"call_seconds: 101 x 1 s, priced per 60 s"; time meters count milliseconds."""
    if price.meter.endswith("_seconds"):
        return (f"{price.meter}: {quantity} x {price.increment / 1000:g} s, priced per "
                f"{price.block / 1000:g} s")
    return f"{price.meter}: {quantity} x {price.increment}, priced per {price.block}"


def tariff_lines(tariff: Tariff, usage: CycleUsage, period: Period) -> list[Line]:
    """The money lines of a tariff for one cycle. Cost cap (seed 004): when the capped
    meters' amounts together exceed the category's cap, the cap is invoiced and the capped
    lines' quantities (and amounts) are set to 0."""
    if tariff.kind == "flat_rate":
        return [Line(LineKind.FLAT_RATE, f"Flat rate, {period}", 1, tariff.monthly_price,
                     tariff.monthly_price)]
    if tariff.kind == "per_call":
        calls = usage.handled_calls
        return [Line(LineKind.PER_CALL, f"Handled inbound calls x {calls}", calls,
                     tariff.price_per_call, calls * tariff.price_per_call)]
    lines: list[Line] = []
    for price in tariff.prices:
        units = usage.billed_units.get(price.meter, 0)
        quantity = units // price.increment
        lines.append(Line(LineKind.USAGE, _usage_description(price, quantity), quantity,
                          price.price, usage_amount(units, price.price, price.block)))
    if tariff.kind != "cost_cap":
        return lines
    capped = sum(line.amount for line, price in zip(lines, tariff.prices, strict=True)
                 if price.meter in tariff.capped_meters)
    if capped <= tariff.cap:
        return lines
    zeroed = [Line(line.kind, line.description + " (within the cost cap)", 0,
                   line.unit_price, 0) if price.meter in tariff.capped_meters else line
              for line, price in zip(lines, tariff.prices, strict=True)]
    return [*zeroed, Line(LineKind.COST_CAP, f"Cost cap, category {tariff.category}", 1,
                          tariff.cap, tariff.cap)]


def invoice_lines(plan: Plan, period: Period, starts_on: dt.date, first_cycle: bool,
                  successes: int, usage: CycleUsage | None = None) -> Totals:
    lines: list[Line] = []
    if first_cycle and plan.setup_fee > 0:
        lines.append(Line(LineKind.SETUP_FEE, f"Setup fee ({plan.name})", 1, plan.setup_fee,
                          plan.setup_fee))
    if plan.monthly_fee > 0:
        share = monthly_share(plan.monthly_fee, period, starts_on)
        description = f"Monthly fee ({plan.name}), {period}"
        if share != plan.monthly_fee or starts_on > period.first_day:
            description += (f", pro rata {period.days_from(starts_on)}/{period.days} days "
                            f"from {starts_on.isoformat()}")
        lines.append(Line(LineKind.MONTHLY_FEE, description, 1, plan.monthly_fee, share))
    if plan.success_fee > 0:
        lines.append(Line(LineKind.SUCCESS_FEE, f"Successful outcomes x {successes}",
                          successes, plan.success_fee, successes * plan.success_fee))
    if plan.tariff is not None:
        lines.extend(tariff_lines(plan.tariff, usage or CycleUsage({}, 0, 0), period))
    total = sum(line.amount for line in lines)
    return Totals(tuple(lines), total, successes,
                  cost_per_success(total, successes, plan.currency))
