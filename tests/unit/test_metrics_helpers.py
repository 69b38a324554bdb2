"""Metric helpers: bounded DLQ reason labels and the cheap per-event histogram."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scv.streams.metrics import BucketHistogram, reason_class


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("invalid_json", "invalid_json"),
        ("schema: data.email must match pattern", "schema"),
        ("internal: KeyError", "internal"),
        ("invalid_identifier:phone", "invalid_identifier"),
        ("command: unknown profile p_1", "command"),
        # anything that could carry input becomes "other"
        ("jane@acme.example: bad", "other"),
        ("Unknown Profile p_123", "other"),
        ("x" * 40, "other"),
        ("", "other"),
    ],
)
def test_reason_class_is_a_code_word_or_other(reason: str, label: str) -> None:
    assert reason_class(reason) == label


def test_bucket_histogram_matches_prometheus_histogram() -> None:
    """Same observations, same exposition as prometheus_client's own Histogram."""
    bounds = (0.001, 0.01, 0.1)
    values = [0.0005, 0.001, 0.002, 0.05, 0.1, 0.7, 3.0]
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = BucketHistogram("scv_t_seconds", "t", bounds)
    ours_registry.register(ours)
    theirs = Histogram("scv_t_seconds", "t", buckets=bounds, registry=theirs_registry)
    for v in values:
        ours.observe(v)
        theirs.observe(v)

    def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
        text = generate_latest(registry).decode()
        return {
            (s.name, s.labels.get("le", "")): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if not s.name.endswith("_created")
        }

    got = samples(ours_registry)
    assert got == pytest.approx(samples(theirs_registry))
    assert got[("scv_t_seconds_bucket", "0.001")] == 2  # le is inclusive
    assert got[("scv_t_seconds_bucket", "+Inf")] == got[("scv_t_seconds_count", "")] == 7
