"""The documented maxima, enforced by the credit store and by the Lua scripts themselves.

Scripts are also called here with raw arguments that bypass the Python checks: each must
refuse before its first write (a status or an OUT_OF_BOUNDS error reply), so a refusal
leaves the account exactly as it was.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from metering.bounds import (
    BIGINT_MAX,
    LUA_EXACT,
    MAX_BALANCE_MICRO,
    MAX_CHARGE_MICRO,
    MAX_LIFETIME_MICRO,
    MAX_OVERDRAFT_MICRO,
    MAX_PRICE_CREDITS,
    MAX_TOPUP_CREDITS,
    MAX_UNITS,
    MICRO,
    BalanceLimit,
    OutOfBounds,
)
from metering.credit_store import CreditStore, _text
from metering.keys import tenant_keys
from metering.ratecard import load_rate_card
from metering.rating import max_units_for_credits, rate_usage
from metering.reconcile import reconcile
from tests.metering.ledger import insert_tenant

T = "tenant-b"


@pytest.fixture
def store(redis_client: aioredis.Redis, key_prefix: str) -> CreditStore:
    return CreditStore(redis_client, key_prefix)


async def _account(store: CreditStore, tenant: str = T) -> dict[str, int]:
    raw = await store.redis.hgetall(tenant_keys(store.prefix, tenant).account)
    return {_text(key): int(value) for key, value in raw.items()}


def test_the_bounds_keep_every_script_sum_exact() -> None:
    largest_sum = MAX_CHARGE_MICRO + MAX_OVERDRAFT_MICRO + 2 * MAX_BALANCE_MICRO
    assert largest_sum < LUA_EXACT // 2
    assert float(largest_sum) == largest_sum  # a double holds it exactly
    assert MAX_TOPUP_CREDITS * MICRO <= MAX_BALANCE_MICRO
    assert 2 * MAX_LIFETIME_MICRO < BIGINT_MAX
    assert 3 * MAX_UNITS * int(MAX_PRICE_CREDITS) * MICRO < 10**28


async def test_topups_fill_the_balance_exactly_and_not_one_micro_more(
    store: CreditStore,
) -> None:
    for n in range(9):  # 9 x 10^14 + 10^14 - 1 + 1: exactly the maximum
        assert await store.apply_topup(T, f"t{n}", MAX_BALANCE_MICRO // 10)
    assert await store.apply_topup(T, "t9", MAX_BALANCE_MICRO // 10 - 1)
    assert await store.apply_topup(T, "t10", 1)
    before = await _account(store)
    assert before["available"] == before["topped_up"] == MAX_BALANCE_MICRO
    with pytest.raises(BalanceLimit):
        await store.apply_topup(T, "t11", 1)
    assert await _account(store) == before  # nothing written, not even the applied mark
    assert not await store.redis.sismember(tenant_keys(store.prefix, T).topups, "t11")
    # Spending makes room again; the refused id can then be applied.
    assert (await store.charge(T, "e1", channel="sms", micro=MICRO, usage={},
                               now_ms=1)).status == "charged"
    assert await store.apply_topup(T, "t11", MICRO)
    assert (await store.balance(T)).available == MAX_BALANCE_MICRO


async def test_a_held_reservation_counts_against_the_bound(store: CreditStore) -> None:
    await store.apply_topup(T, "t1", MAX_BALANCE_MICRO)
    grant = await store.reserve(T, "s1", channel="phone", requested=MAX_CHARGE_MICRO,
                                min_grant=1, validity_ms=1_000, overdraft_limit=0, now_ms=1)
    assert grant.held == MAX_CHARGE_MICRO
    with pytest.raises(BalanceLimit):
        await store.apply_topup(T, "t2", 1)


async def test_lua_topup_refuses_a_raw_amount_beyond_the_bound(store: CreditStore) -> None:
    keys = tenant_keys(store.prefix, T)
    for micro in (MAX_BALANCE_MICRO + 1, 2**63, 10**30, -5):
        status = await store._run("topup", [keys.account, keys.topups], ["raw", str(micro)])
        assert status == b"out_of_bounds", micro
    assert await _account(store) == {}
    assert await store.redis.scard(keys.topups) == 0
    with pytest.raises(OutOfBounds):
        await store.apply_topup(T, "py", MAX_BALANCE_MICRO + 1)


async def test_lifetime_totals_are_bounded(store: CreditStore) -> None:
    keys = tenant_keys(store.prefix, T)
    # An account at the end of its lifetime total (written as the ledger would rebuild it).
    await store.redis.hset(keys.account, mapping={
        "topped_up": MAX_LIFETIME_MICRO, "billed": MAX_LIFETIME_MICRO - MICRO,
        "available": MICRO, "reserved": 0})
    with pytest.raises(OutOfBounds):
        await store.apply_topup(T, "late", MICRO)
    assert (await store.charge(T, "c1", channel="sms", micro=MICRO // 2, usage={},
                               now_ms=1)).status == "charged"
    with pytest.raises(OutOfBounds):
        await store.charge(T, "c2", channel="sms", micro=MICRO, usage={}, now_ms=1)
    account = await _account(store)
    assert (account["topped_up"], account["billed"]) == (MAX_LIFETIME_MICRO,
                                                          MAX_LIFETIME_MICRO - MICRO // 2)


async def test_a_charge_beyond_the_maximum_is_refused_before_writing(store: CreditStore) -> None:
    await store.apply_topup(T, "t1", MAX_BALANCE_MICRO)
    with pytest.raises(OutOfBounds):
        await store.charge(T, "big", channel="sms", micro=MAX_CHARGE_MICRO + 1, usage={},
                           now_ms=1)
    keys = tenant_keys(store.prefix, T)
    raw = await store._run("charge", [keys.account, keys.event("big"), keys.outbox],
                           [T, "big", "sms", str(10**20), "{}", "1", "60"])
    assert raw[0] == b"out_of_bounds"
    assert not await store.redis.exists(keys.event("big"), keys.outbox)
    assert (await store.balance(T)).available == MAX_BALANCE_MICRO
    assert (await store.charge(T, "max", channel="sms", micro=MAX_CHARGE_MICRO, usage={},
                               now_ms=1)).status == "charged"
    assert (await store.balance(T)).billed == MAX_CHARGE_MICRO


async def test_a_session_is_granted_and_billed_at_most_the_maximum_charge(
    store: CreditStore,
) -> None:
    half = MAX_CHARGE_MICRO // 2
    await store.apply_topup(T, "t1", MAX_BALANCE_MICRO)
    grant = await store.reserve(T, "s1", channel="phone", requested=half, min_grant=1,
                                validity_ms=60_000, overdraft_limit=MAX_OVERDRAFT_MICRO,
                                now_ms=1)
    assert (grant.status, grant.held) == ("granted", half)
    used = await store.update(T, "s1", charged_total=half, usage={"x": 1}, target_held=half,
                              min_grant=1, validity_ms=60_000, now_ms=2)
    assert (used.status, used.held, used.billed) == ("granted", half, half)
    await store.apply_topup(T, "t2", half)  # room again: half the balance was billed
    renewed = await store.update(T, "s1", charged_total=MAX_CHARGE_MICRO, usage={"x": 2},
                                 target_held=half, min_grant=1, validity_ms=60_000, now_ms=3)
    # Half the balance is still available, but the session was granted the maximum.
    assert (renewed.status, renewed.held, renewed.final) == ("exhausted", 0, True)
    assert (await store.balance(T)).available == half
    settled = await store.terminate(T, "s1", charged_total=5 * MAX_CHARGE_MICRO,
                                    usage={"x": 3}, now_ms=4)
    assert (settled.billed, settled.written_off) == (MAX_CHARGE_MICRO, 0)
    balance = await store.balance(T)
    assert balance.billed == MAX_CHARGE_MICRO
    assert balance.available == half
    assert balance.topped_up == balance.available + balance.reserved + balance.billed


async def test_lua_debit_refuses_a_raw_cost_beyond_the_maximum(store: CreditStore) -> None:
    await store.apply_topup(T, "t1", 100 * MICRO)
    await store.reserve(T, "s1", channel="phone", requested=10 * MICRO, min_grant=1,
                        validity_ms=60_000, overdraft_limit=0, now_ms=1)
    keys = tenant_keys(store.prefix, T)
    session_before = await store.session(T, "s1")
    account_before = await _account(store)
    for script, keys_, args in (
        ("update", [keys.account, keys.session("s1"), keys.live, keys.outbox],
         ["s1", str(10**17), '{"x": 1}', "1", "1", "60000", "2"]),
        ("terminate", [keys.account, keys.session("s1"), keys.live, keys.outbox,
                       keys.month("1970-01")],
         ["s1", str(2**64), '{"x": 1}', "2", "settled", "", "stop"]),
    ):
        with pytest.raises(OutOfBounds, match="charged_total"):
            await store._run(script, keys_, args)
        assert await store.session(T, "s1") == session_before  # usage not even written
        assert await _account(store) == account_before


async def test_out_of_range_session_arguments_are_refused(store: CreditStore) -> None:
    calls: list[dict[str, Any]] = [
        {"requested": MAX_CHARGE_MICRO + 1, "min_grant": 1, "overdraft_limit": 0},
        {"requested": 1, "min_grant": MAX_CHARGE_MICRO + 1, "overdraft_limit": 0},
        {"requested": 1, "min_grant": 1, "overdraft_limit": MAX_OVERDRAFT_MICRO + 1},
    ]
    for arguments in calls:
        with pytest.raises(OutOfBounds):
            await store.reserve(T, "s1", channel="phone", validity_ms=1, now_ms=1, **arguments)
    with pytest.raises(OutOfBounds, match="usage.call_seconds"):
        await store.terminate(T, "s1", charged_total=1, usage={"call_seconds": MAX_UNITS + 1},
                              now_ms=1)


def test_the_largest_card_rates_the_largest_usage_without_error() -> None:
    biggest = {"price": str(MAX_PRICE_CREDITS), "block": 1, "increment": MAX_UNITS,
               "minimum": MAX_UNITS, "free_allowance": 0}
    smallest = {"price": "0.000000000001", "block": MAX_UNITS, "increment": 1,
                "tiers": [{"up_to": MAX_UNITS, "price": "0.000000000001"},
                          {"price": str(MAX_PRICE_CREDITS)}]}
    card = load_rate_card({"inherit": "default",
                           "meters": {"call_seconds": biggest, "chat_input_tokens": smallest}})
    rating = rate_usage(card, {"call_seconds": MAX_UNITS, "chat_input_tokens": MAX_UNITS},
                        month_to_date={"chat_input_tokens": MAX_UNITS})
    assert rating.per_meter["call_seconds"] == MAX_UNITS * int(MAX_PRICE_CREDITS) * MICRO
    # All of it in the second tier: one block of MAX_UNITS at the maximum price.
    assert rating.per_meter["chat_input_tokens"] == int(MAX_PRICE_CREDITS) * MICRO
    assert max_units_for_credits(card, "call_seconds", MAX_CHARGE_MICRO, MAX_UNITS) == 0
    assert rating.total > MAX_CHARGE_MICRO  # capped by the credit store, not by rating


async def _overfull_ledger(pool: asyncpg.Pool) -> str:
    """A tenant whose ledger holds 9,300 maximum top-ups (what the old overflow left)."""
    tenant = await insert_tenant(pool)
    await pool.execute(
        """INSERT INTO topups (id, tenant_id, idempotency_key, request_hash, credits,
                               micro_credits)
           SELECT gen_random_uuid(), $1::uuid, 'k' || n, '', $2, $3
           FROM generate_series(1, 9300) AS n""",
        tenant, MAX_TOPUP_CREDITS, MAX_TOPUP_CREDITS * MICRO)
    return tenant


async def test_reconcile_repair_refuses_what_an_account_cannot_hold(
    store: CreditStore, pg_pool: asyncpg.Pool,
) -> None:
    tenant = await _overfull_ledger(pg_pool)
    differences = await reconcile(pg_pool, store, repair=True)
    assert {d.field for d in differences} == {"topped_up", "available"}
    assert all(d.refused for d in differences)
    assert "NOT repaired" in str(differences[0])
    assert await _account(store, tenant) == {}  # nothing written
    keys = tenant_keys(store.prefix, tenant)
    raw = await store._run("rebuild", [keys.account, keys.topups],
                           [str(10**19), "0", str(10**19), "x"])
    assert raw[0] == b"out_of_bounds"
    assert await _account(store, tenant) == {}
    assert await store.redis.scard(keys.topups) == 0


async def test_reconcile_command_exits_non_zero_when_it_refuses(
    redis_url: str, database_url: str, key_prefix: str, pg_pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
) -> None:
    tenant = await _overfull_ledger(pg_pool)
    env = {**os.environ, "VOICEGW_REDIS_URL": redis_url, "VOICEGW_DATABASE_URL": database_url,
           "VOICEGW_REDIS_PREFIX": key_prefix}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "reconcile", "--repair", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1, output.decode()
    assert "NOT repaired" in output.decode()
    account = tenant_keys(key_prefix, tenant).account
    assert await redis_client.exists(account) == 0
