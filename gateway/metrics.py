"""A small Prometheus text-format registry: counters and gauges with labels.

Small enough to own (no client library, no global registry): each app holds its own
`Metrics`, so tests and several apps in one process never share counters.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass
class Family:
    name: str
    help: str
    kind: str  # "counter" | "gauge"
    values: dict[Labels, float] = field(default_factory=lambda: defaultdict(float))

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self.values[tuple(sorted(labels.items()))] += amount

    def set(self, value: float, **labels: str) -> None:
        self.values[tuple(sorted(labels.items()))] = value

    def get(self, **labels: str) -> float:
        return self.values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        if not self.values and self.kind == "gauge":
            lines.append(f"{self.name} 0")
        for labels, value in sorted(self.values.items()):
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            shown = int(value) if float(value).is_integer() else value
            lines.append(f"{self.name}{{{text}}} {shown}" if text else f"{self.name} {shown}")
        return lines


class Metrics:
    """The gateway's metrics; new families may be added by any component at wiring time."""

    def __init__(self) -> None:
        self.families: dict[str, Family] = {}
        self.active_calls = self.gauge("voicegw_active_calls", "Phone calls in progress")
        self.http_requests = self.counter(
            "voicegw_http_requests_total", "HTTP requests by route and status"
        )
        self.redis_errors = self.counter("voicegw_redis_errors_total", "Failed Redis operations")
        self.postgres_errors = self.counter(
            "voicegw_postgres_errors_total", "Failed PostgreSQL operations"
        )
        self.tool_failures = self.counter(
            "voicegw_tool_failures_total",
            "Agent tool calls whose record could not be saved, by tool and channel",
        )
        self.replays = self.counter(
            "voicegw_replays_total",
            "Replayed webhooks, media streams and credit sessions refused, by channel and stage",
        )

    def counter(self, name: str, help_text: str) -> Family:
        return self.families.setdefault(name, Family(name, help_text, "counter"))

    def gauge(self, name: str, help_text: str) -> Family:
        return self.families.setdefault(name, Family(name, help_text, "gauge"))

    def render(self) -> str:
        lines: list[str] = []
        for family in self.families.values():
            lines.extend(family.render())
        return "\n".join(lines) + "\n"
