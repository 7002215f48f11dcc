"""Balance alerts: raised by the credit scripts once per crossing, turned by the sink into
signed webhooks and mails (caught by a real aiosmtpd server); and the other causes'
webhooks written in their own transactions (successes, handoffs, top-ups, sessions)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
import redis.asyncio as aioredis

from gateway.cli_metering import drain
from gateway.dev_mail import MailCatcher
from metering.credit_store import CreditStore
from metering.notify.alerts import get_alerts, put_alerts, sync_thresholds
from metering.notify.delivery import DeliveryWorker
from metering.notify.errors import InvalidField
from metering.notify.mail import Mailer, MailWorker, SmtpServer
from metering.outcomes import Origin, Ticket, record_handoff, record_outcome
from metering.sink import Sink
from metering.topups import topup
from tests.metering.notify_env import Receiver, tenant_with_endpoint

C = 1_000_000
BALANCE_EVENTS = ["balance.low", "balance.depleted", "balance.restored"]


async def _deliver(pool: asyncpg.Pool) -> None:
    worker = DeliveryWorker(pool, allow_private=True)
    try:
        while await worker.deliver_due():
            pass
    finally:
        await worker.close()


async def _charge(store: CreditStore, tenant: uuid.UUID, credits: int) -> None:
    charged = await store.charge(str(tenant), f"c-{uuid.uuid4().hex}", channel="sms",
                                 micro=credits * C, usage={"sms_sent_segments": 1}, now_ms=1)
    assert charged.status == "charged"


async def test_low_balance_fires_once_per_crossing_and_depleted_then_restored(
        pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str,
        receiver: Receiver, mail_catcher: tuple[MailCatcher, str]) -> None:
    store = CreditStore(redis_client, key_prefix)
    tenant, created = await tenant_with_endpoint(pg_pool, receiver.url, BALANCE_EVENTS)
    await put_alerts(pg_pool, store, tenant, low_balance_credits=100,
                     emails=["ops@example.com", "cfo@example.com"])
    await topup(pg_pool, store, tenant_id=tenant, idempotency_key="k1", credits=150)
    await _charge(store, tenant, 60)   # 150 -> 90: below 100, low
    await _charge(store, tenant, 10)   # 80: still below, nothing
    await topup(pg_pool, store, tenant_id=tenant, idempotency_key="k2", credits=50)  # 130
    await _charge(store, tenant, 40)   # 90: crossed again, low
    await _charge(store, tenant, 90)   # 0: paused, depleted
    await topup(pg_pool, store, tenant_id=tenant, idempotency_key="k3", credits=10)  # restored
    await drain(Sink(redis_client, pg_pool, key_prefix))
    await drain(Sink(redis_client, pg_pool, key_prefix))  # a second pass adds nothing
    await _deliver(pg_pool)
    expected = ["balance.low", "balance.low", "balance.depleted", "balance.restored"]
    in_order = await pg_pool.fetch("SELECT event_type FROM webhook_messages ORDER BY id")
    assert [row["event_type"] for row in in_order] == expected  # as they happened
    events = receiver.verified(created.secret)  # sent concurrently: any order
    assert sorted(str(e["type"]) for e in events) == sorted(expected)
    low = next(e["data"] for e in events if e["type"] == "balance.low")
    assert low["balance_credits"] == "90.000000"  # type: ignore[index]
    assert low["low_balance_credits"] == "100.000000"  # type: ignore[index]
    depleted = next(e["data"] for e in events if e["type"] == "balance.depleted")
    assert depleted["paused"] is True  # type: ignore[index]

    catcher, smtp_url = mail_catcher
    mailer = MailWorker(pg_pool, Mailer(SmtpServer.from_url(smtp_url), "vgw <a@b.example>"))
    assert await mailer.send_due() == 8
    mails = await asyncio.wait_for(catcher.wait_for(8), 10)
    assert sorted(m.recipients[0] for m in mails) == ["cfo@example.com"] * 4 + [
        "ops@example.com"] * 4
    subjects = sorted(m.subject for m in mails if m.recipients == ["ops@example.com"])
    assert subjects == sorted(["Your credit balance is low"] * 2 + [
        "Your credits ran out: your agents are paused", "Your agents are running again"])
    assert any("90.000000 credits are left" in m.body for m in mails)
    assert await mailer.send_due() == 0  # sent once


async def test_concurrent_debits_cross_once(pg_pool: asyncpg.Pool,
                                            redis_client: aioredis.Redis, redis_url: str,
                                            key_prefix: str, receiver: Receiver) -> None:
    stores = [CreditStore(aioredis.Redis.from_url(redis_url), key_prefix)
              for _ in range(3)]  # three gateways, each with its own connection
    tenant, created = await tenant_with_endpoint(pg_pool, receiver.url, ["balance.low"])
    await put_alerts(pg_pool, stores[0], tenant, low_balance_credits=100, emails=[])
    await topup(pg_pool, stores[0], tenant_id=tenant, idempotency_key="k", credits=300)
    await asyncio.gather(*(_charge(stores[n % 3], tenant, 10) for n in range(25)))
    for store in stores:
        await store.redis.aclose()
    await drain(Sink(redis_client, pg_pool, key_prefix))
    await _deliver(pg_pool)
    assert [e["type"] for e in receiver.verified(created.secret)] == ["balance.low"]


async def test_setting_a_threshold_raises_nothing_until_a_crossing(
        pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str,
        receiver: Receiver) -> None:
    store = CreditStore(redis_client, key_prefix)
    tenant, created = await tenant_with_endpoint(pg_pool, receiver.url, BALANCE_EVENTS)
    await topup(pg_pool, store, tenant_id=tenant, idempotency_key="k", credits=50)
    await put_alerts(pg_pool, store, tenant, low_balance_credits=100, emails=[])  # already low
    await _charge(store, tenant, 1)
    # Redis lost the threshold (a failover): the sync puts it back, the state as it stands.
    await redis_client.hdel(f"{key_prefix}{{t:{tenant}}}:acct", "alert_low", "alert_is_low")
    assert await sync_thresholds(pg_pool, store) == 1
    assert await sync_thresholds(pg_pool, store) == 0
    await _charge(store, tenant, 1)
    await drain(Sink(redis_client, pg_pool, key_prefix))
    assert await pg_pool.fetchval("SELECT count(*) FROM webhook_messages") == 0
    assert (await get_alerts(pg_pool, tenant)).low_balance_credits == 100


@pytest.mark.parametrize(("credits", "emails", "field"), [
    (0, [], "low_balance_credits"), (-5, [], "low_balance_credits"),
    (True, [], "low_balance_credits"), (10**12, [], "low_balance_credits"),
    (10, ["not-an-address"], "emails[0]"), (10, ["a@b.example", "x\r\n@y.z"], "emails[1]"),
    (10, ["a@b.example"] * 11, "emails"),
])
async def test_bad_alert_settings_are_refused_naming_the_field(
        pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str,
        credits: int, emails: list[str], field: str) -> None:
    store = CreditStore(redis_client, key_prefix)
    with pytest.raises(InvalidField) as refused:
        await put_alerts(pg_pool, store, uuid.uuid4(), low_balance_credits=credits,
                         emails=emails)
    assert refused.value.field == field


async def test_successes_handoffs_topups_and_sessions_are_sent(
        pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str,
        receiver: Receiver) -> None:
    store = CreditStore(redis_client, key_prefix)
    events = ["success.created", "handoff.requested", "topup.applied", "session.completed"]
    tenant, created = await tenant_with_endpoint(pg_pool, receiver.url, events)
    silent = uuid.UUID(str((await tenant_with_endpoint(pg_pool, receiver.url,
                                                       ["balance.low"]))[0]))
    await topup(pg_pool, store, tenant_id=tenant, idempotency_key="k", credits=100)
    await topup(pg_pool, store, tenant_id=tenant, idempotency_key="k", credits=100)  # replay
    await topup(pg_pool, store, tenant_id=silent, idempotency_key="k", credits=100)
    for who in (tenant, silent):
        origin = Origin(who, "call_CA1", "phone", "+15550001111")
        await store.reserve(str(who), "call_CA1", channel="phone", requested=10 * C,
                            min_grant=1, validity_ms=60_000, overdraft_limit=C, now_ms=1_000)
        await record_outcome(pg_pool, origin, "tool-1", Ticket("broken heater"))
        await record_outcome(pg_pool, origin, "tool-1", Ticket("broken heater"))  # replayed
        await record_handoff(pg_pool, origin, "tool-2", "asked for a human", None)
        await store.terminate(str(who), "call_CA1", charged_total=3 * C,
                              usage={"call_seconds": 61_000}, now_ms=62_000,
                              details={"disposition": "caller_hung_up", "call_sid": "CA1"})
    await drain(Sink(redis_client, pg_pool, key_prefix))
    await _deliver(pg_pool)
    got = {str(e["type"]): e["data"] for e in receiver.verified(created.secret)}
    assert sorted(got) == sorted(events)  # one each; the silent tenant subscribed to none
    session = got["session.completed"]
    assert session["disposition"] == "caller_hung_up"  # type: ignore[index]
    assert session["duration_ms"] == 61_000 and session["credits"] == "3.000000"  # type: ignore[index]
    assert [o["kind"] for o in session["outcomes"]] == ["ticket_created"]  # type: ignore[index]
    assert got["success.created"]["source"] == "agent"  # type: ignore[index]
    assert got["topup.applied"]["credits"] == "100.000000"  # type: ignore[index]
    assert got["handoff.requested"]["reason"] == "asked for a human"  # type: ignore[index]
