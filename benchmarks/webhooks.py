"""Webhook deliveries per second per core: signed events leaving the PostgreSQL outbox
through the delivery worker to a local receiver.

The worker (`DeliveryWorker` with the gateway's settings: 4 in flight per endpoint, woken
by each emit's NOTIFY and each finished delivery) runs alone in a child process, pinned
to one core when the machine has two or more (like the gateway in `make bench-calls`);
its CPU time is its own `time.process_time()`, so "per core" is deliveries per worker
CPU-second. The
receiver (aiohttp on loopback, port 0) runs in this process on the other cores and
verifies every delivery's signature with the `standardwebhooks` package. Two phases:

- throughput: a backlog of N events (emitted in batches, committed before the worker
  starts) for a few endpoints, delivered as fast as the worker goes;
- latency: events emitted one per transaction at a steady rate while the worker runs;
  emit (commit) to receipt, p50 and p99.

Every event must arrive exactly once, at its endpoint, with a valid signature, and every
outbox message must end delivered at its first attempt: otherwise no figure is reported.

    python -m benchmarks.webhooks --events 5000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import asyncpg
from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from benchmarks.common import (
    BenchmarkFailed,
    load_average,
    machine,
    percentile,
    publish,
    scratch_database,
)
from gateway.embedded import LocalServers
from metering.notify.delivery import MAX_IN_FLIGHT, DeliveryWorker
from metering.notify.endpoints import create_endpoint
from metering.notify.outbox import Event, emit_many

HEADING = "Webhook deliveries"
COMMAND = "make bench-webhooks"
EVENT = "success.created"
WORKER_CORE = 0
BATCH = 1000  # events per emitting transaction in the backlog


@dataclass
class Receiver:
    """Counts what arrives, by webhook id, and when."""

    secrets: dict[str, Webhook] = field(default_factory=dict)  # endpoint path -> verifier
    arrivals: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    wrong: list[str] = field(default_factory=list)  # bad signatures, unknown endpoints
    count: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        verifier = self.secrets.get(request.match_info["endpoint"])
        if verifier is None:
            self.wrong.append(f"unknown endpoint {request.path}")
            return web.Response(status=404)
        try:
            verifier.verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            self.wrong.append(f"{request.headers.get('webhook-id')}: {exc}")
            return web.Response(status=400)
        self.arrivals[request.headers["webhook-id"]].append(time.monotonic())
        self.count += 1
        if self.count >= self.expected:
            self.arrived.set()
        return web.Response(status=200)

    async def wait(self, expected: int, timeout_s: float) -> None:
        self.expected = expected
        if self.count < expected:
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), timeout_s)
            except TimeoutError:
                raise BenchmarkFailed(f"{self.count} of {expected} deliveries arrived within "
                                      f"{timeout_s:g} s; wrong: {self.wrong[:3]}") from None


@dataclass(frozen=True)
class WebhookResult:
    events: int
    endpoints: int
    wall_s: float
    worker_cpu_s: float
    latency_events: int
    latency_rate: float
    p50_ms: float
    p99_ms: float
    pinned: bool

    @property
    def per_cpu_s(self) -> float:
        return self.events / self.worker_cpu_s

    @property
    def per_s(self) -> float:
        return self.events / self.wall_s


class WorkerProcess:
    """The child running the delivery worker; each line written to it answers with its
    CPU seconds so far (the first one also starts the worker, "stop" ends it)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, database_url: str, core: int | None) -> WorkerProcess:
        argv = [sys.executable, "-m", "benchmarks.webhooks", "--worker", database_url]
        if core is not None:
            argv += ["--core", str(core)]
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=dict(os.environ))
        worker = cls(process)
        if (await worker._line()) != "ready":
            raise BenchmarkFailed("the delivery worker did not start")
        return worker

    async def _line(self) -> str:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 60)
        if not line:
            raise BenchmarkFailed(f"the worker exited ({await self.process.wait()})")
        return line.decode().strip()

    async def cpu(self, command: str) -> float:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()
        return float(await self._line())

    async def stop(self) -> float:
        try:
            return await self.cpu("stop")
        finally:
            await asyncio.wait_for(self.process.wait(), 30)


async def _setup(pool: asyncpg.Pool, receiver: Receiver, port: int,
                 endpoints: int) -> list[uuid.UUID]:
    tenants = [uuid.uuid4() for _ in range(endpoints)]
    await pool.executemany("INSERT INTO tenants (id, name, api_key_hash) VALUES ($1, $2, $3)",
                           [(t, f"bench {n}", t.bytes) for n, t in enumerate(tenants)])
    for n, tenant in enumerate(tenants):
        created = await create_endpoint(pool, tenant, f"http://127.0.0.1:{port}/hook/{n}",
                                        [EVENT], allow_private=True)
        receiver.secrets[str(n)] = Webhook(created.secret)
    return tenants


def _event(tenant: uuid.UUID, n: int) -> Event:
    return Event(tenant, EVENT, {"id": f"suc_{n}", "kind": "order_placed",
                                 "reference": f"bench-{n}"}, f"bench-{n}")


async def _emit_backlog(pool: asyncpg.Pool, tenants: list[uuid.UUID], count: int) -> set[str]:
    events = [_event(tenants[n % len(tenants)], n) for n in range(count)]
    for start in range(0, count, BATCH):
        async with pool.acquire() as conn, conn.transaction():
            await emit_many(conn, events[start:start + BATCH])
    return {e.webhook_id for e in events}


async def _emit_paced(pool: asyncpg.Pool, tenants: list[uuid.UUID], first: int, count: int,
                      rate: float) -> dict[str, float]:
    """One event per transaction at `rate` per second; webhook id -> commit time."""
    committed: dict[str, float] = {}
    began = time.monotonic()
    for n in range(first, first + count):
        await asyncio.sleep(max(0.0, began + (n - first) / rate - time.monotonic()))
        event = _event(tenants[n % len(tenants)], n)
        async with pool.acquire() as conn, conn.transaction():
            await emit_many(conn, [event])
        committed[event.webhook_id] = time.monotonic()
    return committed


async def _check(pool: asyncpg.Pool, receiver: Receiver, expected: set[str]) -> None:
    """Exactly once, validly signed, and the outbox agrees: delivered at the first try."""
    if receiver.wrong:
        raise BenchmarkFailed(f"{len(receiver.wrong)} bad deliveries: {receiver.wrong[:3]}")
    doubled = [mid for mid, times in receiver.arrivals.items() if len(times) > 1]
    missing = expected - set(receiver.arrivals)
    extra = set(receiver.arrivals) - expected
    if doubled or missing or extra:
        raise BenchmarkFailed(f"{len(doubled)} delivered twice, {len(missing)} missing, "
                              f"{len(extra)} unexpected")
    row = await pool.fetchrow(
        "SELECT count(*) AS messages, count(*) FILTER (WHERE status = 'delivered' "
        "AND attempts = 1) AS first_try, (SELECT count(*) FROM webhook_attempts "
        "WHERE status <> 'succeeded') AS failed FROM webhook_messages")
    if row["messages"] != len(expected) or row["first_try"] != len(expected) or row["failed"]:
        raise BenchmarkFailed(f"outbox: {dict(row)} for {len(expected)} events")


async def run(server_url: str, *, events: int = 5000, endpoints: int = 8,
              latency_events: int = 300, latency_rate: float = 50.0,
              pin: bool = False) -> WebhookResult:
    """`pin`: the worker on core 0 and this process (the receiver) on the others."""
    cores = os.sched_getaffinity(0)
    pinned = pin and WORKER_CORE in cores and len(cores) > 1
    if pinned:
        os.sched_setaffinity(0, cores - {WORKER_CORE})
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook/{endpoint}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with scratch_database(server_url, "hooks") as database_url:
            pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
            try:
                return await _measure(pool, database_url, receiver, port, events, endpoints,
                                      latency_events, latency_rate, pinned)
            finally:
                await pool.close()
    finally:
        await runner.cleanup()
        if pinned:
            os.sched_setaffinity(0, cores)


async def _measure(pool: asyncpg.Pool, database_url: str, receiver: Receiver, port: int,
                   events: int, endpoints: int, latency_events: int, latency_rate: float,
                   pinned: bool) -> WebhookResult:
    tenants = await _setup(pool, receiver, port, endpoints)
    backlog = await _emit_backlog(pool, tenants, events)
    worker = await WorkerProcess.start(database_url, WORKER_CORE if pinned else None)
    try:
        cpu_before = await worker.cpu("go")
        started = time.monotonic()
        await receiver.wait(events, timeout_s=120 + events / 50)
        wall_s = max(receiver.arrivals[mid][0] for mid in backlog) - started
        cpu_s = await worker.cpu("mark") - cpu_before
        committed = await _emit_paced(pool, tenants, events, latency_events, latency_rate)
        await receiver.wait(events + latency_events, timeout_s=60)
        await asyncio.sleep(1.0)  # room for a duplicate to show up before the check
    finally:
        await worker.stop()
    await _check(pool, receiver, backlog | set(committed))
    latencies = [(receiver.arrivals[mid][0] - at) * 1000 for mid, at in committed.items()]
    return WebhookResult(events, endpoints, wall_s, cpu_s, latency_events, latency_rate,
                         percentile(latencies, 0.5), percentile(latencies, 0.99), pinned)


# -- the child -----------------------------------------------------------------------------
async def _worker_main(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=0, max_size=10, timeout=5,
                                     command_timeout=30)  # the gateway's pool
    worker = DeliveryWorker(pool, allow_private=True)  # the receiver is on loopback
    task: asyncio.Task[None] | None = None
    print("ready", flush=True)
    try:
        while True:
            command = (await asyncio.to_thread(sys.stdin.readline)).strip()
            if command == "stop" or not command:
                break
            if task is None:
                task = asyncio.create_task(worker.run())
            print(time.process_time(), flush=True)
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        print(time.process_time(), flush=True)
        await pool.close()


# -- the report ----------------------------------------------------------------------------
def section(result: WebhookResult, command_line: str, load: str, when: dt.datetime) -> str:
    placement = ("pinned to core 0; the receiver (this benchmark's process) on the other "
                 "cores" if result.pinned else "not pinned (one core or --no-pin)")
    return "\n".join([
        f"## {HEADING}",
        "",
        f"Command: `{COMMAND}` (`{command_line}`). Run {when:%Y-%m-%d %H:%M} UTC.",
        f"Machine: {machine()}. Load average before the run: {load}.",
        f"The delivery worker (`DeliveryWorker`, the gateway's settings) is one process, "
        f"{placement}; the receiver verifies each signature with `standardwebhooks` and "
        "answers 200.",
        "",
        "| benchmark | figure | target |",
        "| --- | --- | --- |",
        f"| webhook deliveries per worker CPU-second ({result.events:,} events backlogged "
        f"for {result.endpoints} endpoints) | {result.per_cpu_s:,.0f} | |",
        f"| webhook deliveries per wall second | {result.per_s:,.0f} | |",
        f"| emit (commit) to receipt p50 / p99 ms ({result.latency_events:,} events, one per "
        f"transaction, {result.latency_rate:g}/s) | {result.p50_ms:,.0f} / "
        f"{result.p99_ms:,.0f} | |",
        "",
        f"Checked: all {result.events + result.latency_events:,} events arrived exactly once "
        "with a valid signature, each outbox message delivered at its first attempt.",
        "",
        "Notes:",
        f"- At most {MAX_IN_FLIGHT} deliveries are in flight per endpoint; the worker claims "
        "again as soon as one ends, and an emit's NOTIFY wakes it at the commit (the "
        f"{DeliveryWorker.poll_s:g} s poll is only the fallback while its LISTEN connection "
        "is down). The CPU figure is the worker's own cost per delivery (claims, signing, "
        "the request, recording the attempt).",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webhooks",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--endpoints", type=int, default=8)
    parser.add_argument("--latency-events", type=int, default=300)
    parser.add_argument("--latency-rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--output", default="BENCHMARKS.md")
    parser.add_argument("--no-record", action="store_true", help="print only")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # the child: its database URL
    parser.add_argument("--core", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.core is not None:
            os.sched_setaffinity(0, {args.core})
        with contextlib.suppress(ImportError):  # the gateway runs on uvloop
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(_worker_main(args.worker))
        return
    load = load_average()
    servers = LocalServers("VOICEGW_BENCH_REDIS_URL", "VOICEGW_BENCH_DATABASE_URL")
    try:
        result = asyncio.run(run(servers.postgres_url, events=args.events,
                                 endpoints=args.endpoints, latency_events=args.latency_events,
                                 latency_rate=args.latency_rate, pin=not args.no_pin))
    finally:
        servers.close()
    text = section(result, " ".join(["python -m benchmarks.webhooks", *sys.argv[1:]]), load,
                   dt.datetime.now(dt.UTC))
    publish(text, args.output, HEADING, record_it=not args.no_record)


if __name__ == "__main__":
    main()
