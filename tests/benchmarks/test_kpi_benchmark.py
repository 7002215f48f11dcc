"""The KPI benchmark in a tiny configuration, end to end (seeding in PostgreSQL, the
rebuild, settlements through the triggers, a gateway process answering over HTTP): its own
check compares the answer with a direct count, so the benchmark code cannot rot."""

from __future__ import annotations

import datetime as dt

from benchmarks import kpis
from tests.servers import TestServers


async def test_kpi_benchmark_answers_what_the_table_holds(servers: TestServers) -> None:
    result = await kpis.run(servers.redis_url, servers.postgres_url, conversations=3000,
                            requests=5, settled=20)
    assert (result.conversations, result.requests, result.settled) == (3000, 5, 20)
    assert 0 < result.p50_ms <= result.p95_ms <= result.p99_ms
    assert result.settle_ms > 0 and result.filtered_p95_ms > 0
    text = kpis.section(result, "python -m benchmarks.kpis", "0 / 0 / 0",
                        dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    assert text.startswith("## KPIs\n") and "p95 < 200" in text
