"""`python -m benchmarks.live` (`make bench-live`): what the live dashboard costs.

1. The credit scripts' PUBLISH (lib.lua `changed`): credit-control operations per wall
   second with it, and with it removed from the same scripts, in alternating rounds,
   while one subscriber (a gateway's hub) reads the channel.
2. Fan-out through one gateway process: 1,000 `GET /v1/live` streams (10 tenants x 100),
   a top-up per tenant, and the time from the top-up's request to each stream's
   `balance` event carrying the new amount.

Records the section "Live dashboard (GET /v1/live)" of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from benchmarks.__main__ import _drop_database, _scratch_database
from benchmarks.common import drop_redis_prefix
from benchmarks.screenshot import ADMIN, _settings
from gateway.app import create_app
from gateway.embedded import LocalServers
from load.bench_report import record
from metering.credit_store import CreditStore, ScriptCall
from metering.keys import live_channel

C = 1_000_000
HEADING = "Live dashboard (GET /v1/live)"
PUBLISH = "redis.call('PUBLISH', prefix .. 'live-changes', tenant)"  # lib.lua `changed`


async def _ops_per_s(store: CreditStore, sessions: int, tag: str) -> float:
    tenants = 50
    for t in range(tenants):
        await store.apply_topup(f"{tag}{t}", "seed", 10**6 * C)
    ids = [(f"{tag}{n % tenants}", f"s{n}") for n in range(sessions)]
    phases: list[list[ScriptCall]] = [
        [store.reserve_call(t, s, channel="phone", requested=600 * C, min_grant=C,
                            validity_ms=120_000, overdraft_limit=0, now_ms=1) for t, s in ids],
        *[[store.update_call(t, s, charged_total=k * 10 * C, usage={"call_seconds": k},
                             target_held=600 * C, min_grant=C, validity_ms=120_000,
                             now_ms=1 + k) for t, s in ids] for k in (1, 2)],
        [store.terminate_call(t, s, charged_total=30 * C, usage=None, now_ms=10)
         for t, s in ids]]
    await store.run_batch([  # load the scripts outside the timing
        store.reserve_call(f"{tag}0", "warm-up", channel="phone", requested=C, min_grant=C,
                           validity_ms=1, overdraft_limit=0, now_ms=1)])
    started = time.perf_counter()
    for phase in phases:
        for i in range(0, len(phase), 500):
            await store.run_batch(phase[i:i + 500])
    return sum(len(p) for p in phases) / (time.perf_counter() - started)


async def script_cost(redis_url: str, rounds: int = 5, sessions: int = 3000
                      ) -> tuple[list[float], list[float]]:
    redis = aioredis.Redis.from_url(redis_url)
    prefix = f"vgwlive:{uuid.uuid4().hex[:8]}:"
    pubsub = redis.pubsub()
    await pubsub.subscribe(live_channel(prefix))
    received = 0

    async def drain() -> None:
        nonlocal received
        async for message in pubsub.listen():
            received += message["type"] == "message"

    reader = asyncio.create_task(drain())
    with_publish: list[float] = []
    without: list[float] = []
    try:
        for r in range(rounds):
            plain = CreditStore(redis, prefix)
            silent = CreditStore(redis, prefix)
            assert all(PUBLISH in source for source in silent._sources.values())
            silent._sources = {name: source.replace(PUBLISH, "local _ = tenant")
                               for name, source in silent._sources.items()}
            with_publish.append(await _ops_per_s(plain, sessions, f"p{r}-"))
            without.append(await _ops_per_s(silent, sessions, f"n{r}-"))
    finally:
        reader.cancel()
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await drop_redis_prefix(redis_url, prefix)
        await redis.aclose()
    assert received > 0
    return with_publish, without


async def fan_out(redis_url: str, database_url: str, streams: int = 1000, tenants: int = 10,
                  ) -> tuple[float, list[float]]:
    prefix = f"vgwlive:{uuid.uuid4().hex[:8]}:"
    runner = web.AppRunner(create_app(_settings(redis_url, database_url, prefix)))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    latencies: list[float] = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            keys = []
            for n in range(tenants):
                made = await (await http.post(f"{base}/admin/tenants",
                                              json={"name": f"T{n}"}, headers=ADMIN)).json()
                keys.append(made["api_key"])
            opened = time.perf_counter()
            auth = [{"Authorization": f"Bearer {key}"} for key in keys]
            responses = await asyncio.gather(*(
                http.get(f"{base}/v1/live", headers=auth[i % tenants]) for i in range(streams)))
            connect_s = time.perf_counter() - opened
            sent: dict[int, float] = {}

            async def watch(i: int, response: aiohttp.ClientResponse) -> None:
                async for line in response.content:
                    if line.startswith(b"data: ") and b'"available_credits":"5.000000"' in line:
                        latencies.append(time.perf_counter() - sent[i % tenants])
                        return

            watchers = [asyncio.create_task(watch(i, r)) for i, r in enumerate(responses)]
            await asyncio.sleep(1.0)
            for n, key in enumerate(keys):
                sent[n] = time.perf_counter()
                await http.post(f"{base}/v1/topups", json={"credits": 5}, headers={
                    "Authorization": f"Bearer {key}", "Idempotency-Key": "bench"})
                await asyncio.sleep(0.3)
            await asyncio.wait_for(asyncio.gather(*watchers), 30)
            for response in responses:
                response.close()
    finally:
        await runner.cleanup()
        await drop_redis_prefix(redis_url, prefix)
    return connect_s, latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


async def _main() -> str:
    servers = LocalServers("VOICEGW_BENCH_REDIS_URL", "VOICEGW_BENCH_DATABASE_URL")
    try:
        name, database_url = await _scratch_database(servers.postgres_url)
        try:
            with_publish, without = await script_cost(servers.redis_url)
            connect_s, latencies = await fan_out(servers.redis_url, database_url)
        finally:
            await _drop_database(servers.postgres_url, name)
    finally:
        servers.close()
    ms = [x * 1000 for x in latencies]
    cost = 1 - statistics.median(with_publish) / statistics.median(without)
    return "\n".join([
        f"## {HEADING}",
        "",
        "Command: `make bench-live` (`python -m benchmarks.live`). "
        f"Run {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, the same machine.",
        "",
        "| measure | figure |",
        "| --- | --- |",
        "| credit-control ops per wall second, scripts with PUBLISH (median of "
        f"{len(with_publish)} rounds) | {statistics.median(with_publish):,.0f} |",
        f"| the same scripts without it | {statistics.median(without):,.0f} |",
        f"| difference of the medians (with - without) / without | {-cost:+.1%} |",
        "| rounds with / without (alternating) | "
        + ", ".join(f"{a:,.0f} / {b:,.0f}" for a, b in zip(with_publish, without, strict=True))
        + " |",
        f"| 1,000 streams opened at once (10 tenants), time until all answered | "
        f"{connect_s * 1000:,.0f} ms |",
        f"| top-up to `balance` event, per stream, p50 / p95 / max ({len(ms)} streams) | "
        f"{_pct(ms, 0.5):.0f} / {_pct(ms, 0.95):.0f} / {max(ms):.0f} ms |",
        "",
        "The machine is shared (other processes on both cores): compare the rounds, not "
        "one pair. One Redis subscriber and one PostgreSQL LISTEN per gateway process, "
        "whatever the number of streams; a burst of changes of one tenant is one snapshot per "
        "`flush_s` (200 ms). The clients run in the benchmark's own process, so the "
        "latencies include reading 1,000 streams in Python.",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.live", description=__doc__)
    parser.add_argument("--output", default="BENCHMARKS.md")
    args = parser.parse_args()
    section = asyncio.run(_main())
    print(section)
    record(Path(args.output), section, HEADING)


if __name__ == "__main__":
    main()
