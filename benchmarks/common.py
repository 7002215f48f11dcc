"""What the benchmarks share: a scratch database and Redis prefix, waiting for a gateway
child to be ready, the machine and its load, percentiles, and writing one's own section
of BENCHMARKS.md (the way `make bench-calls` writes "## Phone calls": the other sections
and a hand-written "### Analysis" at the end of ours are kept)."""

from __future__ import annotations

import asyncio
import math
import os
import platform
import subprocess
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import asyncpg
import redis.asyncio as aioredis

from load.bench_report import record as write_section
from metering.migrate import migrate_url


class BenchmarkFailed(Exception):
    """The run did not do what it measured (a delivery lost, doubled or badly signed; an
    invoice missing or a number skipped): no figure is reported."""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    return (f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            "Redis and PostgreSQL on the same host (loopback)")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty sample."""
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


@asynccontextmanager
async def scratch_database(server_url: str, label: str) -> AsyncIterator[str]:
    """A fresh, migrated database of the run's own, dropped afterwards."""
    name = f"vgw_bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = server_url.rsplit("/", 1)[0] + "/" + name
        try:
            await migrate_url(url)
            yield url
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def record(path: Path, heading: str, section: str) -> None:
    """Writes `section` in place of our earlier `## {heading}` (see load.bench_report)."""
    write_section(path, section, heading)


def publish(text: str, output: str, heading: str, *, record_it: bool) -> None:
    """Prints a benchmark's section and, unless told not to, records it."""
    print(text)
    if record_it:
        record(Path(output), heading, text)
        print(f"recorded in {output}")


async def drop_redis_prefix(redis_url: str, prefix: str) -> None:
    """Deletes a run's Redis keys (only ours: the prefix is new to the run)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            await client.delete(key)
    finally:
        await client.aclose()


async def wait_ready(http: aiohttp.ClientSession, base: str,
                     gateway: subprocess.Popen[bytes]) -> None:
    """Until the gateway child answers /readyz 200 (30 s); it exiting first is an error."""
    for _ in range(300):
        if gateway.poll() is not None:
            raise RuntimeError("the gateway exited at start")
        try:
            async with http.get(f"{base}/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the gateway did not become ready")
