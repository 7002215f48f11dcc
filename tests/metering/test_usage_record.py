"""The usage record: a light report that debits like UPDATE but never renews the hold, so
a session whose gateway died is swept with the cost and usage it last recorded."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from metering.control import PHONE_POLICY, CreditSession
from metering.credit_store import Balance, CreditStore
from metering.keys import tenant_keys
from metering.ratecard import MICRO, default_rate_card
from metering.rating import rate_usage

C = MICRO
RECORDED, UPDATED = "tenant-rec", "tenant-upd"


@pytest.fixture
async def store(redis_client: aioredis.Redis, key_prefix: str) -> CreditStore:
    return CreditStore(redis_client, key_prefix)


def conserved(balance: Balance) -> bool:
    return balance.topped_up == balance.available + balance.reserved + balance.billed


async def events(store: CreditStore, tenant: str) -> list[dict[str, str]]:
    entries: Any = await store.redis.xrange(tenant_keys(store.prefix, tenant).outbox)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


async def open_session(store: CreditStore, tenant: str, now: int = 1_000) -> None:
    grant = await store.reserve(tenant, "s1", channel="phone", requested=30 * C,
                                min_grant=C, validity_ms=60_000, overdraft_limit=5 * C,
                                now_ms=now)
    assert grant.status in ("granted", "final")


async def test_record_debits_exactly_like_update(store: CreditStore) -> None:
    # 20 credits each; a 30-credit request is a FINAL grant of 10 (after 10 spent), so the
    # reports run through the hold, the overdraft limit and past it into the write-off.
    reports = [(4 * C, {"call_seconds": 3_000}), (4 * C, {"call_seconds": 3_500}),
               (13 * C, {"call_seconds": 9_000}), (40 * C, {"call_seconds": 30_000})]
    for tenant in (RECORDED, UPDATED):
        await store.apply_topup(tenant, "t1", 20 * C)
        await store.charge(tenant, "drain", channel="sms", micro=10 * C, usage={}, now_ms=1)
        await open_session(store, tenant)
    for n, (charged, usage) in enumerate(reports):
        now = 2_000 + n
        recorded = await store.record(RECORDED, "s1", charged_total=charged, usage=usage,
                                      now_ms=now)
        # target 0: UPDATE's top-up grants nothing, so only its debit is compared.
        updated = await store.update(UPDATED, "s1", charged_total=charged, usage=usage,
                                     target_held=0, min_grant=C, validity_ms=60_000,
                                     now_ms=now)
        assert recorded.status == "recorded"
        assert (recorded.held, recorded.billed, recorded.written_off, recorded.final) == (
            updated.held, updated.billed, updated.written_off, updated.final)
        rec_balance, upd_balance = await store.balance(RECORDED), await store.balance(UPDATED)
        assert rec_balance == upd_balance
        assert conserved(rec_balance)
    # granted 10 + overdraft 5: 15 billed by the session, 25 written off
    assert (recorded.billed, recorded.written_off) == (15 * C, 25 * C)
    assert (await store.balance(RECORDED)).available == -5 * C

    def debits(rows: list[dict[str, str]]) -> list[tuple[str, str, str]]:
        return [(r["id"], r["micro"], r["usage"]) for r in rows if r["type"] == "debit"]

    assert debits(await events(store, RECORDED)) == debits(await events(store, UPDATED))
    assert len(debits(await events(store, RECORDED))) == 3  # the repeated cost debits nothing
    session = await store.session(RECORDED, "s1")
    assert orjson.loads(session["usage"]) == {"call_seconds": 30_000}


async def test_record_keeps_the_hold_and_its_expiry(store: CreditStore) -> None:
    await store.apply_topup(RECORDED, "t1", 100 * C)
    await open_session(store, RECORDED, now=1_000)
    before = await store.session(RECORDED, "s1")
    live = tenant_keys(store.prefix, RECORDED).live
    grant = await store.record(RECORDED, "s1", charged_total=7 * C,
                               usage={"call_seconds": 4_000}, now_ms=50_000,
                               details={"disposition": "gateway_lost"})
    assert (grant.status, grant.held, grant.expires_ms) == ("recorded", 23 * C, 61_000)
    after = await store.session(RECORDED, "s1")
    for unchanged in ("expires_ms", "granted_total", "final", "state", "started_ms"):
        assert after[unchanged] == before[unchanged], unchanged
    assert await store.redis.zscore(live, "s1") == 61_000
    balance = await store.balance(RECORDED)
    assert (balance.available, balance.reserved, balance.billed) == (70 * C, 23 * C, 7 * C)
    # Not renewed: swept at the expiry INITIAL set, although it recorded since.
    assert await store.sweep(RECORDED, now_ms=61_001) == ["s1"]
    balance = await store.balance(RECORDED)
    assert (balance.available, balance.reserved, balance.billed) == (93 * C, 0, 7 * C)
    assert conserved(balance)
    record = (await events(store, RECORDED))[-1]
    assert (record["type"], record["status"], record["micro"]) == ("session", "swept",
                                                                   str(7 * C))
    assert orjson.loads(record["usage"]) == {"call_seconds": 4_000}
    assert orjson.loads(record["details"]) == {"disposition": "gateway_lost"}
    # It ends when it was last known alive (its record), not when the sweeper came by.
    assert (record["started_ms"], record["ended_ms"]) == ("1000", "50000")


async def test_a_session_that_never_reported_is_swept_as_ending_at_its_start(
        store: CreditStore) -> None:
    await store.apply_topup(RECORDED, "t1", 100 * C)
    await open_session(store, RECORDED, now=1_000)
    assert await store.sweep(RECORDED, now_ms=90_000) == ["s1"]
    record = (await events(store, RECORDED))[-1]
    assert (record["micro"], record["started_ms"], record["ended_ms"]) == ("0", "1000", "1000")


async def test_record_refuses_a_session_that_is_not_open(store: CreditStore) -> None:
    await store.apply_topup(RECORDED, "t1", 100 * C)
    refused = await store.record(RECORDED, "never", charged_total=C, usage={}, now_ms=5)
    assert refused.status == "unknown"
    assert await store.session(RECORDED, "never") == {}  # nothing created
    await open_session(store, RECORDED)
    await store.terminate(RECORDED, "s1", charged_total=2 * C,
                          usage={"call_seconds": 1_000}, now_ms=3_000)
    balance, outbox = await store.balance(RECORDED), await events(store, RECORDED)
    session = await store.session(RECORDED, "s1")
    refused = await store.record(RECORDED, "s1", charged_total=9 * C,
                                 usage={"call_seconds": 9_000}, now_ms=4_000)
    assert refused.status == "unknown"
    assert await store.balance(RECORDED) == balance
    assert await events(store, RECORDED) == outbox
    assert await store.session(RECORDED, "s1") == session


async def test_records_batch_with_other_credit_control_calls(store: CreditStore) -> None:
    await store.apply_topup(RECORDED, "t1", 100 * C)
    await open_session(store, RECORDED)
    results = await store.run_batch([
        store.record_call(RECORDED, "s1", charged_total=3 * C, usage={"call_seconds": 2_000},
                          now_ms=2_000),
        store.record_call(RECORDED, "s1", charged_total=5 * C, usage={"call_seconds": 3_000},
                          now_ms=3_000),
        store.terminate_call(RECORDED, "s1", charged_total=None, usage=None, now_ms=4_000),
        store.record_call(RECORDED, "s1", charged_total=9 * C, usage={}, now_ms=5_000),
    ])
    assert [r.status for r in results] == ["recorded", "recorded", "settled", "unknown"]
    assert results[2].billed == 5 * C


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


async def test_a_session_swept_after_its_gateway_died_is_charged_what_it_recorded(
        store: CreditStore) -> None:
    """A call reporting every second with a record every 5 s, then silence (SIGKILL):
    the sweeper charges the last record, at most 5 s behind."""
    await store.apply_topup(RECORDED, "t1", 10_000 * C)
    clock, card = Clock(), default_rate_card()
    policy = replace(PHONE_POLICY, record_every_ms=5_000)
    session = CreditSession(store, card, policy, RECORDED, "call_CA1", clock,
                            meta={"call_sid": "CA1", "disposition": "gateway_lost"})
    await session.start()
    started = clock.now

    def usage_at(second: int) -> dict[str, int]:
        return {"call_seconds": second * 1_000, "voice_input_tokens": second * 10,
                "voice_output_tokens": second * 3}

    for second in range(1, 24):  # dies 23 s in, before its next record at 25 s
        clock.now += 1_000
        assert await session.report(usage_at(second)) is False
        # recorded at 5, 10, 15, 20 s; then due again 5 s later
        assert session.record_due_in_ms() == (5 - second % 5) * 1_000
    assert session.last_update_ms == started  # no renewal was due: only records
    swept = await store.sweep(RECORDED, clock.now + PHONE_POLICY.validity_ms)
    assert swept == ["call_CA1"]
    record = (await events(store, RECORDED))[-1]
    recorded = rate_usage(card, usage_at(20))
    assert (record["status"], int(record["micro"])) == ("swept", recorded.total)
    assert orjson.loads(record["usage"]) == usage_at(20)
    details = orjson.loads(record["details"])
    assert details == {"call_sid": "CA1", "disposition": "gateway_lost",
                       "charges": recorded.per_meter}
    assert recorded.total >= rate_usage(card, usage_at(23 - 5)).total
    balance = await store.balance(RECORDED)
    assert (balance.reserved, balance.billed) == (0, recorded.total)
    assert conserved(balance)


async def test_without_periodic_records_nothing_is_recorded_between_renewals(
        store: CreditStore) -> None:
    await store.apply_topup(RECORDED, "t1", 10_000 * C)
    clock = Clock()
    session = CreditSession(store, default_rate_card(), PHONE_POLICY, RECORDED, "s1", clock)
    await session.start()
    for second in range(1, 11):
        clock.now += 1_000
        await session.report({"call_seconds": second * 1_000})
    assert (await store.balance(RECORDED)).billed == 0  # a renewal had not been due yet
    assert session.record_due_in_ms() == PHONE_POLICY.validity_ms // 2 - 10_000
