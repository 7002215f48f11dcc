"""`GET /v1/live` on a real gateway app (loopback, real Redis and PostgreSQL): the stream
token, balance and live-session events from the credit scripts' PUBLISH, settled
conversations from the trigger's NOTIFY, heartbeats, a clean goodbye, one subscriber per
process, and no stream left behind by clients that vanish (1,000 at once too)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from api.context import CREDIT_STORE, PG_POOL, REDIS, REDIS_PREFIX
from api.live_hub import LIVE_HUB, LiveHub
from gateway.app import create_app
from gateway.embedded import free_port
from metering.keys import live_channel
from tests.api.accounts_env import bearer, invite, join, new_tenant_with_owner
from tests.api.conftest import ADMIN, Client, Mailbox, Tenant
from tests.gateway.helpers import make_settings

Event = tuple[str, Any]


class Reader:
    """Reads server-sent events off a streaming response."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.comments = 0

    async def next(self, wait_s: float = 5.0) -> Event:
        async with asyncio.timeout(wait_s):
            name, data = "message", b""
            while True:
                line = await self.response.content.readline()
                if not line:
                    raise EOFError("the stream ended")
                line = line.rstrip(b"\n")
                if line.startswith(b":"):
                    self.comments += 1
                elif line.startswith(b"event: "):
                    name = line[7:].decode()
                elif line.startswith(b"data: "):
                    data = line[6:]
                elif line == b"" and data:
                    return name, orjson.loads(data)

    async def until(self, name: str, check: Callable[[Any], bool] = lambda _d: True,
                    wait_s: float = 5.0) -> Any:
        deadline = time.monotonic() + wait_s
        while True:
            event, data = await self.next(max(deadline - time.monotonic(), 0.01))
            if event == name and check(data):
                return data


async def eventually(check: Callable[[], bool] | Callable[[], Awaitable[bool]],
                     within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.02)


def hub(client: Client) -> LiveHub:
    found = client.app[LIVE_HUB]
    assert isinstance(found, LiveHub)
    return found


@pytest.fixture
async def subscribed(client: Client) -> AsyncIterator[Client]:
    await asyncio.wait_for(hub(client).subscribed.wait(), 10)
    yield client


async def open_stream(client: Client, tenant: Tenant) -> tuple[aiohttp.ClientResponse, Reader]:
    token = await client.post("/v1/live/token", headers=tenant.auth)
    assert token.status == 201, await token.text()
    body = await token.json()
    assert body["token"].startswith("lst_") and body["url"] == f"/v1/live?token={body['token']}"
    response = await client.get(body["url"])
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "text/event-stream"
    return response, Reader(response)


async def topup(client: Client, tenant: Tenant, credits: int) -> None:
    answer = await client.post("/v1/topups", json={"credits": credits}, headers={
        **tenant.auth, "Idempotency-Key": uuid.uuid4().hex})
    assert answer.status == 201, await answer.text()


async def test_a_token_opens_one_stream_once_and_the_key_opens_it_too(
        subscribed: Client, tenant: Tenant) -> None:
    client = subscribed
    token = (await (await client.post("/v1/live/token", headers=tenant.auth)).json())["token"]
    response = await client.get(f"/v1/live?token={token}")
    reader = Reader(response)
    assert await reader.next() == ("balance", (await (await client.get(
        "/v1/balance", headers=tenant.auth)).json()))
    assert await reader.next() == ("sessions", {"sessions": []})
    again = await client.get(f"/v1/live?token={token}")
    assert again.status == 401
    assert (await again.json())["code"] == "invalid_stream_token"
    assert (await client.get("/v1/live?token=lst_made-up")).status == 401
    assert (await client.get("/v1/live")).status == 401
    assert (await client.post("/v1/live/token")).status == 401
    wrong = {"Authorization": "Bearer not-a-key"}
    assert (await client.get("/v1/live", headers=wrong)).status == 401
    with_key = await client.get("/v1/live", headers=tenant.auth)
    assert with_key.status == 200
    assert (await Reader(with_key).next())[0] == "balance"
    response.close()
    with_key.close()
    await eventually(lambda: hub(client).count == 0)


async def test_top_ups_and_sessions_arrive_live(subscribed: Client, tenant: Tenant,
                                                 ) -> None:
    client = subscribed
    response, reader = await open_stream(client, tenant)
    await reader.until("sessions")
    await topup(client, tenant, 250)
    balance = await reader.until("balance", lambda b: b["available_credits"] == "250.000000")
    assert balance["paused"] is False

    store = client.app[CREDIT_STORE]
    now = int(time.time() * 1000)
    grant = await store.reserve(tenant.id, "call:CA1", channel="phone", requested=5_000_000,
                                min_grant=1, validity_ms=60_000, overdraft_limit=0,
                                now_ms=now, meta={"caller": "+4917***4567"})
    assert grant.ok
    # One snapshot per change: the balance, then the sessions.
    await reader.until("balance", lambda b: b["reserved_credits"] == "5.000000")
    sessions = await reader.next()
    assert sessions[0] == "sessions" and len(sessions[1]["sessions"]) == 1
    live = sessions[1]["sessions"][0]
    assert live["id"] == "call:CA1" and live["channel"] == "phone"
    assert live["customer"] == "+4917***4567" and live["credits"] == "0.000000"
    await store.terminate(tenant.id, "call:CA1", charged_total=1_500_000, usage={},
                          now_ms=now + 10_000)
    await reader.until("balance", lambda b: b["available_credits"] == "248.500000"
                       and b["reserved_credits"] == "0.000000")
    assert await reader.next() == ("sessions", {"sessions": []})
    response.close()


async def insert_conversation(pool: asyncpg.Pool, tenant: str, *, settled: bool) -> str:
    conversation = uuid.uuid4()
    await pool.execute(
        """INSERT INTO conversations (id, tenant_id, channel, direction, customer_hash,
               customer_masked, started_at, last_activity_at, ended_at, settled_at)
           VALUES ($1, $2, 'whatsapp', 'inbound', 'h', '+4917***4567', now(), now(),
                   CASE WHEN $3 THEN now() END, CASE WHEN $3 THEN now() END)""",
        conversation, uuid.UUID(tenant), settled)
    return str(conversation)


async def test_settled_conversations_arrive_once_after_commit(
        subscribed: Client, tenant: Tenant) -> None:
    client = subscribed
    pool = client.app[PG_POOL]
    response, reader = await open_stream(client, tenant)
    await reader.until("sessions")
    open_one = await insert_conversation(pool, tenant.id, settled=False)
    settled_at_once = await insert_conversation(pool, tenant.id, settled=True)
    assert await reader.until("conversations") == {"settled": [settled_at_once]}
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE conversations SET last_activity_at = now() WHERE id = $1",
                           uuid.UUID(open_one))  # still open: nothing to say
        await conn.execute("UPDATE conversations SET ended_at = now(), settled_at = now() "
                           "WHERE id = $1", uuid.UUID(open_one))
    assert await reader.until("conversations") == {"settled": [open_one]}
    await pool.execute("UPDATE conversations SET summary = 'later' WHERE id = $1",
                       uuid.UUID(open_one))  # settled before: not announced again
    other = await client.post("/admin/tenants", json={"name": "Other"}, headers=ADMIN)
    await insert_conversation(pool, (await other.json())["id"], settled=True)
    marker = await insert_conversation(pool, tenant.id, settled=True)
    # Only this tenant's, in order: the other tenant's and the summary update never come.
    assert await reader.until("conversations") == {"settled": [marker]}
    response.close()


async def test_one_subscriber_per_process_and_a_heartbeat(subscribed: Client,
                                                          tenant: Tenant) -> None:
    client = subscribed
    hub(client).heartbeat_s = 0.2
    streams = [await open_stream(client, tenant) for _ in range(20)]
    redis = client.app[REDIS]
    channel = live_channel(client.app[REDIS_PREFIX])
    assert dict(await redis.pubsub_numsub(channel)) == {channel.encode(): 1}
    _, reader = streams[0]
    await reader.until("sessions")
    before = reader.comments
    with pytest.raises(TimeoutError):
        await reader.next(wait_s=0.7)  # nothing happens: only comment lines
    assert reader.comments >= before + 2
    for response, _ in streams:
        response.close()
    await eventually(lambda: hub(client).count == 0)


async def test_a_client_that_vanishes_is_noticed_without_a_heartbeat(
        subscribed: Client, tenant: Tenant) -> None:
    client = subscribed
    hub(client).heartbeat_s = 3600.0  # no write will find the broken pipe
    response, reader = await open_stream(client, tenant)
    await reader.until("sessions")
    assert hub(client).count == 1
    response.connection.transport.abort()  # type: ignore[union-attr]
    await eventually(lambda: hub(client).count == 0, within_s=5)


async def metric(client: Client) -> float:
    text = await (await client.get("/metrics")).text()
    line = next(x for x in text.splitlines() if x.startswith("voicegw_live_streams "))
    return float(line.split()[1])


async def test_a_thousand_clients_at_once_leave_nothing_behind(
        subscribed: Client, tenant: Tenant) -> None:
    client = subscribed
    url = client.make_url("/v1/live")
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one() -> aiohttp.ClientResponse:
            response = await session.get(url, headers=tenant.auth)
            assert response.status == 200, await response.text()
            assert (await Reader(response).next(wait_s=60))[0] == "balance"
            return response

        responses = await asyncio.gather(*(one() for _ in range(1000)))
        assert hub(client).count == 1000
        assert await metric(client) == 1000
        await topup(client, tenant, 7)  # one change, a thousand streams told
        for response in responses[:3]:
            await Reader(response).until("balance",
                                         lambda b: b["available_credits"] == "7.000000")
        for response in responses:
            response.close()
    await eventually(lambda: hub(client).count == 0, within_s=30)
    assert hub(client).streams == {}
    assert await metric(client) == 0


async def test_shutdown_says_goodbye_and_ends_every_stream(
        subscribed: Client, tenant: Tenant) -> None:
    client = subscribed
    streams = [await open_stream(client, tenant) for _ in range(3)]
    for _, reader in streams:
        await reader.until("sessions")
    hub(client).close_all()
    for response, reader in streams:
        assert await reader.until("bye") == {"reconnect": True}
        assert await response.content.read() == b""  # and the stream ends
    await eventually(lambda: hub(client).count == 0)


async def test_a_reader_that_falls_behind_is_dropped(subscribed: Client,
                                                     tenant: Tenant) -> None:
    client = subscribed
    _, reader = await open_stream(client, tenant)
    await reader.until("sessions")
    (stream,) = hub(client).streams[tenant.id]
    for _ in range(200):  # more than a stream may hold unread
        stream.put(b": filler\n\n")
    assert stream.dropped
    await reader.until("bye")
    await eventually(lambda: hub(client).count == 0)


async def test_a_lost_listener_is_taken_again_and_streams_get_a_fresh_snapshot(
        subscribed: Client, tenant: Tenant) -> None:
    client = subscribed
    pool = client.app[PG_POOL]
    response, reader = await open_stream(client, tenant)
    await reader.until("sessions")
    killed = await pool.fetchval(
        """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
           WHERE datname = current_database() AND query LIKE 'LISTEN%voicegw_live%'""")
    assert killed == 1
    await reader.until("balance")  # taken again: the snapshot of what may have been missed
    await asyncio.wait_for(hub(client).subscribed.wait(), 10)
    marker = await insert_conversation(pool, tenant.id, settled=True)
    assert await reader.until("conversations") == {"settled": [marker]}
    response.close()


async def test_a_store_that_is_down_answers_503_and_leaves_no_stream(
        aiohttp_client: Any, database_url: str, key_prefix: str) -> None:
    settings = make_settings(f"redis://127.0.0.1:{free_port()}/0", database_url, key_prefix,
                             run_sink="false")
    client = await aiohttp_client(create_app(settings))
    created = await client.post("/admin/tenants", json={"name": "Acme"}, headers=ADMIN)
    assert created.status == 201, await created.text()
    auth = {"Authorization": f"Bearer {(await created.json())['api_key']}"}
    for answer in (await client.get("/v1/live", headers=auth),
                   await client.post("/v1/live/token", headers=auth),
                   await client.get("/v1/live?token=lst_any")):
        assert answer.status == 503, await answer.text()
        assert (await answer.json())["code"] == "store_unavailable"
    assert hub(client).count == 0


async def test_a_bulk_settlement_is_one_event_without_the_ids(subscribed: Client,
                                                              tenant: Tenant) -> None:
    client = subscribed
    pool = client.app[PG_POOL]
    response, reader = await open_stream(client, tenant)
    await reader.until("sessions")
    await pool.execute(
        """INSERT INTO conversations (id, tenant_id, channel, direction, customer_hash,
               customer_masked, started_at, last_activity_at, ended_at, settled_at)
           SELECT gen_random_uuid(), $1, 'sms', 'inbound', 'h' || n, '***', now(), now(),
                  now(), now()
           FROM generate_series(1, 101) AS n""", uuid.UUID(tenant.id))
    assert await reader.until("conversations") == {"settled": []}  # reload the list
    marker = await insert_conversation(pool, tenant.id, settled=True)
    assert await reader.until("conversations") == {"settled": [marker]}  # one event only
    response.close()


async def test_a_signed_in_person_opens_it_and_only_money_roles_get_the_balance(
        accounts_client: Client, mailbox: Mailbox) -> None:
    """An owner's stream carries the balance; an analyst's (who may not read it) carries
    the live sessions and settled conversations but never a balance event, whether it
    is opened with the cookie or with a stream token the analyst asked for."""
    client = accounts_client
    created = await new_tenant_with_owner(client, "owner@acme.test")
    owner = await join(client, mailbox, "owner@acme.test")
    await invite(client, bearer(created["api_key"]), "analyst@acme.test", "analyst")
    analyst = await join(client, mailbox, "analyst@acme.test")
    await asyncio.wait_for(hub(client).subscribed.wait(), 10)
    stream = await client.get("/v1/live", headers=owner.headers(csrf=False))
    assert stream.status == 200
    assert (await Reader(stream).next())[0] == "balance"
    stream.close()

    by_cookie = await client.get("/v1/live", headers=analyst.headers(csrf=False))
    assert by_cookie.status == 200
    token = await client.post("/v1/live/token", headers=analyst.headers())
    assert token.status == 201
    by_token = await client.get((await token.json())["url"])
    assert by_token.status == 200
    readers = [Reader(by_cookie), Reader(by_token)]
    for reader in readers:
        assert await reader.next() == ("sessions", {"sessions": []})
    await topup(client, Tenant(created["id"], created["api_key"]), 500)  # the balance moves
    for reader in readers:  # a snapshot follows the change: sessions only
        assert await reader.next() == ("sessions", {"sessions": []})
    by_cookie.close()
    by_token.close()
    made = await client.post("/v1/live/token", headers=owner.headers())
    assert made.status == 201
    await eventually(lambda: hub(client).count == 0)
