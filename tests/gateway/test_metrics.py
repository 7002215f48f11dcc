"""/metrics on prometheus_client inside one process: a registry per app, the request
histogram, the messaging and credit-control metrics, and the sink's counts and backlog."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.metrics import Metrics
from gateway.wiring import SinkExport
from load.messages import whatsapp_text
from metering.credit_store import CreditStore
from metering.sink import Sink
from tests.gateway.helpers import make_settings
from tests.gateway.messaging_env import MessagingEnv, one_message
from tests.metering.ledger import insert_tenant, ledger_topup
from tests.prom import sample

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
C = 1_000_000


async def test_two_apps_in_one_process_count_apart(
    aiohttp_client: ClientFactory, redis_url: str, database_url: str, key_prefix: str
) -> None:
    settings = make_settings(redis_url, database_url, key_prefix)
    first = await aiohttp_client(create_app(settings))
    second = await aiohttp_client(create_app(settings))
    for _ in range(3):
        assert (await first.get("/healthz")).status == 200
    assert (await second.get("/healthz")).status == 200
    for client, expected in ((first, 3), (second, 1)):
        text = await (await client.get("/metrics")).text()
        assert sample(text, "voicegw_http_requests_total",
                      route="/healthz", status="200") == expected
        count = sample(text, "voicegw_http_request_duration_seconds_count", route="/healthz")
        assert count == expected
        assert sample(text, "voicegw_http_request_duration_seconds_bucket",
                      route="/healthz", le="+Inf") == expected
        assert (sample(text, "voicegw_http_request_duration_seconds_sum", route="/healthz")
                or 0) > 0


async def test_an_answered_message_shows_in_the_job_webhook_and_credit_metrics(
        messaging_env: MessagingEnv) -> None:
    env = messaging_env
    await env.topup(1000)
    customer = "4915100000077"
    env.open_window(customer)
    response = await env.post_whatsapp(one_message([whatsapp_text(customer, "hello")]))
    assert response.status == 200
    await env.settle()
    text = await (await env.client.get("/metrics")).text()
    assert sample(text, "voicegw_message_jobs_total", outcome="done") == 1
    assert sample(text, "voicegw_message_jobs_total", outcome="failed") is None
    assert sample(text, "voicegw_messages_total", channel="whatsapp", outcome="replied") == 1
    assert sample(text, "voicegw_http_request_duration_seconds_count",
                  route="/whatsapp/webhook") == 1
    # The inbound message is one charge; the answer one credit session, opened and settled.
    for op in ("charge", "reserve", "terminate"):
        assert (sample(text, "voicegw_credit_control_duration_seconds_count", op=op)
                or 0) >= 1, op


async def test_sink_counts_and_outbox_backlog(
    redis_client: aioredis.Redis, key_prefix: str, pg_pool: asyncpg.Pool
) -> None:
    timings: list[tuple[str, float]] = []
    store = CreditStore(redis_client, key_prefix,
                        on_timing=lambda op, seconds: timings.append((op, seconds)))
    tenant = await insert_tenant(pg_pool)
    await ledger_topup(pg_pool, store, tenant, 1_000)
    for n in range(3):
        await store.charge(tenant, f"sms-{n}", channel="sms", micro=C // 2,
                           usage={"sms_sent_segments": 1}, now_ms=1_000)
    assert [op for op, _ in timings] == ["topup", "charge", "charge", "charge"]
    assert all(seconds > 0 for _, seconds in timings)

    metrics = Metrics()
    sink = Sink(redis_client, pg_pool, key_prefix)
    export = SinkExport(metrics, sink)
    await export.measure_backlog()  # nothing discovered yet: nothing measured as waiting
    assert sample(metrics.render().decode(), "voicegw_outbox_entries") == 0
    await sink.discover()
    await export.measure_backlog()
    text = metrics.render().decode()
    assert sample(text, "voicegw_outbox_entries") == 3
    age = sample(text, "voicegw_outbox_oldest_age_seconds")
    assert age is not None and 0 <= age < 60  # written moments ago, by Redis's own clock

    assert await sink.drain() == 3
    export.copy_counts()
    export.copy_counts()  # copies increments: twice adds nothing
    await export.measure_backlog()
    text = metrics.render().decode()
    assert sample(text, "voicegw_sink_events_total") == 3
    assert sample(text, "voicegw_sink_batches_total") == sink.stats.batches >= 1
    assert sample(text, "voicegw_sink_failures_total") == 0
    assert sample(text, "voicegw_outbox_entries") == 0
    assert sample(text, "voicegw_outbox_oldest_age_seconds") == 0
