"""The documented maxima of every amount the metering code stores or computes.

Why these numbers: the credit-control scripts run in Redis's Lua, whose numbers are
doubles, exact only up to 2^53 (about 9.007 * 10^15). Every amount a script does
arithmetic on is bounded here so that the largest sum it forms stays below 2^53 with room
to spare. Amounts a script only adds with `HINCRBY` (lifetime totals) are exact 64-bit
integers and are bounded below Redis's and PostgreSQL's BIGINT (9.2 * 10^18) instead.

The validators (API, rate cards, the credit store's Python side) refuse anything beyond
these bounds, and each Lua script checks again before it writes: a script answers an
error status (or an `OUT_OF_BOUNDS` error reply, raised before its first write), never a
wrapped or rounded integer. The Lua scripts get these values from `lua_constants()`.
"""

from __future__ import annotations

from decimal import Decimal

MICRO = 1_000_000  # micro-credits per credit (ratecard.MICRO is the same number)
LUA_EXACT = 2**53  # doubles hold every integer up to here exactly
BIGINT_MAX = 2**63 - 1

# A tenant's balance (available + reserved = topped up - billed): 10^9 credits.
MAX_BALANCE_CREDITS = 10**9
MAX_BALANCE_MICRO = MAX_BALANCE_CREDITS * MICRO
# One top-up: one maximum top-up fills an empty account.
MAX_TOPUP_CREDITS = 10**9
# What one session can cost in all (and be granted in all), and one one-shot charge.
MAX_CHARGE_CREDITS = 10**9
MAX_CHARGE_MICRO = MAX_CHARGE_CREDITS * MICRO
# How far one session may be debited beyond its grants (a policy's overdraft limit).
MAX_OVERDRAFT_MICRO = 10**6 * MICRO
# Lifetime totals of a tenant (topped up, billed, written off): HINCRBY only, so only
# 64-bit; kept well below BIGINT so no sum of them can overflow either store.
MAX_LIFETIME_MICRO = 4 * 10**18

# Raw units of one meter in one session report, and the unit fields of a rate card
# (block, increment, minimum, free allowance, tier up_to): about 31,000 years of call
# milliseconds, or 10^15 tokens.
MAX_UNITS = 10**15
# A price (credits per block) on a rate card, and its decimal places.
MAX_PRICE_CREDITS = Decimal(10**6)
MAX_PRICE_SCALE = 12
MAX_PRICE_TEXT = 40  # characters of a price written as a string

# tests/metering/test_bounds.py proves the arithmetic: the largest sum a script forms (a
# session's grants + its overdraft limit + the balance it is granted from) stays far below
# 2^53, two lifetime totals added stay below BIGINT, and the largest rating (MAX_UNITS
# rounded up to an increment, at MAX_PRICE_CREDITS per unit) fits decimal's 28 digits.


class OutOfBounds(ValueError):
    """An amount beyond a documented maximum; `field` names it."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field


class BalanceLimit(OutOfBounds):
    """A top-up that would take the balance past MAX_BALANCE_MICRO; nothing was credited."""

    def __init__(self, balance_micro: int, micro: int) -> None:
        super().__init__("credits", f"the balance may hold at most {MAX_BALANCE_CREDITS} "
                                    "credits; this top-up would pass it")
        self.balance_micro = balance_micro
        self.micro = micro


def check_amount(field: str, value: int, maximum: int, minimum: int = 0) -> int:
    """`value` as an integer in [minimum, maximum], or OutOfBounds naming the field."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise OutOfBounds(field, "must be an integer")
    if not minimum <= value <= maximum:
        raise OutOfBounds(field, f"must be between {minimum} and {maximum}")
    return value


def lua_constants() -> str:
    """The bounds as Lua locals, prepended to every credit-control script."""
    return (f"local MAX_BALANCE = {MAX_BALANCE_MICRO}\n"
            f"local MAX_CHARGE = {MAX_CHARGE_MICRO}\n"
            f"local MAX_LIFETIME = {MAX_LIFETIME_MICRO}\n")
