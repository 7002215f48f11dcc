"""The gateway's Prometheus metrics, on `prometheus_client`.

Each app holds its own `Metrics` with its own `CollectorRegistry` (never the library's
global one), so tests and several apps in one process never share counts.

Under `voicegw serve --workers N` the parent makes a private directory before forking
(`multiprocess_dir`); each worker then keeps its values in memory-mapped files there and
a scrape of any worker reads all of them (`MultiProcessCollector`): one scrape shows the
sum of all workers. Gauges say how workers combine (`livesum`: add the live workers'
values; `livemax`: the largest, for values every worker sees alike). docs/operations.md
lists every metric.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from typing import Literal, TypeVar

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.metrics import MetricWrapperBase

# The classic text format, which every Prometheus version reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

GaugeMode = Literal["livesum", "livemax", "livemin", "sum", "max", "min", "all", "liveall"]
M = TypeVar("M", bound=MetricWrapperBase)

HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TURN_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0)
REDIS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

# `_created` series are not written by multiprocess mode: leave them out in both modes so
# a scrape looks the same whatever the worker count.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """Every family the gateway exports; components may add more at wiring time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.families: dict[str, MetricWrapperBase] = {}
        self.active_calls = self.gauge("voicegw_active_calls", "Phone calls in progress")
        self.live_streams = self.gauge(
            "voicegw_live_streams", "Open dashboard event streams (GET /v1/live)")
        self.calls_refused = self.counter(
            "voicegw_calls_refused_total", "Phone calls answered \"all lines busy\", by why "
            "(max_calls, lag, cpu, draining)", ["reason"])
        self.http_requests = self.counter(
            "voicegw_http_requests_total", "HTTP requests by route template and status",
            ("route", "status"))
        self.http_duration = self.histogram(
            "voicegw_http_request_duration_seconds",
            "Time to answer an HTTP request (webhooks included), by route template",
            ("route",), buckets=HTTP_BUCKETS)
        self.redis_errors = self.counter(
            "voicegw_redis_errors_total", "Failed Redis operations", ("op",))
        self.postgres_errors = self.counter(
            "voicegw_postgres_errors_total", "Failed PostgreSQL operations", ("op",))
        self.tool_failures = self.counter(
            "voicegw_tool_failures_total",
            "Agent tool calls whose record could not be saved, by tool and channel",
            ("channel", "tool"))
        self.messages = self.counter(
            "voicegw_messages_total", "Inbound messages answered, by channel and outcome",
            ("channel", "outcome"))
        self.message_jobs = self.counter(
            "voicegw_message_jobs_total",
            "Background message jobs finished, by outcome (done, failed: raised)", ("outcome",))
        self.turn_latency = self.histogram(
            "voicegw_call_turn_latency_seconds",
            "Per call turn: end of the caller's speech to the agent's first audio sent",
            buckets=TURN_BUCKETS)
        self.credit_duration = self.histogram(
            "voicegw_credit_control_duration_seconds",
            "Credit-control script calls on Redis (reserve, update, record, terminate, "
            "charge, ...), by operation", ("op",), buckets=REDIS_BUCKETS)
        self.sink_batches = self.counter(
            "voicegw_sink_batches_total", "Outbox batches the sink committed to PostgreSQL")
        self.sink_events = self.counter(
            "voicegw_sink_events_total", "Outbox events the sink wrote (one ledger row each)")
        self.sink_claimed = self.counter(
            "voicegw_sink_claimed_total", "Outbox events claimed from a consumer that died")
        self.sink_failures = self.counter(
            "voicegw_sink_failures_total", "Sink passes that failed (events stay in Redis)")
        self.outbox_entries = self.gauge(
            "voicegw_outbox_entries", "Billable events waiting in the outbox streams",
            mode="livemax")
        self.outbox_oldest_age = self.gauge(
            "voicegw_outbox_oldest_age_seconds",
            "Age of the oldest event waiting in the outbox streams (0 when none wait)",
            mode="livemax")
        self.connections_closed = self.counter(
            "voicegw_connections_closed_total",
            "Client connections the gateway closed, by reason: idle, header_timeout, "
            "per_address_cap", ("reason",))
        self.open_connections = self.gauge(
            "voicegw_open_connections", "Client connections open (summed over workers)")
        self.replays = self.counter(
            "voicegw_replays_total",
            "Replayed webhooks, media streams and credit sessions refused, by channel and stage",
            ("channel", "stage"))
        self.unsent = self.counter(
            "voicegw_message_replies_unsent_total",
            "Replies not sent, by channel and reason (insufficient_credit: the balance cannot "
            "pay for one)", ("channel", "reason"))

    # -- making families ---------------------------------------------------------------
    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Counter:
        """A counter (the name ends in `_total`); the same one again if it exists."""
        return self._family(Counter, name, labels) or self._add(
            name, Counter(name, help_text, labels, registry=self.registry))

    def gauge(self, name: str, help_text: str, labels: Sequence[str] = (), *,
              mode: GaugeMode = "livesum") -> Gauge:
        """A gauge; `mode` says how the values of several workers combine."""
        return self._family(Gauge, name, labels) or self._add(
            name, Gauge(name, help_text, labels, registry=self.registry, multiprocess_mode=mode))

    def histogram(self, name: str, help_text: str, labels: Sequence[str] = (), *,
                  buckets: Sequence[float] = HTTP_BUCKETS) -> Histogram:
        """A histogram in seconds (the name ends in `_seconds`)."""
        return self._family(Histogram, name, labels) or self._add(
            name, Histogram(name, help_text, labels, registry=self.registry, buckets=buckets))

    def _family(self, kind: type[M], name: str, labels: Sequence[str]) -> M | None:
        found = self.families.get(name)
        if found is None:
            return None
        if not isinstance(found, kind) or found._labelnames != tuple(labels):
            raise ValueError(f"metric {name} exists with another type or other labels")
        return found

    def _add(self, name: str, family: M) -> M:
        self.families[name] = family
        return family

    # -- reading -------------------------------------------------------------------------
    def render(self) -> bytes:
        """The text a scrape gets: this app's registry, or every worker's files."""
        if multiprocess_enabled():
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged)
        return generate_latest(self.registry)

    def sample_names(self) -> set[str]:
        """Every series name a scrape may show (for checks of dashboards and docs)."""
        return {sample.name for family in self.registry.collect()
                for sample in family.samples} | {
            f"{metric._name}{suffix}" for metric in self.families.values()
            for suffix in _SUFFIXES.get(metric._type or "", ())}


_SUFFIXES = {"counter": ("_total",), "gauge": ("",),
             "histogram": ("_bucket", "_count", "_sum")}


def multiprocess_enabled() -> bool:
    """Whether values live in files shared by the workers (chosen before any metric)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


@contextlib.contextmanager
def multiprocess_dir() -> Iterator[str]:
    """Turns on multiprocess mode in a fresh private directory, for the workers about to
    be forked; removes the directory at exit. `prometheus_client` picks its value class
    when it is imported, from `PROMETHEUS_MULTIPROC_DIR`: pick it again here, so the
    mode holds whatever was imported before. A directory set by the user is replaced:
    files of an earlier run would add to this one's counts."""
    path = tempfile.mkdtemp(prefix="voicegw-metrics-")
    before = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = path
    _choose_value_class()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if before is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = before
        _choose_value_class()


def _choose_value_class() -> None:
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def worker_exited(pid: int, path: str) -> None:
    """Drops a dead worker's live gauges (its counters stay: totals never go down)."""
    multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
