"""Invoice finalization for many tenants: `close_period` over an ended month, and the
upcoming invoice (the running cycle's draft, computed on read) for one tenant.

Setup (not timed): one plan (seed 000's Growth: 20,000.00 setup, 4,950.00 a month,
12.00 per success, TRY); the first tenant subscribes through `subscribe` (real Redis for
its plan-credit grant), the others are bulk-copied with the rows that call writes (the
tenant, its subscription, the cycle's draft invoice); each tenant gets a few successes in
the ended month, the first one a few in the running month too. Timed: `close_period` for
the ended month (one process, the caller's own pool), then many reads of
`upcoming_invoice` for the first tenant.

Checked before a figure is reported: one finalized invoice per tenant, numbers 1..N of
the issuer and year without a gap or a repeat, each total exactly setup + monthly fee +
successes x success fee, and the draft's live success count.

    python -m benchmarks.invoices --tenants 10000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
import uuid
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from benchmarks.common import (
    BenchmarkFailed,
    load_average,
    machine,
    percentile,
    publish,
    scratch_database,
)
from gateway.embedded import LocalServers
from metering.billing.closing import DEFAULT_ISSUER, close_period, invoice_number
from metering.billing.invoices import upcoming_invoice
from metering.billing.periods import Period, period_of
from metering.billing.plans import PlanInput, create_plan
from metering.billing.subscriptions import subscribe
from metering.credit_store import CreditStore

HEADING = "Invoice finalization"
COMMAND = "make bench-invoices"
PLAN = PlanInput(id="growth", name="Growth", currency="TRY", setup_fee="20000.00",
                 monthly_fee="4950.00", success_fee="12.00", included_credits=150_000,
                 credit_rollover=True)
SETUP_FEE, MONTHLY_FEE, SUCCESS_FEE = 2_000_000, 495_000, 1_200  # kuruş (TRY, exponent 2)
RUNNING_SUCCESSES = 5  # the first tenant's successes in the running month


@dataclass(frozen=True)
class InvoiceResult:
    tenants: int
    successes_each: int
    close_s: float
    close_cpu_s: float  # of this process, the closer (the rest is PostgreSQL and waiting)
    setup_s: float
    reads: int
    upcoming_p50_ms: float
    upcoming_p99_ms: float

    @property
    def per_s(self) -> float:
        return self.tenants / self.close_s


async def _copy_tenants(pool: asyncpg.Pool, store: CreditStore, count: int, period: Period,
                        successes: int) -> uuid.UUID:
    """`count` subscribed tenants with `successes` each in `period`; the first one's id."""
    subscribed_at = period.start + dt.timedelta(hours=1)
    await create_plan(pool, PLAN, now=period.start)
    first = uuid.uuid4()
    await pool.execute("INSERT INTO tenants (id, name, api_key_hash) VALUES ($1, 'bench 0', $2)",
                       first, first.bytes)
    await subscribe(pool, store, tenant_id=first, plan_id=PLAN.id, now=subscribed_at)
    model = await pool.fetchrow("SELECT * FROM invoices WHERE tenant_id = $1", first)
    sub = await pool.fetchrow("SELECT * FROM subscriptions WHERE tenant_id = $1", first)
    others = [uuid.uuid4() for _ in range(count - 1)]
    async with pool.acquire() as conn, conn.transaction():
        await conn.copy_records_to_table(
            "tenants", columns=["id", "name", "api_key_hash"],
            records=[(t, f"bench {n}", t.bytes) for n, t in enumerate(others, start=1)])
        await conn.copy_records_to_table(
            "subscriptions",
            columns=["tenant_id", "plan_id", "current_from", "started_on", "updated_at"],
            records=[(t, sub["plan_id"], sub["current_from"], sub["started_on"],
                      sub["updated_at"]) for t in others])
        await conn.copy_records_to_table(
            "invoices", columns=["id", "tenant_id", "period", "plan_id", "plan_version",
                                 "starts_on", "first_cycle", "currency", "created_at"],
            records=[(uuid.uuid4(), t, model["period"], model["plan_id"], model["plan_version"],
                      model["starts_on"], model["first_cycle"], model["currency"],
                      model["created_at"]) for t in others])
        await conn.copy_records_to_table(
            "success_events", columns=["event_id", "tenant_id", "session_id", "channel", "kind",
                                       "record_id", "occurred_at", "source", "recorded_at"],
            records=_successes([first, *others], successes, subscribed_at))
    return first


def _successes(tenants: list[uuid.UUID], each: int, after: dt.datetime,
               step: dt.timedelta = dt.timedelta(days=1)) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for tenant in tenants:
        for k in range(each):
            at = after + step * (k + 1)
            rows.append((f"suc_{uuid.uuid4().hex}", tenant, f"call-{tenant.hex[:8]}-{k}",
                         "voice", "appointment_booked", uuid.uuid4(), at, "agent", at))
    return rows


async def _check_closed(pool: asyncpg.Pool, period: Period, tenants: int, successes: int,
                        finalized: int, year: int) -> None:
    if finalized != tenants:
        raise BenchmarkFailed(f"close_period finalized {finalized} invoices for {tenants}")
    expected = SETUP_FEE + MONTHLY_FEE + successes * SUCCESS_FEE
    row = await pool.fetchrow(
        "SELECT count(*) AS invoices, count(*) FILTER (WHERE status = 'finalized') AS final, "
        "count(*) FILTER (WHERE total = $2 AND successes = $3) AS exact, "
        "count(DISTINCT tenant_id) AS tenants FROM invoices WHERE period = $1",
        period.first_day, expected, successes)
    if not row["invoices"] == row["final"] == row["exact"] == row["tenants"] == tenants:
        raise BenchmarkFailed(f"invoices of {period}: {dict(row)}; expected {tenants} "
                              f"finalized at {expected} minor units each")
    numbers = sorted(await pool.fetchval(
        "SELECT array_agg(number) FROM invoices WHERE period = $1", period.first_day))
    wanted = [invoice_number(DEFAULT_ISSUER, year, n) for n in range(1, tenants + 1)]
    if numbers != wanted:
        gaps = sorted(set(wanted) - set(numbers))[:3]
        raise BenchmarkFailed(f"invoice numbers not 1..{tenants} without gaps (missing "
                              f"{gaps}, {len(numbers)} numbers)")


async def _time_upcoming(pool: asyncpg.Pool, tenant: uuid.UUID, reads: int,
                         now: dt.datetime) -> list[float]:
    draft = await upcoming_invoice(pool, tenant_id=tenant, now=now)  # opens the cycle
    if draft.successes != RUNNING_SUCCESSES or draft.number is not None:
        raise BenchmarkFailed(f"the upcoming draft bills {draft.successes} successes, "
                              f"not {RUNNING_SUCCESSES}")
    timings = []
    for _ in range(reads):
        began = time.perf_counter()
        await upcoming_invoice(pool, tenant_id=tenant, now=now)
        timings.append((time.perf_counter() - began) * 1000)
    return timings


async def run(redis_url: str, server_url: str, *, tenants: int = 10_000, successes: int = 3,
              reads: int = 500) -> InvoiceResult:
    now = dt.datetime.now(dt.UTC)
    ended = period_of(now).previous()
    prefix = f"vgwbench:{uuid.uuid4().hex[:8]}:"
    redis = aioredis.Redis.from_url(redis_url)
    try:
        async with scratch_database(server_url, "inv") as database_url:
            pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
            try:
                began = time.perf_counter()
                first = await _copy_tenants(pool, CreditStore(redis, prefix), tenants, ended,
                                            successes)
                await pool.copy_records_to_table(
                    "success_events", columns=["event_id", "tenant_id", "session_id",
                                               "channel", "kind", "record_id", "occurred_at",
                                               "source", "recorded_at"],
                    records=_successes([first], RUNNING_SUCCESSES, period_of(now).start,
                                       step=(now - period_of(now).start) / 10))
                await pool.execute("ANALYZE")  # as autovacuum would after a bulk load
                setup_s = time.perf_counter() - began
                began, cpu = time.perf_counter(), time.process_time()
                closed = await close_period(pool, period=ended, now=now)
                close_s, close_cpu_s = time.perf_counter() - began, time.process_time() - cpu
                await _check_closed(pool, ended, tenants, successes, len(closed.finalized),
                                    now.year)
                timings = await _time_upcoming(pool, first, reads, now)
            finally:
                await pool.close()
    finally:
        async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
            await redis.delete(key)
        await redis.aclose()
    return InvoiceResult(tenants, successes, close_s, close_cpu_s, setup_s, reads,
                         percentile(timings, 0.5), percentile(timings, 0.99))


def section(result: InvoiceResult, command_line: str, load: str, when: dt.datetime) -> str:
    return "\n".join([
        f"## {HEADING}",
        "",
        f"Command: `{COMMAND}` (`{command_line}`). Run {when:%Y-%m-%d %H:%M} UTC.",
        f"Machine: {machine()}. Load average before the run: {load}.",
        f"{result.tenants:,} tenants on one plan (setup, monthly and success fees), "
        f"{result.successes_each} successes each in the ended month; `close_period` runs in "
        "this one process (not pinned), one tenant after another, on a pool of 4 "
        "connections. Setup (bulk COPY, not timed) took "
        f"{result.setup_s:,.1f} s.",
        "",
        "| benchmark | figure | target |",
        "| --- | --- | --- |",
        f"| close_period, {result.tenants:,} tenants, seconds | {result.close_s:,.1f} | |",
        f"| close_period, invoices finalized per second | {result.per_s:,.0f} | |",
        f"| close_period, CPU seconds of the closing process (the rest is PostgreSQL and "
        f"round trips) | {result.close_cpu_s:,.1f} | |",
        f"| upcoming_invoice (draft computed on read) p50 / p99 ms ({result.reads:,} reads) | "
        f"{result.upcoming_p50_ms:,.2f} / {result.upcoming_p99_ms:,.2f} | |",
        "",
        f"Checked: {result.tenants:,} finalized invoices, numbers 1..{result.tenants:,} "
        "without a gap, each total exactly setup + monthly + successes x success fee; the "
        "draft counts the running month's successes.",
        "",
        "Notes:",
        "- Each tenant is closed in two transactions (opening any missing cycle, then the "
        "finalization that holds the issuer's number counter until its commit, which is what "
        "keeps numbers gapless), so a run is about two synchronous commits and a dozen "
        "round trips per invoice, one tenant after another.",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.invoices",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--successes", type=int, default=3, help="per tenant")
    parser.add_argument("--reads", type=int, default=500, help="upcoming_invoice reads")
    parser.add_argument("--output", default="BENCHMARKS.md")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    load = load_average()
    servers = LocalServers("VOICEGW_BENCH_REDIS_URL", "VOICEGW_BENCH_DATABASE_URL")
    try:
        result = asyncio.run(run(servers.redis_url, servers.postgres_url, tenants=args.tenants,
                                 successes=args.successes, reads=args.reads))
    finally:
        servers.close()
    text = section(result, " ".join(["python -m benchmarks.invoices", *sys.argv[1:]]), load,
                   dt.datetime.now(dt.UTC))
    publish(text, args.output, HEADING, record_it=not args.no_record)


if __name__ == "__main__":
    main()
