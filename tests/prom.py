"""Reading a /metrics scrape in tests: one sample's value, by name and labels."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the series `name{labels}` in a scrape, or None if it is not there."""
    return samples(text).get((name, frozenset(labels.items())))


def count(metric: Collector, **labels: str) -> float:
    """A counter's current value for one label set (0 when never counted), read through the
    collector interface a scrape uses."""
    for family in metric.collect():
        for sample_ in family.samples:
            if sample_.name.endswith("_total") and sample_.labels == labels:
                return float(sample_.value)
    return 0.0
