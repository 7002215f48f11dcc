"""The webhook and invoice benchmarks in tiny configurations: they run end to end on real
PostgreSQL and Redis and validate what they measured (no speed is asserted), so the
benchmark code cannot rot; and their checks refuse a run that lost or doubled anything."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from benchmarks import invoices, webhooks
from benchmarks.common import BenchmarkFailed, record
from tests.servers import TestServers


async def test_webhook_benchmark_delivers_each_event_once(servers: TestServers) -> None:
    result = await webhooks.run(servers.postgres_url, events=50, endpoints=5,
                                latency_events=10, latency_rate=50.0)
    assert (result.events, result.latency_events) == (50, 10)  # checked exactly once inside
    assert result.worker_cpu_s > 0 and result.per_cpu_s > 0
    assert 0 < result.p50_ms <= result.p99_ms


async def test_invoice_benchmark_finalizes_gapless(servers: TestServers) -> None:
    result = await invoices.run(servers.redis_url, servers.postgres_url, tenants=50,
                                successes=2, reads=5)
    assert result.tenants == 50 and result.close_s > 0  # gapless numbers checked inside
    assert 0 < result.upcoming_p50_ms <= result.upcoming_p99_ms


async def test_webhook_check_refuses_doubled_or_missing(pg_pool: asyncpg.Pool) -> None:
    doubled = webhooks.Receiver()
    doubled.arrivals["msg_a"] += [1.0, 2.0]
    with pytest.raises(BenchmarkFailed, match="1 delivered twice"):
        await webhooks._check(pg_pool, doubled, {"msg_a"})
    missing = webhooks.Receiver()
    missing.arrivals["msg_a"].append(1.0)
    with pytest.raises(BenchmarkFailed, match="1 missing"):
        await webhooks._check(pg_pool, missing, {"msg_a", "msg_b"})
    badly_signed = webhooks.Receiver(wrong=["msg_a: bad signature"])
    with pytest.raises(BenchmarkFailed, match="1 bad deliveries"):
        await webhooks._check(pg_pool, badly_signed, set())


def test_record_keeps_other_sections_and_analysis(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\ntop\n\n## Invoice finalization\n\nold figures\n\n"
                    "### Analysis\n\nby hand\n\n## Phone calls\n\ncalls\n")
    record(path, "Invoice finalization", "## Invoice finalization\n\nnew figures\n")
    text = path.read_text()
    assert "old figures" not in text and "new figures" in text
    assert text.index("new figures") < text.index("by hand") < text.index("## Phone calls")
    assert text.startswith("# Benchmarks\n\ntop\n") and text.endswith("calls\n")
    record(path, "Webhook deliveries", "## Webhook deliveries\n\nhooks\n")
    assert path.read_text().endswith("calls\n\n## Webhook deliveries\n\nhooks\n")
