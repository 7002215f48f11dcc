"""A session's life as the voice agent drives it: rate, renew, run out, settle."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from metering.control import PHONE_POLICY, CreditSession, new_session_id
from metering.credit_store import CreditStore
from metering.ratecard import MICRO, default_rate_card
from metering.rating import rate_usage

T = "tenant-c"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
async def store(redis_client: aioredis.Redis, key_prefix: str) -> CreditStore:
    return CreditStore(redis_client, key_prefix)


def _session(store: CreditStore, clock: Clock) -> CreditSession:
    return CreditSession(store, default_rate_card(), PHONE_POLICY, T, new_session_id(), clock)


async def test_a_long_call_renews_and_bills_exactly(store: CreditStore) -> None:
    await store.apply_topup(T, "t1", 10_000 * MICRO)
    clock = Clock()
    session = _session(store, clock)
    assert (await session.start()).status == "granted"
    renewals = 0
    for second in range(1, 301):  # a five-minute call reporting every second
        clock.now += 1_000
        reported_before = session.reported
        exhausted = await session.report({"call_seconds": second * 1_000,
                                          "voice_input_tokens": second * 8,
                                          "voice_output_tokens": second * 6})
        assert not exhausted
        renewals += session.reported != reported_before
    assert renewals >= 2
    settled = await session.finish(details={"disposition": "completed"})
    expected = rate_usage(default_rate_card(), session.usage).total
    assert settled.billed == expected
    balance = await store.balance(T)
    assert (balance.billed, balance.reserved) == (expected, 0)
    assert balance.available == 10_000 * MICRO - expected


async def test_credit_for_twenty_seconds_runs_out_within_the_bound(store: CreditStore) -> None:
    await store.apply_topup(T, "t1", 32 * MICRO)  # ~20 s of call at 95/min
    clock = Clock()
    session = _session(store, clock)
    grant = await session.start()
    assert grant.final and grant.held == 32 * MICRO
    seconds = 0
    while not session.exhausted:
        seconds += 1
        clock.now += 1_000
        await session.report({"call_seconds": seconds * 1_000})
        assert seconds < 60
    assert 19 <= seconds <= 21
    left = session.units_left("call_seconds")
    assert left == 0
    # The goodbye: a few more seconds after the grant ran out, within the overdraft limit.
    await session.report({"call_seconds": (seconds + 4) * 1_000})
    settled = await session.finish("settled", {"disposition": "out_of_credit"})
    assert settled.written_off == 0
    balance = await store.balance(T)
    assert -PHONE_POLICY.overdraft_limit_micro <= balance.available < 0
    assert balance.topped_up == balance.available + balance.reserved + balance.billed


async def test_a_paused_tenant_cannot_start(store: CreditStore) -> None:
    session = _session(store, Clock())
    assert (await session.start()).status == "insufficient"
    assert await session.report({"call_seconds": 5_000}) is True


async def test_a_silent_session_still_renews_before_it_looks_dead(store: CreditStore) -> None:
    await store.apply_topup(T, "t1", 1_000 * MICRO)
    clock = Clock()
    session = _session(store, clock)
    await session.start()
    clock.now += PHONE_POLICY.validity_ms // 2
    await session.report({"call_seconds": 1_000})
    assert await store.sweep(T, clock.now + PHONE_POLICY.validity_ms // 2 + 1) == []


async def test_free_allowance_counts_the_months_earlier_sessions(store: CreditStore) -> None:
    from metering.ratecard import load_rate_card

    card = load_rate_card({"inherit": "default", "meters": {"call_seconds": {
        "price": "60", "block": 60_000, "increment": 1_000, "free_allowance": 90_000}}})
    await store.apply_topup(T, "t1", 1_000 * MICRO)
    clock = Clock()
    first = CreditSession(store, card, PHONE_POLICY, T, new_session_id(), clock)
    await first.start()
    await first.report({"call_seconds": 60_000})
    assert (await first.finish()).billed == 0  # 60 s of the 90 s free this month
    second = CreditSession(store, card, PHONE_POLICY, T, new_session_id(), clock)
    await second.start()
    assert second.month_to_date == {"call_seconds": 60_000}
    await second.report({"call_seconds": 60_000})
    assert (await second.finish()).billed == 30 * MICRO  # 30 s free, 30 s at 1/s
