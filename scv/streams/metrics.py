"""Prometheus metrics of the stream stages (``scv_`` prefix, base units)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from scv.domain.matching.linker import Linker

EVENTS_IN = Counter("scv_events_in_total", "Messages consumed by a stage.", ["stage"])
EVENTS_OUT = Counter("scv_events_out_total", "Messages produced by a stage.", ["stage", "topic"])
DLQ = Counter("scv_dlq_total", "Events sent to a dead-letter topic.", ["topic", "reason"])
MERGES = Counter("scv_merges_total", "Profiles absorbed into another profile.", ["rule"])
DROPPED = Counter(
    "scv_identifiers_dropped_total", "Identifiers governance refused to link.", ["reason"]
)
SPLITS = Counter("scv_splits_total", "Profiles split (un-merge, ban, generic value).", ["rule"])
UNRESOLVED = Counter("scv_events_unresolved_total", "Events with no usable identifier left.")
ACTIONS = Counter("scv_actions_total", "Actions emitted.", ["type"])
SUPPRESSED = Counter("scv_actions_suppressed_total", "Actions not emitted.", ["type", "reason"])
DUPLICATES = Counter(
    "scv_duplicates_skipped_total",
    "Messages a stage had already applied (repeats after an upstream crash), skipped.",
    ["stage"],
)
RESTORE_SECONDS = Histogram(
    "scv_table_restore_seconds",
    "Time to replay the changelogs of newly assigned table partitions (one per rebalance).",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600),
)
RESTORED = Counter(
    "scv_table_restored_messages_total", "Changelog messages replayed into local tables."
)
READY = Gauge("scv_worker_ready", "1 once assigned partitions are restored, 0 during rebalance.")
RESOLVE_SECONDS = Histogram(
    "scv_resolve_seconds",
    "Time the resolver spends deciding one event.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1),
)


class MatcherCollector(Collector):
    """The probabilistic matcher's decisions and recent per-candidate scoring times.

    Read from the :class:`~scv.domain.matching.linker.Linker` at scrape time, so the pure
    linker needs no Prometheus import. Quantiles are over its last ``TIMINGS`` candidates.
    """

    def __init__(self, linker: Linker) -> None:
        self.linker = linker

    def collect(self) -> Iterator[Metric]:
        decisions = CounterMetricFamily(
            "scv_match_decisions",
            "Probabilistic matcher outcomes (match, possible, non-match, refused, ...).",
            labels=["decision"],
        )
        for decision, count in sorted(self.linker.stats.items()):
            decisions.add_metric([decision], count)
        yield decisions
        timings = sorted(self.linker.timings)
        scoring = GaugeMetricFamily(
            "scv_match_candidate_seconds",
            "Time to score one candidate profile against an event (recent quantiles).",
            labels=["quantile"],
        )
        if timings:
            for q in (0.5, 0.9, 0.99):
                scoring.add_metric(
                    [str(q)], timings[min(len(timings) - 1, int(q * len(timings)))] / 1e9
                )
        yield scoring
