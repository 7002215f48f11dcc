"""Rating the default card and hand-made cards: figures a customer can check by hand."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metering.ratecard import default_rate_card, load_rate_card
from metering.rating import (
    charge_delta,
    max_units_for_credits,
    monthly_number_fees,
    prorate_number_fee,
    rate_usage,
)

CARD = default_rate_card()


def test_sixty_one_second_call() -> None:
    rating = rate_usage(CARD, {"call_seconds": 61_000})
    # 95 credits per minute: 61 s = 96.58333... credits, half-up to the micro-credit.
    assert rating.total == 96_583_333
    assert rating.per_meter == {"call_seconds": 96_583_333}


def test_started_second_is_billed_whole() -> None:
    assert rate_usage(CARD, {"call_seconds": 1_001}).total == rate_usage(
        CARD, {"call_seconds": 2_000}).total == 3_166_667


def test_default_token_and_sms_prices() -> None:
    usage = {"chat_input_tokens": 1_000, "chat_output_tokens": 500, "voice_input_tokens": 1,
             "sms_sent_segments": 3, "sms_received_segments": 2, "tts_characters": 999,
             "whatsapp_messages": 4, "stt_seconds": 12_345, "tool_calls": 2}
    rating = rate_usage(CARD, usage)
    assert rating.per_meter == {
        "chat_input_tokens": 40_000_000, "chat_output_tokens": 100_000_000,
        "voice_input_tokens": 295_000, "sms_sent_segments": 7_500_000_000,
        "sms_received_segments": 400_000_000, "tts_characters": 0, "whatsapp_messages": 0,
        "stt_seconds": 0, "tool_calls": 0,
    }


def _card(**rate: object) -> object:
    return load_rate_card({"inherit": "default", "meters": {"chat_input_tokens": rate}})


def test_minimum_and_increment() -> None:
    card = load_rate_card({"inherit": "default", "meters": {
        "call_seconds": {"price": "60", "block": 60_000, "increment": 6_000, "minimum": 30_000}}})
    assert rate_usage(card, {"call_seconds": 0}).total == 0
    assert rate_usage(card, {"call_seconds": 1}).total == 30_000_000  # minimum 30 s
    assert rate_usage(card, {"call_seconds": 31_000}).total == 36_000_000  # 6 s steps


def test_graduated_tiers_across_a_boundary() -> None:
    card = load_rate_card({"inherit": "default", "meters": {"chat_input_tokens": {
        "block": 1000, "tiers": [{"up_to": 10_000, "price": "40"}, {"price": "20"}]}}})
    # 8,000 earlier this month; this session 4,000: 2,000 at 40 and 2,000 at 20 per 1,000.
    rating = rate_usage(card, {"chat_input_tokens": 4_000},
                        month_to_date={"chat_input_tokens": 8_000})
    assert rating.total == 120_000_000


def test_free_allowance_then_paid() -> None:
    card = load_rate_card({"inherit": "default", "meters": {"sms_received_segments": {
        "price": "200", "free_allowance": 100}}})
    assert rate_usage(card, {"sms_received_segments": 5},
                      month_to_date={"sms_received_segments": 90}).total == 0
    assert rate_usage(card, {"sms_received_segments": 5},
                      month_to_date={"sms_received_segments": 98}).total == 600_000_000


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (dt.date(2026, 11, 1), dt.date(2026, 12, 1), 10_000_000_000),  # full 30-day month
        (dt.date(2026, 11, 16), dt.date(2026, 12, 1), 5_000_000_000),  # 15 of 30 days
        (dt.date(2026, 12, 1), dt.date(2026, 12, 2), 322_580_645),  # 1 of 31: 322.580645...
        (dt.date(2026, 2, 1), dt.date(2026, 2, 15), 5_000_000_000),  # 14 of 28
        (dt.date(2028, 2, 1), dt.date(2028, 2, 15), 4_827_586_207),  # 14 of 29 (leap year)
    ],
)
def test_prorated_local_number(start: dt.date, end: dt.date, expected: int) -> None:
    assert prorate_number_fee(CARD, "number_local_months", start, end) == expected


def test_number_fees_across_months() -> None:
    held = [("number_mobile_months", dt.date(2026, 10, 20), dt.date(2027, 1, 1))]
    assert monthly_number_fees(CARD, held, dt.date(2026, 11, 1)) == 60_000_000_000
    # October 20-31: 12 of 31 days.
    assert monthly_number_fees(CARD, held, dt.date(2026, 10, 5)) == 23_225_806_452
    with pytest.raises(ValueError):
        prorate_number_fee(CARD, "number_local_months", dt.date(2026, 1, 30),
                           dt.date(2026, 2, 2))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5_000), st.integers(0, 700), st.integers(0, 90)),
                min_size=1, max_size=25))
def test_summed_deltas_equal_the_final_rating(steps: list[tuple[int, int, int]]) -> None:
    usage = {"call_seconds": 0, "voice_input_tokens": 0, "voice_output_tokens": 0}
    charged = 0
    for ms, tokens_in, tokens_out in steps:
        usage["call_seconds"] += ms
        usage["voice_input_tokens"] += tokens_in
        usage["voice_output_tokens"] += tokens_out
        delta = charge_delta(CARD, charged, usage)
        assert delta >= 0
        charged += delta
    assert charged == rate_usage(CARD, usage).total


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10**9), st.integers(0, 10**7))
def test_max_units_for_credits_is_exact(micro: int, used: int) -> None:
    units = max_units_for_credits(CARD, "call_seconds", micro, used)
    cost = rate_usage(CARD, {"call_seconds": used + units}).total - rate_usage(
        CARD, {"call_seconds": used}).total
    more = rate_usage(CARD, {"call_seconds": used + units + 1}).total - rate_usage(
        CARD, {"call_seconds": used}).total
    assert cost <= micro < more


def test_free_meter_buys_without_limit() -> None:
    assert max_units_for_credits(CARD, "tts_characters", 0) >= 10**12
