"""Money: ISO 4217 currencies with their minor-unit exponents, exact amounts in integer
minor units, parsed from and formatted to decimal strings (never floats).

The table holds the common currencies; an unknown code is refused rather than guessed (an
exponent wrong by one bills a hundred times too much or too little). Amounts are bounded by
MAX_AMOUNT major units so that every invoice total (fees plus successes x success fee) stays
far inside PostgreSQL's BIGINT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from metering.billing.errors import InvalidField

# ISO 4217 minor-unit exponents (the standard's "minor unit" column).
EXPONENTS: dict[str, int] = {
    "TRY": 2, "EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "SEK": 2, "NOK": 2, "DKK": 2,
    "PLN": 2, "CZK": 2, "HUF": 2, "RON": 2, "BGN": 2, "RSD": 2, "UAH": 2, "RUB": 2,
    "CAD": 2, "AUD": 2, "NZD": 2, "MXN": 2, "BRL": 2, "ARS": 2, "COP": 2, "PEN": 2,
    "CNY": 2, "HKD": 2, "SGD": 2, "INR": 2, "IDR": 2, "MYR": 2, "PHP": 2, "THB": 2,
    "TWD": 2, "ZAR": 2, "EGP": 2, "MAD": 2, "NGN": 2, "KES": 2, "AED": 2, "SAR": 2,
    "QAR": 2, "ILS": 2, "PKR": 2, "AZN": 2, "GEL": 2,
    "JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "UGX": 0, "XOF": 0, "XAF": 0,
    "KWD": 3, "BHD": 3, "OMR": 3, "JOD": 3, "TND": 3, "IQD": 3, "LYD": 3,
}

MAX_AMOUNT = 100_000_000  # major units: the largest fee a plan may carry (10^8)
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,15})(\.[0-9]{1,6})?$")


@dataclass(frozen=True)
class Currency:
    code: str
    exponent: int

    @property
    def scale(self) -> int:
        return int(10**self.exponent)


def currency(code: Any, field: str = "currency") -> Currency:
    """The currency for an ISO 4217 code, or InvalidField naming `field`."""
    if not isinstance(code, str) or code not in EXPONENTS:
        raise InvalidField(field, "must be an ISO 4217 currency code we bill in "
                                  f"({', '.join(sorted(EXPONENTS))})")
    return Currency(code, EXPONENTS[code])


def parse_amount(field: str, value: Any, cur: Currency) -> int:
    """A decimal string ("4950.00", "12") as integer minor units, exactly.

    Refused, naming the field: floats, negative amounts, more decimals than the currency
    has, text that is not a plain decimal, and amounts above MAX_AMOUNT major units.
    An integer is taken as whole major units."""
    if isinstance(value, (bool, float)):
        raise InvalidField(field, "must be a decimal string such as \"12.00\", not a number")
    if isinstance(value, int):
        value = str(value) if value >= 0 else "-"
    if not isinstance(value, str):
        raise InvalidField(field, "must be a decimal string such as \"12.00\"")
    if value.startswith("-"):
        raise InvalidField(field, "must not be negative")
    match = _DECIMAL.match(value)
    if match is None:
        raise InvalidField(field, "must be a plain decimal string such as \"12.00\"")
    decimals = (match.group(2) or ".")[1:]
    if len(decimals) > cur.exponent:
        raise InvalidField(field, f"{cur.code} has {cur.exponent} decimal places; "
                                  f"{value!r} has {len(decimals)}")
    minor = int(match.group(1)) * cur.scale + int(decimals.ljust(cur.exponent, "0") or "0")
    if minor > MAX_AMOUNT * cur.scale:
        raise InvalidField(field, f"must be at most {MAX_AMOUNT}")
    return minor


def format_amount(minor: int, cur: Currency) -> str:
    """Integer minor units as a decimal string with the currency's digits: 855000 TRY ->
    "8550.00", 1200 JPY -> "1200"."""
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), cur.scale)
    return f"{sign}{whole}.{fraction:0{cur.exponent}d}" if cur.exponent else f"{sign}{whole}"


def round_half_up(value: Fraction) -> int:
    """An exact non-negative ratio rounded half-up to an integer (minor units)."""
    whole, rest = divmod(value.numerator, value.denominator)
    return whole + (1 if 2 * rest >= value.denominator else 0)


def cost_per_success(total_minor: int, successes: int, cur: Currency) -> Decimal | None:
    """total / successes in major units, two decimals, half-up; None without successes."""
    if successes <= 0:
        return None
    cents = round_half_up(Fraction(total_minor * 100, cur.scale * successes))
    return Decimal(cents).scaleb(-2)
