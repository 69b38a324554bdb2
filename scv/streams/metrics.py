"""Prometheus metrics of the stream stages (``scv_`` prefix, base units)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
RESOLVE_SECONDS = Histogram(
    "scv_resolve_seconds",
    "Time the resolver spends deciding one event.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1),
)
