"""`voicegw serve --workers 2` as a real process: requests spread over both workers, and
one scrape of /metrics shows the sum of both."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from gateway.embedded import free_port
from tests.gateway.helpers import ADMIN_TOKEN, TWILIO_AUTH_TOKEN
from tests.prom import sample

DEADLINE_S = 25.0


@dataclass
class Served:
    base: str
    tmp: Path  # the parent makes its metrics directory in here (TMPDIR)
    process: asyncio.subprocess.Process

    def metrics_dirs(self) -> list[Path]:
        return sorted(self.tmp.glob("voicegw-metrics-*"))

    def healthz_per_worker(self) -> dict[str, float]:
        """What each worker's own file counts for /healthz, by the file's pid."""
        counted: dict[str, float] = {}
        for directory in self.metrics_dirs():
            for path in directory.glob("counter_*.db"):
                pid = path.stem.removeprefix("counter_")
                families = MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
                counted[pid] = sum(s.value for family in families for s in family.samples
                                   if s.name == "voicegw_http_requests_total"
                                   and s.labels.get("route") == "/healthz")
        return counted


@pytest.fixture
async def two_workers(redis_url: str, database_url: str, key_prefix: str,
                      tmp_path: Path) -> AsyncIterator[Served]:
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path),
           "VOICEGW_REDIS_URL": redis_url, "VOICEGW_DATABASE_URL": database_url,
           "VOICEGW_REDIS_PREFIX": key_prefix, "VOICEGW_PUBLIC_URL": "https://gw.test",
           "VOICEGW_ADMIN_TOKEN": ADMIN_TOKEN, "VOICEGW_TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
           "VOICEGW_TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "VOICEGW_MIGRATE_ON_START": "false",
           "VOICEGW_SHUTDOWN_GRACE_S": "1", "VOICEGW_HOST": "127.0.0.1",
           "VOICEGW_PORT": str(port), "VOICEGW_LOG_LEVEL": "WARNING"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "serve", "--workers", "2", env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
    try:
        yield Served(f"http://127.0.0.1:{port}", tmp_path, process)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)  # the parent passes it on to its workers
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)  # the session the test made
                await process.wait()


async def _healthz_on_a_fresh_connection(base: str) -> bool:
    """A new connection each time: SO_REUSEPORT picks a worker per connection."""
    connector = aiohttp.TCPConnector(force_close=True)
    try:
        async with aiohttp.ClientSession(connector=connector) as http, \
                http.get(f"{base}/healthz") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False  # no worker listening yet


async def test_one_scrape_shows_the_sum_of_both_workers(two_workers: Served) -> None:
    deadline = time.monotonic() + DEADLINE_S
    sent = 0
    # Until each worker's own file has counted some requests (both are up and served).
    while True:
        assert time.monotonic() < deadline, f"both workers never served: {sent} sent"
        if await _healthz_on_a_fresh_connection(two_workers.base):
            sent += 1
        else:
            await asyncio.sleep(0.1)
        per_worker = two_workers.healthz_per_worker()
        if sent >= 20 and len(per_worker) == 2 and all(per_worker.values()):
            break
    (directory,) = two_workers.metrics_dirs()
    assert sum(per_worker.values()) == sent

    async with aiohttp.ClientSession() as http, \
            http.get(f"{two_workers.base}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    assert sample(text, "voicegw_http_requests_total", route="/healthz", status="200") == sent
    assert sample(text, "voicegw_http_request_duration_seconds_count", route="/healthz") == sent
    assert sample(text, "voicegw_http_request_duration_seconds_bucket",
                  route="/healthz", le="+Inf") == sent
    assert sample(text, "voicegw_http_request_duration_seconds_bucket",
                  route="/healthz", le="10.0") == sent
    assert sample(text, "voicegw_active_calls") == 0  # livesum over live workers
    # A histogram without labels shows its buckets before anything was observed.
    assert sample(text, "voicegw_call_turn_latency_seconds_bucket", le="1.0") == 0
    assert sample(text, "voicegw_call_turn_latency_seconds_count") == 0

    two_workers.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(two_workers.process.wait(), 15) == 0
    assert not directory.exists()  # the parent removed its metrics directory
