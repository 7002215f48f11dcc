"""The Grafana dashboard under deploy/ is valid JSON and asks only for series the gateway
exports."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.state import METRICS
from tests.gateway.helpers import make_settings

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "voicegw.json"


def _exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr":
                yield str(value)
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item)


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads: identifiers left once strings, label
    matchers, ranges and `by (...)` lists are gone, other than functions and operators."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[match.end():].lstrip().startswith("(") or match.group() in ("or", "and",
                                                                             "unless"):
            continue
        names.add(match.group())
    return names


def test_metric_names_reads_promql() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, route) (rate('
            'voicegw_http_request_duration_seconds_bucket{status=~"5.."}[$__rate_interval])))'
            ' or vector(0) + max(voicegw_outbox_entries)')
    assert metric_names(expr) == {"voicegw_http_request_duration_seconds_bucket",
                                  "voicegw_outbox_entries"}


async def test_every_expression_names_only_exported_metrics(
    aiohttp_client: ClientFactory, redis_url: str, database_url: str, key_prefix: str
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    client = await aiohttp_client(create_app(make_settings(redis_url, database_url,
                                                           key_prefix)))
    exported = client.app[METRICS].sample_names()
    exprs = list(_exprs(dashboard["panels"]))
    assert len(exprs) >= 10
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= exported, f"{expr!r} reads {sorted(names - exported)}"
        used |= names
    # What the issue asks the dashboard to show.
    for wanted in ("voicegw_http_requests_total", "voicegw_http_request_duration_seconds_bucket",
                   "voicegw_active_calls", "voicegw_call_turn_latency_seconds_bucket",
                   "voicegw_credit_control_duration_seconds_bucket", "voicegw_outbox_entries",
                   "voicegw_outbox_oldest_age_seconds", "voicegw_tool_failures_total",
                   "voicegw_redis_errors_total", "voicegw_postgres_errors_total"):
        assert wanted in used, wanted
    assert {panel["id"] for panel in dashboard["panels"]} == set(
        range(1, len(dashboard["panels"]) + 1))
