"""Tariffs as pure arithmetic: parsing with every bad input named, the invoice lines of
each kind (seed 004's cost cap: the cap invoiced, the capped quantities zeroed), the review
at its exact boundary, the offers' rounding, and the templates' placeholders."""

from __future__ import annotations

from typing import Any

import pytest

from metering.billing.errors import InvalidField
from metering.billing.lines import CycleUsage, LineKind, tariff_lines
from metering.billing.money import currency
from metering.billing.offer_templates import KINDS, check_template, render
from metering.billing.periods import Period
from metering.billing.reviews import assess
from metering.billing.tariffs import parse_tariff

NOK = currency("NOK")
DEC = Period(2026, 12)
CAPS = {str(i): f"{i * 100}.00" for i in range(1, 8)}


def cap_tariff(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"kind": "cost_cap",
                           "prices": {"call_seconds": "6.00", "voice_output_tokens": "1.00"},
                           "capped_meters": ["call_seconds"], "category": 1,
                           "category_caps": CAPS, "tolerance_pct": "10"}
    raw.update(changes)
    return raw


@pytest.mark.parametrize(("raw", "field"), [
    ({"kind": "flat_rate", "monthly_price": "1000.00", "reference_price_per_minute": "0.50",
      "tolerance_pct": "1000.01"}, "tariff.tolerance_pct"),
    ({"kind": "flat_rate", "monthly_price": "1000.00", "reference_price_per_minute": "0.50",
      "tolerance_pct": "-1"}, "tariff.tolerance_pct"),
    ({"kind": "flat_rate", "monthly_price": "1000.00", "reference_price_per_minute": "0.00",
      "tolerance_pct": "10"}, "tariff.reference_price_per_minute"),
    ({"kind": "per_call", "price_per_call": "2.50", "reference_price_per_minute": "-0.50",
      "tolerance_pct": "10"}, "tariff.reference_price_per_minute"),
    ({"kind": "per_call", "price_per_call": 2.5, "reference_price_per_minute": "0.50",
      "tolerance_pct": "10"}, "tariff.price_per_call"),
    (cap_tariff(category=8), "tariff.category"),
    (cap_tariff(category=0), "tariff.category"),
    (cap_tariff(category_caps={**CAPS, "4": "300.00"}), "tariff.category_caps.4"),
    (cap_tariff(category_caps={k: v for k, v in CAPS.items() if k != "7"}),
     "tariff.category_caps"),
    (cap_tariff(capped_meters=["sms_sent_segments"]), "tariff.capped_meters"),
    (cap_tariff(prices={"no_such_meter": "1.00"}), "tariff.prices.no_such_meter"),
    ({"kind": "bundle"}, "tariff.kind"),
    ({"kind": "usage", "prices": {"call_seconds": "1.00"}, "tolerance_pct": "5"},
     "tariff.tolerance_pct"),
])
def test_bad_tariffs_name_the_member(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidField) as caught:
        parse_tariff(raw, NOK)
    assert caught.value.field == field


def test_a_tariff_round_trips() -> None:
    raw = cap_tariff(tolerance_pct="12.5")
    assert parse_tariff(raw, NOK).to_json(NOK) == raw


def test_cost_cap_invoices_the_cap_and_zeroes_the_capped_lines() -> None:
    tariff = parse_tariff(cap_tariff(), NOK)
    # 101 s at 6.00 a minute = 10.10 (call_seconds is per 60 s, billed per second)
    below = tariff_lines(tariff, CycleUsage({"call_seconds": 101_000,
                                             "voice_output_tokens": 2_000}, 0, 0), DEC)
    assert [(line.kind, line.quantity, line.amount) for line in below] == [
        (LineKind.USAGE, 101, 1010), (LineKind.USAGE, 2000, 200)]
    # 1001 minutes = 6006.00 > the category 1 cap of 100.00: the cap, the capped line at 0
    above = tariff_lines(tariff, CycleUsage({"call_seconds": 60_060_000,
                                             "voice_output_tokens": 2_000}, 0, 0), DEC)
    assert [(line.kind, line.quantity, line.amount) for line in above] == [
        (LineKind.USAGE, 0, 0), (LineKind.USAGE, 2000, 200), (LineKind.COST_CAP, 1, 10000)]
    exactly = tariff_lines(tariff, CycleUsage({"call_seconds": 1_000_000}, 0, 0), DEC)
    assert [line.amount for line in exactly] == [10000, 0]  # at the cap: no cap line


def test_flat_rate_and_per_call_lines() -> None:
    flat = parse_tariff({"kind": "flat_rate", "monthly_price": "1000.00",
                         "reference_price_per_minute": "0.50", "tolerance_pct": "10"}, NOK)
    assert [(line.kind, line.amount) for line in tariff_lines(
        flat, CycleUsage({}, 3, 500), DEC)] == [(LineKind.FLAT_RATE, 100000)]
    per_call = parse_tariff({"kind": "per_call", "price_per_call": "2.50",
                             "reference_price_per_minute": "0.50", "tolerance_pct": "10"},
                            NOK)
    assert [(line.kind, line.quantity, line.amount) for line in tariff_lines(
        per_call, CycleUsage({}, 7, 500), DEC)] == [(LineKind.PER_CALL, 7, 1750)]


def test_flat_rate_review_boundary_and_offer_rounded_down_to_ten() -> None:
    # reference 6.00 a minute; 2200 s = 36.666... min -> 220.00 at reference
    tariff = parse_tariff({"kind": "flat_rate", "monthly_price": "200.00",
                           "reference_price_per_minute": "6.00", "tolerance_pct": "10"}, NOK)
    at_limit = assess(tariff, CycleUsage({}, 4, 2200), DEC, NOK)
    assert not at_limit.flagged  # 220.00 == 200.00 x 1.10: not flagged
    assert at_limit.figures["minutes"] == "36.67" and at_limit.figures["limit"] == "220.00"
    over = assess(tariff, CycleUsage({}, 4, 2201), DEC, NOK)  # 220.10
    assert over.flagged
    assert over.offer is not None and over.offer["price"] == "220.00"
    assert over.offer["tariff"]["monthly_price"] == "220.00"
    more = assess(tariff, CycleUsage({}, 4, 2399), DEC, NOK)  # 239.90 -> 230.00 (down)
    assert more.offer is not None and more.offer["price"] == "230.00"


def test_per_call_review_boundary_and_offer_half_up() -> None:
    tariff = parse_tariff({"kind": "per_call", "price_per_call": "2.00",
                           "reference_price_per_minute": "6.00", "tolerance_pct": "25"}, NOK)
    # 3 calls, 75 s: 7.50 at reference, 2.50 a call == 2.00 x 1.25
    assert not assess(tariff, CycleUsage({}, 3, 75), DEC, NOK).flagged
    over = assess(tariff, CycleUsage({}, 3, 76), DEC, NOK)  # 7.60 / 3 = 2.5333...
    assert over.flagged and over.offer is not None and over.offer["price"] == "2.53"
    half = assess(tariff, CycleUsage({}, 8, 161), DEC, NOK)  # 16.10 / 8 = 2.0125 -> 2.01
    assert half.offer is not None and half.offer["price"] == "2.01"
    no_calls = assess(tariff, CycleUsage({}, 0, 0), DEC, NOK)
    assert not no_calls.flagged and no_calls.offer is None


def test_cost_cap_review_boundary_and_the_next_category() -> None:
    tariff = parse_tariff(cap_tariff(), NOK)
    # 110.00 capped (1100 s at 6.00 a minute) == 100.00 x 1.10: not flagged
    assert not assess(tariff, CycleUsage({"call_seconds": 1_100_000}, 1, 1100), DEC,
                      NOK).flagged
    over = assess(tariff, CycleUsage({"call_seconds": 1_101_000}, 1, 1101), DEC, NOK)
    assert over.flagged and over.offer is not None
    assert (over.offer["category"], over.offer["price"]) == (2, "200.00")
    top = parse_tariff(cap_tariff(category=7), NOK)
    last = assess(top, CycleUsage({"call_seconds": 100_000_000}, 1, 100_000), DEC, NOK)
    assert last.flagged and last.offer is not None and last.offer["price"] is None
    assert last.offer["tariff"] == {"kind": "usage", "prices": cap_tariff()["prices"]}


def test_templates_refuse_foreign_placeholders_and_bad_braces() -> None:
    for name, bad, named in (("cost_cap_offer", "{1}, over {9}%", "{9}"),
                             ("cost_cap_offer", "{2}", "{2}"),
                             ("flat_rate_offer", "{0} {x}", "{x}"),
                             ("per_call_offer", "{0:>10}", "{0}"),
                             ("per_call_follow_up", "{0.__class__}", "{0.__class__}"),
                             ("flat_rate_follow_up", "price {0", "braces")):
        with pytest.raises(InvalidField) as caught:
            check_template(name, bad)
        assert caught.value.field == "text" and named in caught.value.detail, (name, bad)
    assert check_template("per_call_follow_up", "{7}: {{literal}} {6} {0}")
    with pytest.raises(InvalidField):
        check_template("no_such_template", "{0}")


def test_the_defaults_use_every_placeholder_of_their_kind() -> None:
    for kind in KINDS.values():
        values = [f"<{i}>" for i in range(len(kind.placeholders))]
        text = render(check_template(kind.name, kind.default), values)
        assert all(v in text for v in values), kind.name
        assert text.startswith(values[-1] + ",")  # the salutation opens the mail
