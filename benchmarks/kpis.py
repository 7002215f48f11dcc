"""KPIs at scale: `GET /v1/kpis` for 30 days of a tenant with 1,000,000 conversations.

Setup (timed apart): one tenant (Europe/Istanbul) and N settled conversations over ~60
days, generated inside PostgreSQL with generate_series (phone, WhatsApp, SMS; about 200,000
customers; successes, handoffs, abandoned calls, ratings), loaded with the KPI triggers
off and then rolled up by `kpi_rebuild` (the same definitions the triggers apply); then a
few hundred more conversations settled one by one through the triggers, timed.

Timed: sequential `GET /v1/kpis` requests over HTTP to a gateway process
(`python -m gateway.cli serve`) for the last 30 days, by day; then by week with a
channel filter. Checked before a figure is reported: the answer's conversation count and
distinct customers equal a direct count over `conversations`.

    python -m benchmarks.kpis --conversations 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import aiohttp
import asyncpg

from benchmarks.common import (
    BenchmarkFailed,
    load_average,
    machine,
    percentile,
    publish,
    scratch_database,
    wait_ready,
)
from gateway.embedded import LocalServers, free_port
from metering.tenants import hash_api_key

HEADING = "KPIs"
COMMAND = "make bench-kpis"
DAYS = 60
API_KEY = "vgw_bench_kpis"
TIMEZONE = "Europe/Istanbul"
CHUNK = 100_000
TRIGGERS = ("kpi_10_came_back", "kpi_20_settle_insert", "kpi_20_settle", "kpi_30_rating")


@dataclass(frozen=True)
class KpiResult:
    conversations: int
    customers: int
    load_s: float
    rebuild_s: float
    settle_ms: float  # mean, one settlement through the triggers
    settled: int
    requests: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    filtered_p95_ms: float


_GENERATE = """
INSERT INTO conversations (id, tenant_id, channel, direction, customer_hash, customer_masked,
    call_sid, started_at, last_activity_at, ended_at, answered_at, first_response_ms,
    disposition, outcomes, successes, handoff, resolved, micro_credits, rating, settled_at)
SELECT gen_random_uuid(), $1, g.ch, 'inbound', 'c' || g.cust, '+90******' || (g.cust % 100),
       CASE WHEN g.ch = 'phone' THEN 'CAbench' || g.i END,
       g.st, g.st + g.dur, g.st + g.dur,
       CASE WHEN g.abandoned THEN NULL ELSE g.st + g.resp * interval '1 millisecond' END,
       CASE WHEN g.abandoned THEN NULL ELSE g.resp END,
       CASE WHEN g.abandoned THEN 'abandoned' WHEN g.handoff THEN 'transferred'
            ELSE 'completed' END,
       CASE WHEN g.success THEN jsonb_build_array(jsonb_build_object(
           'kind', (ARRAY['appointment_booked', 'ticket_created', 'order_placed'])[1 + g.i % 3],
           'record_id', g.i::text, 'at', g.st)) ELSE '[]'::jsonb END,
       g.success::int, g.handoff, g.r3 < 0.3 AND NOT g.handoff,
       (g.dur_s * 12000)::bigint,
       CASE WHEN g.r3 < 0.2 THEN 1 + (g.i % 5) END,
       g.st + g.dur
FROM (SELECT i, ch, cust, st, r1, r2, r3, resp, dur_s, dur,
             ch = 'phone' AND r1 < 0.08 AS abandoned,
             r1 >= 0.08 AND r2 < 0.55 AS success,
             r1 >= 0.08 AND r2 >= 0.55 AND r2 < 0.6 AS handoff
      FROM (SELECT i, (ARRAY['phone', 'phone', 'whatsapp', 'sms'])[1 + i % 4] AS ch,
                   (random() * $4)::int AS cust,
                   $2::timestamptz + random() * $3 * interval '1 second' AS st,
                   random() AS r1, random() AS r2, random() AS r3,
                   (300 + random() * 25000)::int AS resp,
                   (20 + random() * 400)::int AS dur_s,
                   (20 + random() * 400)::int * interval '1 second' AS dur
            FROM generate_series($5::int, $6::int) AS i) AS raw) AS g
"""


async def _seed(pool: asyncpg.Pool, tenant: uuid.UUID, conversations: int, customers: int,
                start: dt.datetime) -> tuple[float, float]:
    await pool.execute(
        "INSERT INTO tenants (id, name, api_key_hash, timezone) VALUES ($1, 'bench', $2, $3)",
        tenant, hash_api_key(API_KEY), TIMEZONE)
    begun = time.perf_counter()
    async with pool.acquire() as conn:
        for name in TRIGGERS:
            await conn.execute(f"ALTER TABLE conversations DISABLE TRIGGER {name}")
        try:
            for first in range(1, conversations + 1, CHUNK):
                last = min(conversations, first + CHUNK - 1)
                await conn.execute(_GENERATE, tenant, start, DAYS * 86400, customers,
                                   first, last)
        finally:
            for name in TRIGGERS:
                await conn.execute(f"ALTER TABLE conversations ENABLE TRIGGER {name}")
        await conn.execute("ANALYZE conversations")
    loaded = time.perf_counter()
    await pool.execute("SELECT kpi_rebuild($1)", tenant)
    await pool.execute("ANALYZE kpi_days; ANALYZE kpi_customer_days; "
                       "ANALYZE kpi_disposition_days")
    return loaded - begun, time.perf_counter() - loaded


async def _settle_through_triggers(pool: asyncpg.Pool, tenant: uuid.UUID, count: int,
                                   customers: int, now: dt.datetime) -> float:
    """Mean milliseconds of one conversation's start + settlement with the triggers on."""
    begun = time.perf_counter()
    for n in range(count):
        conversation = uuid.uuid4()
        started = now - dt.timedelta(minutes=10 + n)
        await pool.execute(
            """INSERT INTO conversations (id, tenant_id, channel, direction, customer_hash,
                   customer_masked, started_at, last_activity_at)
               VALUES ($1, $2, 'whatsapp', 'inbound', $3, '+90******00', $4, $4)""",
            conversation, tenant, f"c{n * 7919 % customers}", started)
        await pool.execute(
            """UPDATE conversations SET ended_at = $2, answered_at = $2, first_response_ms = 900,
                   disposition = 'completed', successes = 1, resolved = true,
                   outcomes = '[{"kind": "order_placed"}]', micro_credits = 5000,
                   settled_at = $2 WHERE id = $1""",
            conversation, started + dt.timedelta(minutes=3))
    return (time.perf_counter() - begun) * 1000 / max(1, count)


def _gateway_env(redis_url: str, database_url: str, port: int, prefix: str) -> dict[str, str]:
    return {**os.environ, "VOICEGW_REDIS_URL": redis_url, "VOICEGW_DATABASE_URL": database_url,
            "VOICEGW_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "VOICEGW_ADMIN_TOKEN": "bench-admin-token-kpis",
            "VOICEGW_HOST": "127.0.0.1", "VOICEGW_PORT": str(port),
            "VOICEGW_REDIS_PREFIX": prefix, "VOICEGW_LOG_LEVEL": "WARNING",
            "VOICEGW_MIGRATE_ON_START": "false", "VOICEGW_RUN_SINK": "false"}



async def _time(http: aiohttp.ClientSession, url: str, params: dict[str, str],
                requests: int) -> tuple[list[float], dict[str, object]]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    timings: list[float] = []
    body: dict[str, object] = {}
    for _ in range(requests):
        begun = time.perf_counter()
        async with http.get(url, params=params, headers=headers) as response:
            body = await response.json()
            if response.status != 200:
                raise BenchmarkFailed(f"GET /v1/kpis answered {response.status}: {body}")
        timings.append((time.perf_counter() - begun) * 1000)
    return timings, body


async def _check(pool: asyncpg.Pool, tenant: uuid.UUID, first: dt.date, last: dt.date,
                 totals: dict[str, object]) -> None:
    row = await pool.fetchrow(
        """SELECT count(*) AS conversations, count(DISTINCT customer_hash) AS customers
           FROM conversations WHERE tenant_id = $1 AND settled_at IS NOT NULL
             AND (started_at AT TIME ZONE $4)::date BETWEEN $2 AND $3""",
        tenant, first, last, TIMEZONE)
    answered = (totals["conversations"], totals["customers"])
    if answered != (row["conversations"], row["customers"]):
        raise BenchmarkFailed(f"the API counted {answered}, the table has "
                              f"{(row['conversations'], row['customers'])}")


async def run(redis_url: str, postgres_url: str, *, conversations: int = 1_000_000,
              requests: int = 200, settled: int = 300) -> KpiResult:
    customers = max(1, conversations // 5)
    tenant = uuid.uuid4()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    async with scratch_database(postgres_url, "kpis") as database_url:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
        assert pool is not None
        try:
            load_s, rebuild_s = await _seed(pool, tenant, conversations, customers,
                                            now - dt.timedelta(days=DAYS))
            settle_ms = await _settle_through_triggers(pool, tenant, settled, customers, now)
            port = free_port()
            gateway = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
                [sys.executable, "-m", "gateway.cli", "serve"], stdin=subprocess.DEVNULL,
                env=_gateway_env(redis_url, database_url, port,
                                 f"vgwbench:{uuid.uuid4().hex[:8]}:"))
            base = f"http://127.0.0.1:{port}"
            try:
                async with aiohttp.ClientSession(
                        timeout=aiohttp.ClientTimeout(total=60)) as http:
                    await wait_ready(http, base, gateway)
                    today = (now + dt.timedelta(hours=3)).date()  # Istanbul, UTC+3
                    first = today - dt.timedelta(days=29)
                    params = {"from": first.isoformat(), "to": today.isoformat()}
                    await _time(http, f"{base}/v1/kpis", params, 3)  # warm up
                    timings, body = await _time(http, f"{base}/v1/kpis", params, requests)
                    totals = body["totals"]
                    assert isinstance(totals, dict)
                    await _check(pool, tenant, first, today, totals)
                    filtered, _ = await _time(http, f"{base}/v1/kpis", {
                        **params, "granularity": "week", "channel": "phone"}, requests)
            finally:
                gateway.terminate()
                await asyncio.to_thread(gateway.wait, 30)
        finally:
            await pool.close()
    return KpiResult(conversations, customers, load_s, rebuild_s, settle_ms, settled,
                     requests, percentile(timings, 0.5), percentile(timings, 0.95),
                     percentile(timings, 0.99), percentile(filtered, 0.95))


def section(result: KpiResult, command_line: str, load: str, when: dt.datetime) -> str:
    return "\n".join([
        f"## {HEADING}",
        "",
        f"Command: `{COMMAND}` (`{command_line}`). Run {when:%Y-%m-%d %H:%M} UTC.",
        f"Machine: {machine()}. Load average before the run: {load}.",
        f"One tenant ({TIMEZONE}) with {result.conversations:,} settled conversations over "
        f"{DAYS} days (about {result.customers:,} customers; phone, WhatsApp, SMS), "
        f"generated in PostgreSQL in {result.load_s:,.1f} s and rolled up by `kpi_rebuild` "
        f"in {result.rebuild_s:,.1f} s (not timed below). Requests are sequential, over "
        "HTTP, to one gateway process on loopback.",
        "",
        "| benchmark | figure | target |",
        "| --- | --- | --- |",
        f"| GET /v1/kpis, last 30 days by day, p50 / p95 / p99 ms ({result.requests} "
        f"requests) | {result.p50_ms:,.1f} / {result.p95_ms:,.1f} / {result.p99_ms:,.1f} | "
        "p95 < 200 |",
        f"| GET /v1/kpis, last 30 days by week, channel=phone, p95 ms | "
        f"{result.filtered_p95_ms:,.1f} | p95 < 200 |",
        f"| one conversation started and settled through the KPI triggers, mean ms "
        f"({result.settled} in a row, each two statements) | {result.settle_ms:,.2f} | |",
        "",
        "Checked: the answer's conversations and distinct customers equal a direct count "
        "over `conversations` for the same local days.",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kpis",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--output", default="BENCHMARKS.md")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    load = load_average()
    servers = LocalServers("VOICEGW_BENCH_REDIS_URL", "VOICEGW_BENCH_DATABASE_URL")
    try:
        result = asyncio.run(run(servers.redis_url, servers.postgres_url,
                                 conversations=args.conversations, requests=args.requests))
    finally:
        servers.close()
    text = section(result, " ".join(["python -m benchmarks.kpis", *sys.argv[1:]]), load,
                   dt.datetime.now(dt.UTC))
    publish(text, args.output, HEADING, record_it=not args.no_record)


if __name__ == "__main__":
    main()
