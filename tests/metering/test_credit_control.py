"""Credit control against a real Redis: INITIAL, UPDATE, TERMINATE, one-shot charges."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from metering.control import PHONE_POLICY, CreditSession
from metering.credit_store import Balance, CreditStore, Grant
from metering.keys import tenant_keys
from metering.ratecard import default_rate_card

T = "tenant-a"
C = 1_000_000  # one credit in micro-credits


@pytest.fixture
async def store(redis_client: aioredis.Redis, key_prefix: str) -> CreditStore:
    credit = CreditStore(redis_client, key_prefix, min_billable_micro=40_000)
    await credit.apply_topup(T, "topup-1", 100 * C)
    return credit


def conserved(balance: Balance) -> bool:
    return balance.topped_up == balance.available + balance.reserved + balance.billed


async def outbox(store: CreditStore) -> list[dict[str, str]]:
    entries: Any = await store.redis.xrange(
        tenant_keys(store.prefix, T).outbox)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


async def open_session(store: CreditStore, sid: str = "s1", requested: int = 30 * C,
                       now: int = 1_000) -> Grant:
    return await store.reserve(T, sid, channel="phone", requested=requested, min_grant=C,
                               validity_ms=60_000, overdraft_limit=5 * C, now_ms=now)


async def test_topup_is_applied_once(store: CreditStore) -> None:
    assert await store.apply_topup(T, "topup-1", 100 * C) is False
    assert await store.apply_topup(T, "topup-2", 5 * C) is True
    balance = await store.balance(T)
    assert (balance.topped_up, balance.available) == (105 * C, 105 * C)


async def test_reserve_update_terminate(store: CreditStore) -> None:
    grant = await store.reserve(T, "s1", channel="phone", requested=30 * C, min_grant=C,
                                validity_ms=60_000, overdraft_limit=5 * C, now_ms=1_000)
    assert (grant.status, grant.held, grant.final, grant.expires_ms) == ("granted", 30 * C,
                                                                          False, 61_000)
    assert (await store.balance(T)).reserved == 30 * C
    update = await store.update(T, "s1", charged_total=12 * C, usage={"call_seconds": 7_000},
                                target_held=30 * C, min_grant=C, validity_ms=60_000,
                                now_ms=20_000)
    assert (update.status, update.held, update.billed) == ("granted", 30 * C, 12 * C)
    balance = await store.balance(T)
    assert (balance.available, balance.reserved, balance.billed) == (58 * C, 30 * C, 12 * C)
    settled = await store.terminate(T, "s1", charged_total=15 * C,
                                    usage={"call_seconds": 9_000}, now_ms=25_000,
                                    details={"disposition": "completed"})
    assert (settled.status, settled.billed, settled.released) == ("settled", 15 * C, 27 * C)
    balance = await store.balance(T)
    assert (balance.available, balance.reserved, balance.billed) == (85 * C, 0, 15 * C)
    assert conserved(balance)
    events = await outbox(store)
    assert [e["id"] for e in events] == ["s1:1", "s1:2", "s1:end"]
    assert [e.get("micro") for e in events] == [str(12 * C), str(3 * C), str(15 * C)]
    record = events[-1]
    assert record["type"] == "session"
    assert orjson.loads(record["usage"]) == {"call_seconds": 9_000}
    assert orjson.loads(record["details"]) == {"disposition": "completed"}
    assert (record["started_ms"], record["ended_ms"]) == ("1000", "25000")


async def test_replays_change_nothing(store: CreditStore) -> None:
    await open_session(store)
    again = await open_session(store)
    assert again.status == "replay"
    assert (await store.balance(T)).reserved == 30 * C
    await store.terminate(T, "s1", charged_total=C, usage={}, now_ms=2_000)
    before = await store.balance(T)
    replay = await store.terminate(T, "s1", charged_total=9 * C, usage={}, now_ms=3_000)
    assert (replay.status, replay.billed) == ("replay", C)
    assert await store.balance(T) == before
    assert len(await outbox(store)) == 2
    unknown = await store.update(T, "s1", charged_total=50 * C, usage={}, target_held=C,
                                 min_grant=C, validity_ms=1, now_ms=4_000)
    assert unknown.status == "unknown"
    assert await store.balance(T) == before


async def test_a_retried_initial_on_an_open_session_is_a_replay_not_a_start(
        store: CreditStore) -> None:
    first = await open_session(store)
    await store.update(T, "s1", charged_total=4 * C, usage={"call_seconds": 3_000},
                       target_held=30 * C, min_grant=C, validity_ms=60_000, now_ms=2_000)
    before = (await store.balance(T), await store.session(T, "s1"), await outbox(store))
    again = await open_session(store, now=5_000)
    # The existing grant, as it stands now, and nothing to start on.
    assert (again.status, again.held, again.billed, again.expires_ms) == (
        "replay", 30 * C, 4 * C, 62_000)
    assert not again.ok and again.replayed and first.ok and not first.replayed
    assert (await store.balance(T), await store.session(T, "s1"), await outbox(store)) == before


async def test_a_closed_session_is_never_reopened(store: CreditStore) -> None:
    await open_session(store)
    await store.terminate(T, "s1", charged_total=3 * C, usage={"call_seconds": 2_000},
                          now_ms=2_000)
    before = (await store.balance(T), await store.session(T, "s1"), await outbox(store))
    for now in (3_000, 10_000_000):
        reopened = await open_session(store, requested=50 * C, now=now)
        assert (reopened.status, reopened.held, reopened.final, reopened.billed) == (
            "closed", 0, True, 3 * C)
        assert not reopened.ok and reopened.replayed
    assert (await store.balance(T), await store.session(T, "s1"), await outbox(store)) == before
    assert await store.live_sessions(T) == []


async def test_a_credit_session_refused_as_a_replay_leaves_the_other_alone(
        store: CreditStore) -> None:
    card = default_rate_card()
    live = CreditSession(store, card, PHONE_POLICY, T, "call_CAx", lambda: 1_000)
    assert (await live.start()).ok and live.open
    replayed = CreditSession(store, card, PHONE_POLICY, T, "call_CAx", lambda: 2_000)
    grant = await replayed.start()
    assert (grant.status, replayed.open) == ("replay", False)
    assert await replayed.report({"call_seconds": 60_000}) is True  # nothing to go on with
    await replayed.finish("settled", {}, {"call_seconds": 60_000})
    # The live session is still open, holding what it held, and billed nothing more.
    assert (await store.session(T, "call_CAx"))["state"] == "open"
    assert await store.live_sessions(T) == ["call_CAx"]
    settled = await live.finish("settled", {}, {"call_seconds": 1_000})
    assert settled.status == "settled"
    closed = CreditSession(store, card, PHONE_POLICY, T, "call_CAx", lambda: 3_000)
    assert (await closed.start()).status == "closed" and not closed.open
    assert (await store.balance(T)).billed == settled.billed


async def test_insufficient_balance_creates_nothing(store: CreditStore) -> None:
    await store.charge(T, "drain", channel="sms", micro=100 * C - C // 2, usage={}, now_ms=1)
    refused = await open_session(store)
    assert refused.status == "insufficient"
    assert await store.live_sessions(T) == []
    assert (await store.session(T, "s1")) == {}


async def test_final_grant_when_balance_cannot_cover_a_slice(store: CreditStore) -> None:
    grant = await open_session(store, requested=80 * C)
    assert (grant.held, grant.final) == (80 * C, False)
    second = await open_session(store, "s2", requested=30 * C)
    assert (second.status, second.held, second.final) == ("granted", 20 * C, True)
    assert (await store.balance(T)).available == 0
    third = await open_session(store, "s3")
    assert third.status == "insufficient"
    used_up = await store.update(T, "s2", charged_total=20 * C, usage={}, target_held=30 * C,
                                 min_grant=C, validity_ms=1_000, now_ms=5_000)
    assert (used_up.status, used_up.held) == ("exhausted", 0)


async def test_cost_is_monotonic_never_refunded(store: CreditStore) -> None:
    await open_session(store)
    await store.update(T, "s1", charged_total=10 * C, usage={}, target_held=30 * C,
                       min_grant=C, validity_ms=60_000, now_ms=2_000)
    lower = await store.update(T, "s1", charged_total=4 * C, usage={}, target_held=30 * C,
                               min_grant=C, validity_ms=60_000, now_ms=3_000)
    assert lower.billed == 10 * C


async def test_overdraft_is_capped_and_the_rest_written_off(store: CreditStore) -> None:
    await store.charge(T, "drain", channel="sms", micro=90 * C, usage={}, now_ms=1)
    grant = await open_session(store, requested=30 * C)
    assert (grant.held, grant.final) == (10 * C, True)
    settled = await store.terminate(T, "s1", charged_total=40 * C, usage={}, now_ms=9_000)
    # granted 10 + overdraft limit 5 = 15 billed at most; 25 written off.
    assert (settled.billed, settled.written_off) == (15 * C, 25 * C)
    balance = await store.balance(T)
    assert balance.available == -5 * C
    assert balance.written_off == 25 * C
    assert balance.paused
    assert conserved(balance)


async def test_sweeper_charges_only_what_was_reported(store: CreditStore) -> None:
    await open_session(store, now=1_000)
    await store.update(T, "s1", charged_total=7 * C, usage={"call_seconds": 4_000},
                       target_held=30 * C, min_grant=C, validity_ms=10_000, now_ms=2_000)
    assert await store.sweep(T, now_ms=11_999) == []
    assert await store.sweep_all(now_ms=12_001) == ["s1"]
    balance = await store.balance(T)
    assert (balance.available, balance.reserved, balance.billed) == (93 * C, 0, 7 * C)
    record = (await outbox(store))[-1]
    assert (record["status"], record["micro"]) == ("swept", str(7 * C))
    assert orjson.loads(record["usage"]) == {"call_seconds": 4_000}


async def test_one_shot_charges_are_idempotent(store: CreditStore) -> None:
    first = await store.charge(T, "SM123:sent", channel="sms", micro=2_500 * C // 100,
                               usage={"sms_sent_segments": 1}, now_ms=5)
    assert (first.status, first.micro) == ("charged", 25 * C)
    again = await store.charge(T, "SM123:sent", channel="sms", micro=25 * C, usage={}, now_ms=6)
    assert again.status == "replay"
    assert (await store.balance(T)).billed == 25 * C
    too_much = await store.charge(T, "big", channel="sms", micro=76 * C, usage={}, now_ms=7)
    assert too_much.status == "insufficient"
    await store.apply_topup(T, "topup-2", C)
    assert (await store.charge(T, "big", channel="sms", micro=76 * C, usage={},
                               now_ms=8)).status == "charged"


@pytest.mark.parametrize("bad", ["", "a{b}", "with space", "x" * 201])
async def test_ids_are_checked_before_redis(store: CreditStore, bad: str) -> None:
    with pytest.raises(ValueError):
        await store.reserve(T, bad, channel="phone", requested=1, min_grant=1,
                            validity_ms=1, overdraft_limit=0, now_ms=1)


async def test_negative_amounts_are_refused(store: CreditStore) -> None:
    with pytest.raises(ValueError):
        await store.charge(T, "e", channel="sms", micro=-1, usage={}, now_ms=1)
    with pytest.raises(ValueError):
        await store.apply_topup(T, "t", 0)


async def test_rebuild_from_ledger_keeps_live_reservations(store: CreditStore) -> None:
    await open_session(store)
    await store.redis.hset(tenant_keys(store.prefix, T).account, "available", 999)
    available = await store.rebuild(T, topped_up=100 * C, billed=0, topup_ids=["topup-1"])
    assert available == 70 * C
    assert conserved(await store.balance(T))


async def test_a_batch_runs_many_calls_in_one_round_trip(store: CreditStore) -> None:
    calls = [store.reserve_call(T, f"b{n}", channel="phone", requested=10 * C, min_grant=C,
                                validity_ms=60_000, overdraft_limit=0, now_ms=1)
             for n in range(12)]
    grants = await store.run_batch(calls)
    assert [g.status for g in grants] == ["granted"] * 10 + ["insufficient"] * 2
    updates = [store.update_call(T, f"b{n}", charged_total=C, usage={}, target_held=9 * C,
                                 min_grant=C, validity_ms=60_000, now_ms=2) for n in range(10)]
    ends = [store.terminate_call(T, f"b{n}", charged_total=2 * C, usage={}, now_ms=3)
            for n in range(10)]
    results = await store.run_batch(updates + ends)
    assert {r.status for r in results[:10]} == {"granted"}
    assert {r.billed for r in results[10:]} == {2 * C}
    balance = await store.balance(T)
    assert (balance.billed, balance.reserved, balance.available) == (20 * C, 0, 80 * C)
    await store.redis.script_flush()  # a restarted server has no scripts: loaded again
    assert (await store.run_batch(calls[:1]))[0].status == "closed"
