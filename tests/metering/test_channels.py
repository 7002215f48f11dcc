"""The one rule of what each channel needs to run."""

from __future__ import annotations

from metering.channels import CHANNELS, needed_to_run, paused_channels, sms_policy
from metering.control import CHAT_POLICY, PHONE_POLICY
from metering.ratecard import MICRO, default_rate_card

CARD = default_rate_card()


def test_each_channel_needs_its_policys_minimum_grant() -> None:
    assert needed_to_run("phone", CARD) == PHONE_POLICY.min_grant_micro == 5 * MICRO
    assert needed_to_run("whatsapp", CARD) == CHAT_POLICY.min_grant_micro
    assert needed_to_run("sms", CARD) == sms_policy(CARD).min_grant_micro == 2_520 * MICRO


def test_paused_channels_by_balance() -> None:
    assert paused_channels(CARD, 0) == list(CHANNELS) == ["phone", "whatsapp", "sms"]
    assert paused_channels(CARD, MICRO) == ["phone", "sms"]
    assert paused_channels(CARD, 2_519 * MICRO) == ["sms"]
    assert paused_channels(CARD, 2_520 * MICRO) == []
