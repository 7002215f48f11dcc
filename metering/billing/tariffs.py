"""Tariffs of postpaid plans: how a cycle's usage becomes money lines (docs/tariffs.md).

    usage      {"kind": "usage", "prices": {meter: "<money per block>"}}
    cost_cap   usage prices, "capped_meters", "category" 1-7, "category_caps" {"1".."7"},
               "tolerance_pct"
    flat_rate  "monthly_price", "reference_price_per_minute", "tolerance_pct"
    per_call   "price_per_call", "reference_price_per_minute", "tolerance_pct"

A price per block uses the block and billing increment of the meter in the default rate
card (call_seconds: per 60 s, billed per second; tokens: per 1,000). Money is exact:
integer minor units of the plan's currency; percentages are exact decimals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from metering.billing.errors import InvalidField
from metering.billing.money import Currency, format_amount, parse_amount
from metering.ratecard import default_rate_card

KINDS = ("usage", "cost_cap", "flat_rate", "per_call")
REVIEWED_KINDS = ("cost_cap", "flat_rate", "per_call")
CATEGORIES = range(1, 8)
MAX_TOLERANCE_PCT = Decimal(1000)
_PCT = re.compile(r"^(0|[1-9][0-9]{0,3})(\.[0-9]{1,2})?$")


@dataclass(frozen=True)
class MeterPrice:
    meter: str
    price: int  # minor units per block
    block: int  # raw units per block
    increment: int  # raw units billed at a time


@dataclass(frozen=True)
class Tariff:
    kind: str
    prices: tuple[MeterPrice, ...] = ()
    capped_meters: tuple[str, ...] = ()
    category: int = 0
    category_caps: tuple[int, ...] = ()  # caps of categories 1..7, minor units
    tolerance_pct: Decimal = Decimal(0)
    monthly_price: int = 0
    price_per_call: int = 0
    reference_price_per_minute: int = 0

    @property
    def cap(self) -> int:
        return self.category_caps[self.category - 1]

    def to_json(self, cur: Currency) -> dict[str, Any]:
        """The tariff as the operator writes it (and as it is stored)."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind in ("usage", "cost_cap"):
            out["prices"] = {p.meter: format_amount(p.price, cur) for p in self.prices}
        if self.kind == "cost_cap":
            out["capped_meters"] = list(self.capped_meters)
            out["category"] = self.category
            out["category_caps"] = {str(i + 1): format_amount(c, cur)
                                    for i, c in enumerate(self.category_caps)}
        if self.kind == "flat_rate":
            out["monthly_price"] = format_amount(self.monthly_price, cur)
        if self.kind == "per_call":
            out["price_per_call"] = format_amount(self.price_per_call, cur)
        if self.kind in REVIEWED_KINDS:
            if self.kind != "cost_cap":
                out["reference_price_per_minute"] = format_amount(
                    self.reference_price_per_minute, cur)
            out["tolerance_pct"] = format_pct(self.tolerance_pct)
        return out


def format_pct(value: Decimal) -> str:
    """10 -> "10", 12.50 -> "12.5": a plain number."""
    text = format(value.normalize(), "f")
    return text


def _pct(raw: Any, field: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, str | int) or not _PCT.match(str(raw)):
        raise InvalidField(field, "must be a percentage from 0 to 1000 as a decimal string "
                                  "such as \"10\"")
    value = Decimal(str(raw))
    if value > MAX_TOLERANCE_PCT:
        raise InvalidField(field, "must be a percentage from 0 to 1000")
    return value


def _prices(raw: Any, cur: Currency, field: str) -> tuple[MeterPrice, ...]:
    card = default_rate_card()
    if not isinstance(raw, dict) or not raw:
        raise InvalidField(field, "must be an object of meter: money per block")
    out = []
    for meter, price in sorted(raw.items()):
        rate = card.meters.get(meter) if isinstance(meter, str) else None
        if rate is None:
            raise InvalidField(f"{field}.{meter}", "is not a meter")
        out.append(MeterPrice(meter, parse_amount(f"{field}.{meter}", price, cur),
                              rate.block, rate.increment))
    return tuple(out)


def _positive(raw: dict[str, Any], name: str, cur: Currency) -> int:
    field = f"tariff.{name}"
    if name not in raw:
        raise InvalidField(field, "is required")
    value = parse_amount(field, raw[name], cur)
    if value <= 0:
        raise InvalidField(field, "must be more than zero")
    return value


_MEMBERS = {
    "usage": {"kind", "prices"},
    "cost_cap": {"kind", "prices", "capped_meters", "category", "category_caps",
                 "tolerance_pct"},
    "flat_rate": {"kind", "monthly_price", "reference_price_per_minute", "tolerance_pct"},
    "per_call": {"kind", "price_per_call", "reference_price_per_minute", "tolerance_pct"},
}


def parse_tariff(raw: Any, cur: Currency) -> Tariff:
    """A tariff from its JSON, every rule checked; InvalidField names `tariff.<member>`."""
    if not isinstance(raw, dict):
        raise InvalidField("tariff", "must be an object")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise InvalidField("tariff.kind", f"must be one of {', '.join(KINDS)}")
    unknown = sorted(set(raw) - _MEMBERS[kind])
    if unknown:
        raise InvalidField(f"tariff.{unknown[0]}", f"is not a member of a {kind} tariff")
    if kind == "usage":
        return Tariff(kind, prices=_prices(raw.get("prices"), cur, "tariff.prices"))
    tolerance = _pct(raw.get("tolerance_pct"), "tariff.tolerance_pct")
    if kind == "flat_rate":
        return Tariff(kind, tolerance_pct=tolerance,
                      monthly_price=_positive(raw, "monthly_price", cur),
                      reference_price_per_minute=_positive(raw, "reference_price_per_minute",
                                                           cur))
    if kind == "per_call":
        return Tariff(kind, tolerance_pct=tolerance,
                      price_per_call=_positive(raw, "price_per_call", cur),
                      reference_price_per_minute=_positive(raw, "reference_price_per_minute",
                                                           cur))
    prices = _prices(raw.get("prices"), cur, "tariff.prices")
    capped = raw.get("capped_meters")
    priced = {p.meter for p in prices}
    if not isinstance(capped, list) or not capped \
            or not all(isinstance(m, str) and m in priced for m in capped) \
            or len(set(capped)) != len(capped):
        raise InvalidField("tariff.capped_meters",
                           "must list distinct meters that `prices` prices")
    category = raw.get("category")
    if isinstance(category, bool) or not isinstance(category, int) \
            or category not in CATEGORIES:
        raise InvalidField("tariff.category", "must be an integer from 1 to 7")
    caps_raw = raw.get("category_caps")
    if not isinstance(caps_raw, dict) or sorted(caps_raw) != [str(i) for i in CATEGORIES]:
        raise InvalidField("tariff.category_caps", "must give the cap of each category "
                                                   "\"1\" to \"7\"")
    caps = tuple(parse_amount(f"tariff.category_caps.{i}", caps_raw[str(i)], cur)
                 for i in CATEGORIES)
    for i in range(1, 7):
        if caps[i] <= caps[i - 1]:
            raise InvalidField(f"tariff.category_caps.{i + 1}",
                               "caps must increase with the category")
    if caps[0] <= 0:
        raise InvalidField("tariff.category_caps.1", "must be more than zero")
    return Tariff(kind, prices=prices, capped_meters=tuple(sorted(capped)),
                  category=category, category_caps=caps, tolerance_pct=tolerance)
