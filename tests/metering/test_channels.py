"""The one rule of what each channel needs to run."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from metering.channels import (
    CHANNELS,
    can_run,
    is_paused,
    needed_to_run,
    paused_below,
    paused_channels,
    sms_policy,
)
from metering.control import CHAT_POLICY, PHONE_POLICY
from metering.credit_store import CreditStore
from metering.ratecard import MICRO, default_rate_card
from metering.rating import smallest_billable_micro

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


def test_a_paused_tenant_runs_no_channel() -> None:
    # The one rule: paused below the cheapest billable step; every channel needs at least
    # that much, so "paused" implies every channel paused.
    step = paused_below(CARD)
    assert step == smallest_billable_micro(CARD) == paused_below()
    assert all(needed_to_run(c, CARD) >= step for c in CHANNELS)
    assert is_paused(step - 1) and not is_paused(step)
    assert paused_channels(CARD, step - 1) == list(CHANNELS)


def test_phone_and_whatsapp_need_no_card_sms_does() -> None:
    assert can_run("phone", 5 * MICRO) and not can_run("phone", 5 * MICRO - 1)
    assert needed_to_run("whatsapp") == CHAT_POLICY.min_grant_micro
    with pytest.raises(ValueError, match="rate card"):
        needed_to_run("sms")


async def test_every_credit_store_compiles_the_same_paused_rule(
        redis_client: aioredis.Redis, key_prefix: str) -> None:
    # The CLI's reconcile built its store with a 1 micro-credit rule, so a repair could
    # record a tenant the gateways call paused as not paused (and raise alerts for it).
    store = CreditStore(redis_client, key_prefix)
    assert store.min_billable_micro == paused_below()
    await store.apply_topup("tenant-p", "t1", paused_below() - 1)
    assert (await store.balance("tenant-p")).paused
