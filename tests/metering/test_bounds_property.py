"""The credit store near its integer bounds, property-based.

Random sequences of top-ups (through the ledger, as the API makes them), reservations,
renewals, settlements, one-shot charges and sink drains, with amounts at and around the
maxima of `metering.bounds`. After every step, read atomically: no script ever failed
with an overflow (the only refusals are a top-up past the maximum balance and a charge
the balance cannot cover), every amount is exact (topped up and billed equal the sums of
what the calls answered), topped_up = available + reserved + billed, the balance is
within its maximum, and each session was granted and billed at most the maximum charge.
At the end the ledger and Redis agree.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.cli_metering import drain
from metering.bounds import (
    MAX_BALANCE_MICRO,
    MAX_CHARGE_MICRO,
    MAX_OVERDRAFT_MICRO,
    MAX_TOPUP_CREDITS,
    MICRO,
    BalanceLimit,
)
from metering.credit_store import CreditStore
from metering.keys import tenant_keys
from metering.reconcile import reconcile_tenant
from metering.sink import Sink
from metering.topups import topup

SESSIONS = 3


def _near(top: int) -> st.SearchStrategy[int]:
    """Small amounts, amounts at the top, and just around it."""
    return st.one_of(st.integers(1, 1000), st.integers(max(top - 1000, 1), top),
                     st.sampled_from([top, top // 2, top // 2 + 1, top - 1]))


@dataclass(frozen=True)
class TopUp:
    credits: int


@dataclass(frozen=True)
class Reserve:
    session: int
    requested: int
    overdraft: int


@dataclass(frozen=True)
class Update:
    session: int
    cost: int  # added to the session's cumulative cost
    target: int


@dataclass(frozen=True)
class Terminate:
    session: int
    cost: int


@dataclass(frozen=True)
class Charge:
    micro: int


@dataclass(frozen=True)
class Drain:
    pass


Step = TopUp | Reserve | Update | Terminate | Charge | Drain

steps = st.lists(st.one_of(
    st.builds(TopUp, _near(MAX_TOPUP_CREDITS)),
    st.builds(Reserve, st.integers(0, SESSIONS - 1), _near(MAX_CHARGE_MICRO),
              st.sampled_from([0, 1, MAX_OVERDRAFT_MICRO])),
    st.builds(Update, st.integers(0, SESSIONS - 1),
              st.one_of(_near(MAX_CHARGE_MICRO), st.just(MAX_CHARGE_MICRO + 1)),
              _near(MAX_CHARGE_MICRO)),
    st.builds(Terminate, st.integers(0, SESSIONS - 1), _near(2 * MAX_CHARGE_MICRO)),
    st.builds(Charge, _near(MAX_CHARGE_MICRO)),
    st.just(Drain()),
), min_size=1, max_size=20)


@dataclass
class Model:
    topped_up: int = 0
    charged: int = 0  # one-shot charges billed
    session_billed: dict[str, int] = field(default_factory=dict)
    session_cost: dict[str, int] = field(default_factory=dict)
    overdraft: dict[str, int] = field(default_factory=dict)
    open: set[str] = field(default_factory=set)
    closed: set[str] = field(default_factory=set)


@dataclass
class World:
    pool: asyncpg.Pool
    store: CreditStore
    tenant: str
    names: list[str]
    model: Model = field(default_factory=Model)

    def next_id(self) -> str:
        return f"n-{uuid.uuid4().hex}"  # event ids are unique across the whole database


async def _check(world: World) -> None:
    store, model = world.store, world.model
    keys = tenant_keys(store.prefix, world.tenant)
    async with store.redis.pipeline(transaction=True) as pipe:  # MULTI: one atomic read
        pipe.hmget(keys.account, "topped_up", "available", "reserved", "billed")
        for sid in world.names:
            pipe.hmget(keys.session(sid), "held", "state", "granted_total", "billed")
        replies = await pipe.execute()
    topped_up, available, reserved, billed = (int(v or 0) for v in replies[0])
    assert topped_up == model.topped_up
    assert billed == model.charged + sum(model.session_billed.values())
    assert topped_up == available + reserved + billed
    assert available + reserved <= MAX_BALANCE_MICRO
    held_by_open = 0
    for sid, (held, state, granted, session_billed) in zip(world.names, replies[1:],
                                                           strict=True):
        if state is None:
            continue
        if state == b"open":
            held_by_open += int(held)
        assert int(granted) <= MAX_CHARGE_MICRO
        assert int(session_billed) <= min(int(granted) + world.model.overdraft[sid],
                                          MAX_CHARGE_MICRO)
        assert int(session_billed) == model.session_billed[sid]
    assert reserved == held_by_open


async def _run(world: World, step: Step) -> None:
    store, model, tenant = world.store, world.model, world.tenant
    if isinstance(step, TopUp):
        try:
            await topup(world.pool, store, tenant_id=uuid.UUID(tenant),
                        idempotency_key=world.next_id(), credits=step.credits)
            model.topped_up += step.credits * MICRO
        except BalanceLimit:
            balance = await store.balance(tenant)
            assert balance.available + balance.reserved + step.credits * MICRO \
                > MAX_BALANCE_MICRO or await _ledger_lags(world)
    elif isinstance(step, Charge):
        result = await store.charge(tenant, world.next_id(), channel="sms", micro=step.micro,
                                    usage={"sms_sent_segments": 1}, now_ms=1)
        assert result.status in ("charged", "insufficient")
        model.charged += result.micro if result.status == "charged" else 0
    elif isinstance(step, Drain):
        await drain(Sink(store.redis, world.pool, store.prefix))
    else:
        await _session_step(world, step)


async def _ledger_lags(world: World) -> bool:
    """True while debits the sink has not written make the ledger's balance the higher."""
    keys = tenant_keys(world.store.prefix, world.tenant)
    return bool(await world.store.redis.xlen(keys.outbox))


async def _session_step(world: World, step: Reserve | Update | Terminate) -> None:
    store, model, tenant = world.store, world.model, world.tenant
    sid = world.names[step.session]
    if isinstance(step, Reserve):
        if sid in model.open or sid in model.closed:
            return
        grant = await store.reserve(tenant, sid, channel="phone", requested=step.requested,
                                    min_grant=1, validity_ms=60_000,
                                    overdraft_limit=step.overdraft, now_ms=1)
        assert grant.status in ("granted", "insufficient")
        if grant.status == "granted":
            model.open.add(sid)
            model.session_billed[sid], model.session_cost[sid] = 0, 0
            model.overdraft[sid] = step.overdraft
        return
    if sid not in model.open:
        return
    model.session_cost[sid] += step.cost
    if isinstance(step, Update):
        grant = await store.update(tenant, sid, charged_total=model.session_cost[sid],
                                   usage={"call_seconds": 1}, target_held=step.target,
                                   min_grant=1, validity_ms=60_000, now_ms=2)
        assert grant.status in ("granted", "final", "exhausted")
        model.session_billed[sid] = grant.billed
    else:
        settled = await store.terminate(tenant, sid, charged_total=model.session_cost[sid],
                                        usage={"call_seconds": 2}, now_ms=3)
        assert settled.status == "settled"
        model.session_billed[sid] = settled.billed
        assert settled.billed + settled.written_off == min(model.session_cost[sid],
                                                           MAX_CHARGE_MICRO)
        model.open.discard(sid)
        model.closed.add(sid)


async def _scenario(redis_url: str, database_url: str, plan: list[Step]) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    assert pool is not None
    prefix = f"vgwtest:{uuid.uuid4().hex[:12]}:"
    try:
        tenant = uuid.uuid4()
        await pool.execute("INSERT INTO tenants (id, name, api_key_hash) VALUES ($1, 'T', $2)",
                           tenant, tenant.bytes)
        world = World(pool, CreditStore(redis, prefix), str(tenant),
                      [f"s{n}-{uuid.uuid4().hex[:8]}" for n in range(SESSIONS)])
        for step in plan:
            await _run(world, step)
            await _check(world)
        for n in range(SESSIONS):
            await _session_step(world, Terminate(n, 0))
        await _check(world)
        await drain(Sink(redis, pool, prefix))
        assert await reconcile_tenant(pool, world.store, tenant) == []
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await pool.close()
        await redis.aclose()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=steps)
def test_the_credit_store_stays_exact_and_conserved_at_its_bounds(
    redis_url: str, database_url_sync: str, plan: list[Step]
) -> None:
    asyncio.run(_scenario(redis_url, database_url_sync, plan))
