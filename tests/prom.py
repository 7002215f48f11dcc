"""Reading a /metrics scrape in tests: one sample's value, by name and labels."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the series `name{labels}` in a scrape, or None if it is not there."""
    return samples(text).get((name, frozenset(labels.items())))
