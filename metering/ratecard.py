"""Rate cards as data: exact decimal prices per block of raw units, validated on load.

A card is a mapping (from TOML or JSON):

    name = "default"
    [meters.call_seconds]
    price = "95"          # credits per block; a string or an integer, never a float
    block = 60000         # raw units per block (here: ms per minute)
    increment = 1000      # usage is rounded up to a multiple of this (billed per second)
    minimum = 0           # raw units charged at least, per session, once usage > 0
    free_allowance = 0    # raw units free per calendar month per tenant
    tiers = [{ up_to = 600000, price = "95" }, { price = "80" }]   # graduated, optional

`inherit = "default"` takes every meter the card does not name from the default card.

Bounds (`metering.bounds`): a price is at most MAX_PRICE_CREDITS per block with at most
MAX_PRICE_SCALE decimal places; block, increment, minimum, free_allowance and tier up_to
are at most MAX_UNITS. So the rating of any session usage (each meter's count is at most
MAX_UNITS too) is exact and never overflows decimal's precision.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import Any

from metering.bounds import MAX_PRICE_CREDITS, MAX_PRICE_SCALE, MAX_PRICE_TEXT, MAX_UNITS
from metering.meters import FREE_WHEN_ABSENT, METER_NAMES

MICRO = 1_000_000  # micro-credits per credit


class RateCardError(ValueError):
    """A rate card that cannot be used; the message names the meter and the field, and
    `field` holds that name ("call_seconds.price", "name")."""

    @property
    def field(self) -> str:
        return str(self).partition(":")[0]


@dataclass(frozen=True)
class Tier:
    up_to: int | None  # monthly cumulative raw units this tier ends at; None: open-ended
    price: Decimal


@dataclass(frozen=True)
class MeterRate:
    price: Decimal
    block: int = 1
    increment: int = 1
    minimum: int = 0
    free_allowance: int = 0
    tiers: tuple[Tier, ...] = ()

    def bands(self) -> tuple[Tier, ...]:
        """The graduated price bands; a card without tiers has one open band."""
        return self.tiers or (Tier(None, self.price),)


@dataclass(frozen=True)
class RateCard:
    name: str
    meters: Mapping[str, MeterRate]

    def rate(self, meter: str) -> MeterRate:
        try:
            return self.meters[meter]
        except KeyError:
            raise RateCardError(f"{meter}: not on rate card {self.name!r}") from None


def _price(meter: str, field: str, value: Any) -> Decimal:
    if isinstance(value, (bool, float)):
        raise RateCardError(f"{meter}.{field}: write prices as strings or integers, not floats")
    if not isinstance(value, (int, str)):
        raise RateCardError(f"{meter}.{field}: must be a decimal string or an integer")
    if isinstance(value, str) and len(value) > MAX_PRICE_TEXT:
        raise RateCardError(f"{meter}.{field}: at most {MAX_PRICE_TEXT} characters")
    try:
        price = Decimal(value)
    except InvalidOperation:
        raise RateCardError(f"{meter}.{field}: {value!r} is not a decimal number") from None
    if not price.is_finite() or price < 0:
        raise RateCardError(f"{meter}.{field}: must be a finite number >= 0")
    if price > MAX_PRICE_CREDITS:
        raise RateCardError(f"{meter}.{field}: at most {MAX_PRICE_CREDITS} credits per block")
    if _scale(price) > MAX_PRICE_SCALE:
        raise RateCardError(f"{meter}.{field}: at most {MAX_PRICE_SCALE} decimal places")
    return price


def _scale(price: Decimal) -> int:
    """Decimal places without trailing zeros ("1.50" has 1), counted exactly (normalize()
    would round to the context's precision first)."""
    _, digits, exponent = price.as_tuple()
    assert isinstance(exponent, int)  # finite: checked before
    significant = "".join(map(str, digits)).rstrip("0")
    return -exponent - (len(digits) - len(significant)) if significant else 0


def _count(meter: str, field: str, value: Any, *, positive: bool) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RateCardError(f"{meter}.{field}: must be an integer")
    if value < (1 if positive else 0):
        raise RateCardError(f"{meter}.{field}: must be {'> 0' if positive else '>= 0'}")
    if value > MAX_UNITS:
        raise RateCardError(f"{meter}.{field}: at most {MAX_UNITS}")
    return value


def _tiers(meter: str, raw: Any) -> tuple[Tier, ...]:
    if not isinstance(raw, list) or not raw:
        raise RateCardError(f"{meter}.tiers: must be a non-empty list")
    tiers: list[Tier] = []
    previous = 0
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise RateCardError(f"{meter}.tiers[{index}]: must be a table")
        up_to = item.get("up_to")
        last = index == len(raw) - 1
        if up_to is None and not last:
            raise RateCardError(f"{meter}.tiers[{index}]: only the last tier may be open-ended")
        if up_to is not None:
            up_to = _count(meter, f"tiers[{index}].up_to", up_to, positive=True)
            if up_to <= previous:
                raise RateCardError(f"{meter}.tiers[{index}]: tiers overlap or are not ascending")
            previous = up_to
        tiers.append(Tier(up_to, _price(meter, f"tiers[{index}].price", item.get("price"))))
    if tiers[-1].up_to is not None:
        raise RateCardError(f"{meter}.tiers: the last tier must be open-ended (no up_to)")
    return tuple(tiers)


_FIELDS = {"price", "block", "increment", "minimum", "free_allowance", "tiers"}


def _meter_rate(meter: str, raw: Any) -> MeterRate:
    if not isinstance(raw, Mapping):
        raise RateCardError(f"{meter}: must be a table of fields")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise RateCardError(f"{meter}: unknown fields {sorted(unknown)}")
    tiers = _tiers(meter, raw["tiers"]) if "tiers" in raw else ()
    if "price" not in raw and not tiers:
        raise RateCardError(f"{meter}.price: missing")
    return MeterRate(
        price=_price(meter, "price", raw.get("price", 0)),
        block=_count(meter, "block", raw.get("block", 1), positive=True),
        increment=_count(meter, "increment", raw.get("increment", 1), positive=True),
        minimum=_count(meter, "minimum", raw.get("minimum", 0), positive=False),
        free_allowance=_count(meter, "free_allowance", raw.get("free_allowance", 0),
                              positive=False),
        tiers=tiers,
    )


def load_rate_card(data: Mapping[str, Any]) -> RateCard:
    meters_raw = data.get("meters", {})
    if not isinstance(meters_raw, Mapping):
        raise RateCardError("meters: must be a table keyed by meter name")
    unknown = sorted(set(meters_raw) - METER_NAMES)
    if unknown:
        raise RateCardError(f"{unknown[0]}: unknown meter")
    meters = {name: _meter_rate(name, raw) for name, raw in meters_raw.items()}
    inherit = data.get("inherit")
    if inherit not in (None, "default"):
        raise RateCardError('inherit: the only card to inherit from is "default"')
    if inherit == "default":
        meters = {**default_rate_card().meters, **meters}
    for absent in FREE_WHEN_ABSENT - set(meters):
        meters[absent] = _meter_rate(absent, {"price": "0"})
    missing = sorted(METER_NAMES - set(meters))
    if missing:
        raise RateCardError(f"{missing[0]}: missing from the card (or set inherit = \"default\")")
    name = data.get("name", "custom")
    if not isinstance(name, str) or not name:
        raise RateCardError("name: must be a non-empty string")
    return RateCard(name, meters)


def load_rate_card_toml(text: str) -> RateCard:
    try:
        return load_rate_card(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise RateCardError(f"not valid TOML: {exc}") from exc


@cache
def default_rate_card() -> RateCard:
    text = (resources.files("metering") / "default_rate_card.toml").read_text()
    return load_rate_card_toml(text)


def rate_card_to_dict(card: RateCard) -> dict[str, Any]:
    """JSON-ready form (decimals as strings) that `load_rate_card` reads back equal."""
    meters: dict[str, Any] = {}
    for name, rate in sorted(card.meters.items()):
        entry: dict[str, Any] = {"price": str(rate.price), "block": rate.block,
                                 "increment": rate.increment, "minimum": rate.minimum,
                                 "free_allowance": rate.free_allowance}
        if rate.tiers:
            entry["tiers"] = [{"price": str(t.price)} | ({"up_to": t.up_to} if t.up_to else {})
                              for t in rate.tiers]
        meters[name] = entry
    return {"name": card.name, "meters": meters}
