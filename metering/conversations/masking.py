"""Phone numbers and e-mail addresses inside transcript text, hidden when the tenant sets
`mask_transcripts`. The same rule for every channel and for tool arguments and results.

A phone number is a run of at least 7 digits, with one space, dot or dash (or a closing
parenthesis) between them and a leading `+` or `(`; its last two digits stay visible
(`+***********78`). An e-mail address keeps its first character and its domain
(`j***@example.com`). Dates (2026-12-01, 1.12.2026) and short numbers (3 pizzas, 10:30)
are left alone.
"""

from __future__ import annotations

import re
from typing import Any

_EMAIL = re.compile(r"\b([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b")
_PHONE = re.compile(r"(?<![\w(])[+(]?\d(?:(?:[\s.\-]|\)\s?)?\d){6,}(?![\w])")


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}")


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    if _DATE.search(text):  # a date (beside a time), not a number
        return text
    digits = [i for i, ch in enumerate(text) if ch.isdigit()]
    keep = set(digits[-2:])
    return "".join(ch if (not ch.isdigit() or i in keep) else "*" for i, ch in enumerate(text))


def mask_text(text: str) -> str:
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(_phone, text)


def mask_value(value: Any) -> Any:
    """Every string inside a JSON value (tool arguments, results), masked."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v) for v in value]
    return value
