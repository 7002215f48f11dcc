"""Credits as text: exact decimal strings from integer micro-credits (never floats)."""

from __future__ import annotations

MICRO_DIGITS = 6


def format_credits(micro: int) -> str:
    """-1_500_000 -> "-1.500000"; always six decimals, so clients parse it as a decimal."""
    sign = "-" if micro < 0 else ""
    whole, fraction = divmod(abs(micro), 10**MICRO_DIGITS)
    return f"{sign}{whole}.{fraction:0{MICRO_DIGITS}d}"
