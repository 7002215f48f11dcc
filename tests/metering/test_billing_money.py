"""Money, periods and invoice arithmetic: exact minor units, pro rata, cost per success."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from metering.billing.errors import InvalidField
from metering.billing.lines import LineKind, invoice_lines, monthly_share
from metering.billing.money import MAX_AMOUNT, currency, format_amount, parse_amount
from metering.billing.pages import decode_cursor, encode_cursor
from metering.billing.periods import Period, parse_period
from metering.billing.plans import Plan

TRY = currency("TRY")
JPY = currency("JPY")
KWD = currency("KWD")


def test_amounts_parse_exactly_into_minor_units() -> None:
    assert parse_amount("monthly_fee", "4950.00", TRY) == 495_000
    assert parse_amount("monthly_fee", "12", TRY) == 1200
    assert parse_amount("monthly_fee", "12.5", TRY) == 1250
    assert parse_amount("monthly_fee", "0", TRY) == 0
    assert parse_amount("setup_fee", "1200", JPY) == 1200
    assert parse_amount("setup_fee", "1.234", KWD) == 1234
    assert parse_amount("setup_fee", 20000, TRY) == 2_000_000
    assert parse_amount("setup_fee", str(MAX_AMOUNT), TRY) == MAX_AMOUNT * 100


@pytest.mark.parametrize(("value", "cur", "says"), [
    (12.0, TRY, "not a number"),
    (True, TRY, "not a number"),
    ("-1.00", TRY, "negative"),
    (-5, TRY, "negative"),
    ("12.001", TRY, "2 decimal places"),
    ("1.5", JPY, "0 decimal places"),
    ("1e3", TRY, "plain decimal"),
    (" 12", TRY, "plain decimal"),
    ("012", TRY, "plain decimal"),
    ("NaN", TRY, "plain decimal"),
    (None, TRY, "decimal string"),
    (str(MAX_AMOUNT + 1), TRY, "at most"),
    ("100000000.01", TRY, "at most"),
])
def test_bad_amounts_name_the_field(value: object, cur: object, says: str) -> None:
    with pytest.raises(InvalidField) as caught:
        parse_amount("success_fee", value, cur)  # type: ignore[arg-type]
    assert caught.value.field == "success_fee"
    assert says in caught.value.detail


def test_unknown_currency_is_refused() -> None:
    for code in ("XXX", "try", 949, None):
        with pytest.raises(InvalidField) as caught:
            currency(code)
        assert caught.value.field == "currency"


def test_formatting_uses_the_currency_digits() -> None:
    assert format_amount(855_000, TRY) == "8550.00"
    assert format_amount(5, TRY) == "0.05"
    assert format_amount(1200, JPY) == "1200"
    assert format_amount(1234, KWD) == "1.234"


def _plan(**fields: object) -> Plan:
    base: dict[str, object] = dict(
        id="growth", version=1, name="Growth", currency=TRY, setup_fee=2_000_000,
        monthly_fee=495_000, success_fee=1200, included_credits=150_000,
        credit_rollover=True, rate_card=None, created_at=dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
    base.update(fields)
    return Plan(**base)  # type: ignore[arg-type]


def test_seed_000_example_comes_out_exactly() -> None:
    period = Period(2027, 2)
    totals = invoice_lines(_plan(), period, period.first_day, first_cycle=False,
                           successes=300)
    assert [(line.kind, line.amount) for line in totals.lines] == [
        (LineKind.MONTHLY_FEE, 495_000), (LineKind.SUCCESS_FEE, 360_000)]
    assert totals.total == 855_000
    assert totals.cost_per_success == Decimal("28.50")
    assert format_amount(totals.total, TRY) == "8550.00"


def test_first_cycle_bills_the_setup_fee_and_a_pro_rata_month() -> None:
    period = Period(2027, 1)  # 31 days; from the 15th: 17 days
    totals = invoice_lines(_plan(), period, dt.date(2027, 1, 15), first_cycle=True,
                           successes=0)
    assert [line.kind for line in totals.lines] == [
        LineKind.SETUP_FEE, LineKind.MONTHLY_FEE, LineKind.SUCCESS_FEE]
    # 4950.00 x 17 / 31 = 2714.516... -> 2714.52 (half-up)
    assert totals.lines[1].amount == 271_452
    assert "17/31" in totals.lines[1].description
    assert totals.total == 2_000_000 + 271_452
    assert totals.cost_per_success is None


def test_pro_rata_rounds_half_up_to_the_minor_unit() -> None:
    # 0.10 x 15/30 = 0.05 exactly; 0.01 x 15/30 = 0.005 -> 0.01 (half-up, not to even)
    assert monthly_share(10, Period(2026, 11), dt.date(2026, 11, 16)) == 5
    assert monthly_share(1, Period(2026, 11), dt.date(2026, 11, 16)) == 1
    assert monthly_share(1, Period(2026, 11), dt.date(2026, 11, 17)) == 0  # 14/30 of 0.01
    assert monthly_share(495_000, Period(2027, 2), dt.date(2027, 2, 1)) == 495_000
    assert monthly_share(100, Period(2028, 2), dt.date(2028, 2, 29)) == 3  # 1/29 leap year


def test_cost_per_success_rounds_half_up_in_any_currency() -> None:
    totals = invoice_lines(_plan(currency=JPY, monthly_fee=1000, success_fee=0,
                                 setup_fee=0), Period(2027, 2), dt.date(2027, 2, 1),
                           first_cycle=False, successes=8)
    assert totals.cost_per_success == Decimal("125.00")
    totals = invoice_lines(_plan(monthly_fee=1, success_fee=0), Period(2027, 2),
                           dt.date(2027, 2, 1), first_cycle=False, successes=2)
    assert totals.cost_per_success == Decimal("0.01")  # 0.005 -> 0.01


def test_periods() -> None:
    assert str(parse_period("2026-12").next()) == "2027-01"
    assert str(Period(2027, 1).previous()) == "2026-12"
    assert Period(2027, 2).days == 28
    for bad in ("2026-13", "2026-1", "26-01", 202601, None):
        with pytest.raises(InvalidField):
            parse_period(bad)


def test_cursors_round_trip_and_strangers_are_refused() -> None:
    assert decode_cursor(encode_cursor("2027-01", "x"), 2) == ["2027-01", "x"]
    for bad in ("!!", encode_cursor("a"), "bm90IGpzb24"):
        with pytest.raises(InvalidField) as caught:
            decode_cursor(bad, 2)
        assert caught.value.field == "cursor"
