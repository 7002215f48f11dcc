"""Rate cards are validated with errors naming the meter and field; they round-trip."""

from __future__ import annotations

from typing import Any

import pytest

from metering.meters import METER_NAMES
from metering.ratecard import (
    RateCardError,
    default_rate_card,
    load_rate_card,
    load_rate_card_toml,
    rate_card_to_dict,
)


def test_default_card_has_every_meter_and_the_design_prices() -> None:
    card = default_rate_card()
    assert set(card.meters) == METER_NAMES
    assert str(card.rate("call_seconds").price) == "95"
    assert card.rate("call_seconds").block == 60_000
    assert str(card.rate("voice_output_tokens").price) == "590"
    assert str(card.rate("sms_sent_segments").price) == "2500"


def test_round_trip() -> None:
    card = load_rate_card({"inherit": "default", "meters": {"chat_input_tokens": {
        "block": 1000, "tiers": [{"up_to": 5000, "price": "40.5"}, {"price": "30"}]}}})
    assert load_rate_card(rate_card_to_dict(card)) == card
    assert load_rate_card(rate_card_to_dict(default_rate_card())) == default_rate_card()


@pytest.mark.parametrize(
    ("meters", "message"),
    [
        ({"nope": {"price": "1"}}, "nope: unknown meter"),
        ({"chat_input_tokens": {"price": "-1"}}, "chat_input_tokens.price: must be"),
        ({"chat_input_tokens": {"price": 0.1}}, "chat_input_tokens.price: write prices"),
        ({"chat_input_tokens": {"price": "abc"}}, "is not a decimal number"),
        ({"chat_input_tokens": {"price": "1", "block": 0}}, "chat_input_tokens.block: must be"),
        ({"chat_input_tokens": {"price": "1", "increment": -2}}, "increment: must be > 0"),
        ({"chat_input_tokens": {"tiers": [{"up_to": 10, "price": "1"},
                                          {"up_to": 5, "price": "1"}, {"price": "1"}]}},
         "tiers[1]: tiers overlap"),
        ({"chat_input_tokens": {"tiers": [{"up_to": 10, "price": "1"}]}},
         "the last tier must be open-ended"),
        ({"chat_input_tokens": {"tiers": [{"price": "1"}, {"up_to": 5, "price": "1"}]}},
         "only the last tier may be open-ended"),
        ({"chat_input_tokens": {"block": 5}}, "chat_input_tokens.price: missing"),
        ({"chat_input_tokens": {"price": "1", "colour": "red"}}, "unknown fields"),
    ],
)
def test_invalid_cards_name_meter_and_field(meters: dict[str, Any], message: str) -> None:
    with pytest.raises(RateCardError) as caught:
        load_rate_card({"inherit": "default", "meters": meters})
    assert message in str(caught.value)


def test_missing_meters_without_inherit() -> None:
    with pytest.raises(RateCardError, match="missing from the card"):
        load_rate_card({"meters": {"chat_input_tokens": {"price": "1"}}})


def test_toml_errors_are_rate_card_errors() -> None:
    with pytest.raises(RateCardError, match="not valid TOML"):
        load_rate_card_toml("meters = [")
