"""Tenant webhooks: signed (checked with the standardwebhooks package), sent from the
outbox only for committed transactions, retried with the same webhook-id, once each even
with workers racing, and refused for addresses inside the gateway's network."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import asyncpg
import pytest
from aiohttp import web

from metering.notify.deliveries import list_deliveries
from metering.notify.delivery import DeliveryWorker
from metering.notify.endpoints import (
    create_endpoint,
    delete_endpoint,
    list_endpoints,
    send_test,
)
from metering.notify.errors import InvalidField, NotFound
from metering.notify.outbox import emit
from tests.metering.notify_env import Clock, Receiver, closed_port, tenant_with_endpoint

ZERO = (0.0,) * 7  # the schedule's length, no waiting: tests move through retries at once


async def _emit(pool: asyncpg.Pool, tenant: uuid.UUID, cause: str,
                event_type: str = "success.created") -> None:
    async with pool.acquire() as conn, conn.transaction():
        await emit(conn, tenant, event_type, {"event_id": cause, "kind": "order_placed"}, cause)


async def test_a_delivery_verifies_with_standardwebhooks(pg_pool: asyncpg.Pool,
                                                         receiver: Receiver) -> None:
    tenant, created = await tenant_with_endpoint(pg_pool, receiver.url, ["success.created"])
    assert created.secret.startswith("whsec_")
    await _emit(pg_pool, tenant, "s1:call-1")
    await _emit(pg_pool, tenant, "s1:call-1")  # the same cause again: one message
    await _emit(pg_pool, tenant, "s1:t", "topup.applied")  # not subscribed
    worker = DeliveryWorker(pg_pool, allow_private=True)
    try:
        assert await worker.deliver_due() == 1
        assert await worker.deliver_due() == 0
    finally:
        await worker.close()
    [event] = receiver.verified(created.secret)
    assert event["type"] == "success.created"
    assert event["data"] == {"event_id": "s1:call-1", "kind": "order_placed"}
    assert str(event["timestamp"]).endswith("Z")
    headers = receiver.received[0].headers
    assert headers["webhook-id"].startswith("msg_")
    assert headers["webhook-signature"].startswith("v1,")
    page = await list_deliveries(pg_pool, tenant, created.endpoint.id)
    [attempt] = page.items
    assert (attempt.status, attempt.response_code, attempt.attempt) == ("succeeded", 204, 1)
    assert attempt.webhook_id == headers["webhook-id"] and page.next_cursor is None


async def test_failing_three_times_then_the_fourth_gets_it_with_the_same_id(
        pg_pool: asyncpg.Pool, receiver: Receiver) -> None:
    async def flaky(n: int) -> web.Response:
        return web.Response(status=500 if n <= 3 else 200)

    receiver.behaviour = flaky
    tenant, created = await tenant_with_endpoint(pg_pool, receiver.url, ["success.created"])
    await _emit(pg_pool, tenant, "s2:call-1")
    worker = DeliveryWorker(pg_pool, allow_private=True, schedule=ZERO, jitter=0)
    try:
        for _ in range(6):
            await worker.deliver_due()
    finally:
        await worker.close()
    assert len(receiver.received) == 4
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    assert len(receiver.verified(created.secret)) == 4
    attempts = (await list_deliveries(pg_pool, tenant, created.endpoint.id)).items
    assert [(a.attempt, a.status, a.response_code) for a in reversed(attempts)] == [
        (1, "failed", 500), (2, "failed", 500), (3, "failed", 500), (4, "succeeded", 200)]


async def test_retries_follow_the_schedule_as_the_clock_moves(pg_pool: asyncpg.Pool,
                                                              receiver: Receiver) -> None:
    async def down(n: int) -> web.Response:
        return web.Response(status=503)

    receiver.behaviour = down
    tenant, created = await tenant_with_endpoint(pg_pool, receiver.url, ["success.created"])
    await _emit(pg_pool, tenant, "s3:call-1")
    clock = Clock()
    worker = DeliveryWorker(pg_pool, allow_private=True, clock=clock)
    schedule = (5, 300, 1800, 7200, 18000, 36000, 36000)
    try:
        assert await worker.deliver_due() == 1  # at once
        for delay in schedule:
            clock.move(seconds=delay * 0.89)  # jitter is at most 10 %: not yet
            assert await worker.deliver_due() == 0
            clock.move(seconds=delay * 0.22)
            assert await worker.deliver_due() == 1
        clock.move(days=2)
        assert await worker.deliver_due() == 0  # given up after 1 + 7 attempts
    finally:
        await worker.close()
    assert len(receiver.received) == 8
    status = await pg_pool.fetchval("SELECT status FROM webhook_messages")
    assert status == "failed"


@pytest.mark.parametrize("failure", ["hang", "500", "redirect", "down"])
async def test_a_receiver_that_fails_is_logged_and_retried(
        pg_pool: asyncpg.Pool, receiver: Receiver, failure: str) -> None:
    async def behave(n: int) -> web.StreamResponse:
        if failure == "hang":
            await asyncio.sleep(3)
        if failure == "redirect":
            raise web.HTTPFound("/elsewhere")
        return web.Response(status=500)

    receiver.behaviour = behave
    url = f"http://127.0.0.1:{closed_port()}/hook" if failure == "down" else receiver.url
    tenant, created = await tenant_with_endpoint(pg_pool, url, ["success.created"])
    await _emit(pg_pool, tenant, "s4:call-1")
    worker = DeliveryWorker(pg_pool, allow_private=True, timeout_s=0.5)
    try:
        assert await worker.deliver_due() == 1
    finally:
        await worker.close()
    [attempt] = (await list_deliveries(pg_pool, tenant, created.endpoint.id)).items
    assert attempt.status == "failed"
    expected = {"hang": (None, "no answer within 0.5 s"), "500": (500, "HTTP 500"),
                "redirect": (302, "redirect (not followed)")}
    if failure in expected:
        assert (attempt.response_code, attempt.error) == expected[failure]
    else:
        assert attempt.response_code is None and "Connect" in (attempt.error or "")
    assert len(receiver.received) == (0 if failure == "down" else 1)  # no redirect followed
    row = await pg_pool.fetchrow("SELECT status, attempts, next_attempt_at, created_at "
                                 "FROM webhook_messages")
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert row["next_attempt_at"] > row["created_at"]


async def test_nothing_is_delivered_for_a_transaction_that_rolled_back(
        pg_pool: asyncpg.Pool, receiver: Receiver) -> None:
    tenant, _ = await tenant_with_endpoint(pg_pool, receiver.url, ["success.created"])
    with pytest.raises(RuntimeError):
        async with pg_pool.acquire() as conn, conn.transaction():
            await emit(conn, tenant, "success.created", {}, "s5:rolled-back")
            raise RuntimeError("the cause failed")
    worker = DeliveryWorker(pg_pool, allow_private=True)
    try:
        assert await worker.deliver_due() == 0
    finally:
        await worker.close()
    assert receiver.received == []
    assert await pg_pool.fetchval("SELECT count(*) FROM webhook_messages") == 0


async def test_two_workers_racing_deliver_each_attempt_once(pg_pool: asyncpg.Pool,
                                                            receiver: Receiver) -> None:
    async def slow(n: int) -> web.Response:
        await asyncio.sleep(0.05)
        return web.Response(status=200)

    receiver.behaviour = slow
    tenant, created = await tenant_with_endpoint(pg_pool, receiver.url, ["success.created"])
    for n in range(30):
        await _emit(pg_pool, tenant, f"s6:call-{n}")
    workers = [DeliveryWorker(pg_pool, allow_private=True, max_in_flight=3) for _ in range(2)]
    try:
        while sum(await asyncio.gather(*(w.deliver_due() for w in workers))):
            pass
    finally:
        for worker in workers:
            await worker.close()
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == 30 and len(set(ids)) == 30
    assert receiver.most_in_flight <= 3  # the per-endpoint cap holds across workers
    assert await pg_pool.fetchval("SELECT count(*) FROM webhook_attempts") == 30
    assert len(receiver.verified(created.secret)) == 30


async def test_an_endpoint_failing_for_three_days_is_disabled_and_the_tenant_mailed(
        pg_pool: asyncpg.Pool) -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook"
    tenant, created = await tenant_with_endpoint(pg_pool, url, ["success.created"])
    await pg_pool.execute("INSERT INTO alert_settings (tenant_id, emails) VALUES ($1, $2)",
                          tenant, ["ops@example.com"])
    await _emit(pg_pool, tenant, "s7:first")
    clock = Clock()
    worker = DeliveryWorker(pg_pool, allow_private=True, clock=clock, schedule=ZERO)
    try:
        assert await worker.deliver_due() == 1
        clock.move(days=2, hours=23)
        assert await worker.deliver_due() == 1
        assert (await list_endpoints(pg_pool, tenant)).items[0].enabled
        clock.move(hours=1)
        assert await worker.deliver_due() == 1
        assert await worker.deliver_due() == 0  # disabled: nothing more is tried
    finally:
        await worker.close()
    [endpoint] = (await list_endpoints(pg_pool, tenant)).items
    assert not endpoint.enabled and endpoint.disabled_at == clock.now
    mail = await pg_pool.fetchrow("SELECT recipient, subject, body FROM mail_outbox")
    assert mail["recipient"] == "ops@example.com"
    assert str(created.endpoint.id) in mail["body"]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://localhost:8080/hook", "http://10.1.2.3/",
    "http://192.168.0.10/", "http://172.16.5.5/", "http://169.254.169.254/latest",
    "http://[::1]/", "http://[fe80::1]/", "http://224.0.0.1/", "http://0.0.0.0/",
    "http://[::ffff:127.0.0.1]/", "http://100.64.0.1/", "http://240.0.0.1/",
])
async def test_private_addresses_are_refused(pg_pool: asyncpg.Pool, url: str) -> None:
    tenant = uuid.UUID(str(uuid.uuid4()))
    with pytest.raises(InvalidField) as refused:
        await create_endpoint(pg_pool, tenant, url, ["balance.low"], allow_private=False)
    assert refused.value.field == "url"


@pytest.mark.parametrize(("url", "events", "field"), [
    ("ftp://93.184.216.34/", ["balance.low"], "url"),
    ("http://user:secret@93.184.216.34/", ["balance.low"], "url"),
    ("http:///nohost", ["balance.low"], "url"),
    ("http://93.184.216.34/", [], "events"),
    ("http://93.184.216.34/", ["balance.lowish"], "events"),
])
async def test_bad_endpoints_are_refused_naming_the_field(
        pg_pool: asyncpg.Pool, url: str, events: list[str], field: str) -> None:
    with pytest.raises(InvalidField) as refused:
        await create_endpoint(pg_pool, uuid.uuid4(), url, events, allow_private=False)
    assert refused.value.field == field


async def test_a_public_address_is_accepted(pg_pool: asyncpg.Pool) -> None:
    tenant = uuid.UUID(await _tenant(pg_pool))
    created = await create_endpoint(pg_pool, tenant, "https://93.184.216.34/hook",
                                    ["balance.low", "balance.low"], allow_private=False)
    assert created.endpoint.events == ["balance.low"]


async def _tenant(pool: asyncpg.Pool) -> str:
    from tests.metering.ledger import insert_tenant
    return await insert_tenant(pool)


@pytest.mark.parametrize("url_of", [
    lambda r: r.url, lambda r: r.url.replace("127.0.0.1", "localhost")])
async def test_delivery_rechecks_the_address(pg_pool: asyncpg.Pool, receiver: Receiver,
                                             url_of: object) -> None:
    """Created while private addresses were allowed (or a name that now resolves
    inside: DNS rebinding): a gateway that forbids them does not call it."""
    url = url_of(receiver)  # type: ignore[operator]
    tenant, created = await tenant_with_endpoint(pg_pool, url, ["success.created"])
    await _emit(pg_pool, tenant, "s8:call-1")
    worker = DeliveryWorker(pg_pool, allow_private=False)
    try:
        assert await worker.deliver_due() == 1
    finally:
        await worker.close()
    assert receiver.received == []
    [attempt] = (await list_deliveries(pg_pool, tenant, created.endpoint.id)).items
    assert attempt.status == "failed" and (attempt.error or "").startswith("refused")


async def test_endpoints_list_test_delete_and_pages(pg_pool: asyncpg.Pool,
                                                    receiver: Receiver) -> None:
    tenant, created = await tenant_with_endpoint(pg_pool, receiver.url, ["balance.low"])
    others = [await create_endpoint(pg_pool, tenant, receiver.url, ["topup.applied"],
                                    allow_private=True) for _ in range(2)]
    first = await list_endpoints(pg_pool, tenant, limit=2)
    assert len(first.items) == 2 and first.next_cursor is not None
    second = await list_endpoints(pg_pool, tenant, cursor=first.next_cursor, limit=2)
    assert [e.id for e in first.items + second.items] == [
        created.endpoint.id, *(o.endpoint.id for o in others)]
    assert second.next_cursor is None
    stranger = uuid.UUID(await _tenant(pg_pool))
    with pytest.raises(NotFound):
        await send_test(pg_pool, stranger, created.endpoint.id)
    msg_id = await send_test(pg_pool, tenant, created.endpoint.id)
    worker = DeliveryWorker(pg_pool, allow_private=True)
    try:
        assert await worker.deliver_due() == 1
    finally:
        await worker.close()
    [event] = receiver.verified(created.secret)
    assert event["type"] == "webhook.test" and receiver.received[0].headers["webhook-id"] == msg_id
    with pytest.raises(NotFound):
        await delete_endpoint(pg_pool, stranger, created.endpoint.id)
    await delete_endpoint(pg_pool, tenant, created.endpoint.id)
    with pytest.raises(NotFound):
        await list_deliveries(pg_pool, tenant, created.endpoint.id)
    with pytest.raises(InvalidField) as bad:
        await list_endpoints(pg_pool, tenant, cursor="not-a-cursor")
    assert bad.value.field == "cursor"


async def test_the_running_worker_delivers_what_commits(pg_pool: asyncpg.Pool,
                                                        receiver: Receiver) -> None:
    arrived = asyncio.Event()

    async def answer(n: int) -> web.Response:
        arrived.set()
        return web.Response(status=200)

    receiver.behaviour = answer
    tenant, created = await tenant_with_endpoint(pg_pool, receiver.url, ["success.created"])
    worker = DeliveryWorker(pg_pool, allow_private=True, poll_s=0.05)
    running = asyncio.create_task(worker.run())
    try:
        await _emit(pg_pool, tenant, "s9:call-1")
        await asyncio.wait_for(arrived.wait(), 10)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert [e["type"] for e in receiver.verified(created.secret)] == ["success.created"]
