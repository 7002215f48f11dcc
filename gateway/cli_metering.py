"""`voicegw sink` and `voicegw reconcile`: the metering commands of the CLI."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

import asyncpg

from gateway.config import ConfigError, Settings, load_settings
from gateway.stores import redis_client
from metering.credit_store import CreditStore
from metering.reconcile import reconcile
from metering.sink import Sink

STORES = ("redis_url", "database_url")  # all these commands need


def command_settings() -> Settings:
    try:
        return load_settings(required=STORES)
    except ConfigError as exc:
        print("voicegw: configuration problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(2) from None


async def _sink_main(consumer: str | None) -> None:
    settings = command_settings()
    redis = redis_client(settings.redis_url)
    pool = await asyncpg.create_pool(settings.database_url, min_size=0, max_size=4)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        sink = Sink(redis, pool, settings.redis_prefix)
        if consumer:
            sink.consumer = consumer
        print(f"voicegw sink: consumer {sink.consumer} draining", flush=True)
        await sink.run(stop)
    finally:
        await pool.close()
        await redis.aclose()


async def drain(sink: Sink, max_passes: int = 10_000) -> int:
    """Runs sink passes until one finds nothing more to write."""
    total = 0
    for _ in range(max_passes):
        written = await sink.drain()
        total += written
        if written == 0:
            break
    return total


async def _reconcile_main(repair: bool) -> int:
    settings = command_settings()
    redis = redis_client(settings.redis_url)
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    assert pool is not None
    try:
        drained = await drain(Sink(redis, pool, settings.redis_prefix))
        store = CreditStore(redis, settings.redis_prefix)
        differences = await reconcile(pool, store, repair=repair)
    finally:
        await pool.close()
        await redis.aclose()
    print(f"drained {drained} outbox events first")
    for difference in differences:
        print(difference)
    if not differences:
        print("Redis and the ledger agree for every tenant")
        return 0
    refused = [d for d in differences if d.refused]
    if refused:  # nothing written for these tenants: an operator must look
        print(f"{len(differences)} differences, {len(refused)} NOT repaired: the ledger "
              "holds values an account cannot store")
        return 1
    print(f"{len(differences)} differences" + (" repaired from the ledger" if repair else ""))
    return 0 if repair else 1


def cmd_sink(args: argparse.Namespace) -> int:
    asyncio.run(_sink_main(args.consumer))
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    return asyncio.run(_reconcile_main(args.repair))


def add_metering_commands(commands: Any) -> None:
    sink = commands.add_parser(
        "sink", help="run the outbox sink alone (Redis streams -> PostgreSQL)",
        description="Write billable events from the Redis outbox streams into PostgreSQL, "
        "once each, until stopped. Any number may run beside the gateways.")
    sink.add_argument(
        "--consumer", help="consumer name in the group (default: host and a random suffix); "
        "a sink restarted under the same name resumes its own pending entries at once, "
        "others are claimed by any sink after 30 s")
    sink.set_defaults(func=cmd_sink)
    rec = commands.add_parser(
        "reconcile", help="compare each tenant's Redis balance with the ledger",
        description="Drain the outbox, then compare each tenant's live balance in Redis "
        "with the ledger (top-ups - settled usage - open reservations) and print every "
        "difference. Exit status 1 when differences remain.")
    rec.add_argument("--repair", action="store_true",
                     help="rebuild differing tenants in Redis from the ledger")
    rec.set_defaults(func=cmd_reconcile)
