"""Offer and follow-up templates with seed 004's numbered placeholders, numbered exactly as
there; the defaults are English renderings of seed 004's texts (docs/tariffs.md).

A template is plain text with `{n}` placeholders (`{{` and `}}` for literal braces). A
template is refused when it holds a placeholder its kind does not have, a format spec or
field that is not a bare number, or malformed braces.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from metering.billing.errors import InvalidField


@dataclass(frozen=True)
class TemplateKind:
    name: str
    placeholders: tuple[str, ...]  # what {0}, {1}, ... stand for
    default: str


_CAP_BODY = ("unfortunately the cost cap has been exceeded by more than {0}%. You will "
             "therefore be placed in a higher category for future billing periods. If you "
             "are already in category 7, we can unfortunately no longer offer you a cost "
             "cap; in that case we must bill by call minutes.")
_FLAT_BODY = (
    "we have found that we can unfortunately no longer offer you the existing flat rate "
    "of {0}/month, because the calls last much longer overall than we assumed.\n\n"
    "In the month {1} we had inbound calls with a total duration of {2} minutes for you. "
    "For a monthly flat rate we must set a price of {3} per call minute.\n\n"
    "To keep offering you a good service, we must set a flat rate of {4} per month from "
    "now on. The price is calculated as follows: {2} call minutes * {3} per call minute, "
    "rounded in your favour to the nearest ten.\n\n"
    "If a flat rate of {4}/month is too high for you and you believe the number of calls "
    "will be lower in the future, we will also gladly make you an offer of a fixed price "
    "per handled call.")
_PER_CALL_BODY = (
    "we have found that we can unfortunately no longer offer you the existing fixed price "
    "of {0} per handled call, because the calls on average last much longer than we "
    "assumed.\n\n"
    "In the month {1} we had {2} inbound calls with a total duration of {3} minutes for "
    "you. For a fixed price per handled call we must set a price of {4} per call minute."
    "\n\n"
    "To keep offering you a good service, we must set a fixed price of {5} per handled "
    "call from now on. The price is calculated as follows: {3} call minutes / {2} calls * "
    "{4} per call minute.\n\n"
    "Instead of the current fixed price per handled call, we will also gladly make you an "
    "offer of a monthly flat rate. That price would include all handled calls.")


def _follow_up(salutation: int, date: int, body: str) -> str:
    return (f"{{{salutation}}},\n\nunfortunately we have not received a reply from you to our "
            f"e-mail of {{{date}}}. Please get in touch with us!\n\n"
            f"Our message of {{{date}}}:\n\n{body}")


_CAP = ("tolerance in %", "salutation")
_FLAT = ("current flat rate price", "period reviewed", "total minutes of handled inbound calls",
         "reference price per minute", "new price")
_PER_CALL = ("current price per call", "month reviewed", "number of calls", "total minutes",
             "reference price per minute", "new price per call")
_DATE = "date of the offer e-mail"

KINDS: Mapping[str, TemplateKind] = {k.name: k for k in (
    TemplateKind("cost_cap_offer", _CAP, "{1},\n\n" + _CAP_BODY),
    TemplateKind("cost_cap_follow_up", ("tolerance in %", _DATE, "salutation"),
                 _follow_up(2, 1, _CAP_BODY)),
    TemplateKind("flat_rate_offer", (*_FLAT, "salutation"), "{5},\n\n" + _FLAT_BODY),
    TemplateKind("flat_rate_follow_up", (*_FLAT, _DATE, "salutation"),
                 _follow_up(6, 5, _FLAT_BODY)),
    TemplateKind("per_call_offer", (*_PER_CALL, "salutation"), "{6},\n\n" + _PER_CALL_BODY),
    TemplateKind("per_call_follow_up", (*_PER_CALL, _DATE, "salutation"),
                 _follow_up(7, 6, _PER_CALL_BODY)),
)}

SUBJECTS = {"cost_cap": "Your cost cap", "flat_rate": "Your flat rate",
            "per_call": "Your price per handled call"}


def template_kind(name: str) -> TemplateKind:
    kind = KINDS.get(name)
    if kind is None:
        raise InvalidField("name", f"must be one of {', '.join(KINDS)}")
    return kind


def check_template(name: str, text: object) -> str:
    """The text if `name` may use it; InvalidField `text` naming the fault."""
    kind = template_kind(name)
    if not isinstance(text, str) or not 1 <= len(text) <= 20000 or "\x00" in text:
        raise InvalidField("text", "must be 1-20000 characters (no NUL)")
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise InvalidField("text", f"malformed braces: {exc} (write {{{{ and }}}} for a "
                                   "literal brace)") from exc
    allowed = len(kind.placeholders)
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field.isdigit() or spec or conversion:
            raise InvalidField("text", f"placeholder {{{field}}} is not a number {{0}}-"
                                       f"{{{allowed - 1}}} of {name}")
        if int(field) >= allowed:
            raise InvalidField("text", f"placeholder {{{field}}}: {name} has only {{0}}-"
                                       f"{{{allowed - 1}}}")
    return text


def render(text: str, values: Sequence[str]) -> str:
    """A checked template with its values, in placeholder order."""
    return text.format(*values)
