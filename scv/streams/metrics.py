"""Prometheus metrics of the worker (``scv_`` prefix, base units: seconds, messages).

Cost rules, because the loop runs at ~10k events/s on one core: no label lookup per event
(stages count a batch and increment once per label), no per-message Prometheus histogram
(``BucketHistogram`` is a bisect and a list increment, about a tenth of
``Histogram.observe``), and nothing that asks the broker (consumer lag comes from the
client's own statistics every few seconds). Label values are bounded: stage names, topic names,
rule and reason *classes* (``reason_class``), never identifiers or free text.

docs/operations.md lists every metric with what to alert on; deploy/grafana/ has the
dashboard (a test checks that each of its queries names a metric the worker exports).
"""

from __future__ import annotations

import bisect
import re
import threading
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

import orjson
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from scv.domain.matching.linker import Linker

if TYPE_CHECKING:
    from scv.streams.output import Headers, OnOffset, Sink

# ``*_created`` series double the page and no dashboard or alert here uses them.
disable_created_metrics()

EVENTS_IN = Counter("scv_events_in_total", "Messages consumed by a stage.", ["stage"])
EVENTS_OUT = Counter(
    "scv_events_out_total",
    "Messages produced, by the stage that produced them (tables: changelog writes).",
    ["stage", "topic"],
)
DLQ = Counter(
    "scv_dlq_total", "Messages sent to a dead-letter topic, by reason class.", ["topic", "reason"]
)
MERGES = Counter("scv_merges_total", "Profiles absorbed into another profile.", ["rule"])
DROPPED = Counter(
    "scv_identifiers_dropped_total", "Identifiers governance refused to link.", ["reason"]
)
SPLITS = Counter("scv_splits_total", "Profiles split (un-merge, ban, generic value).", ["rule"])
UNRESOLVED = Counter("scv_events_unresolved_total", "Events with no usable identifier left.")
ACTIONS = Counter("scv_actions_total", "Actions emitted.", ["type"])
SUPPRESSED = Counter(
    "scv_actions_suppressed_total",
    "Actions that were due but not emitted (duplicate, no_consent, cooldown, ...).",
    ["type", "reason"],
)
DUPLICATES = Counter(
    "scv_duplicates_skipped_total",
    "Messages a stage had already applied (repeats after an upstream crash), skipped.",
    ["stage"],
)
HANDOVER_STORMS = Counter(
    "scv_handover_storms_total",
    "Profiles handed over (absorb, adopt) more than SCV_HANDOVER_STORM_COUNT times within "
    "SCV_HANDOVER_STORM_WINDOW_S: a hand-over loop, or a giant merge. Once per profile and "
    "window; the worker's log and audit.v1 name the profiles.",
)
ERASURES = Counter("scv_erasures_total", "Erase commands carried out, per stage.", ["stage"])
SUPPRESSED_INPUT = Counter(
    "scv_suppressed_input_total",
    "Events and commands dropped because they name an erased identifier.",
    ["kind"],
)
ERASED_LATE = Counter(
    "scv_erased_late_total",
    "Messages that reached an erased profile after its erasure, dropped.",
    ["kind"],
)
BATCH_MESSAGES = Histogram(
    "scv_batch_messages",
    "Messages per batch the worker loop took from the consumer.",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
)
BATCH_SECONDS = Histogram(
    "scv_batch_seconds",
    "Time the stages and the table flush spent on one batch.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
RESTORE_SECONDS = Histogram(
    "scv_table_restore_seconds",
    "Time to replay the changelogs of newly assigned table partitions (one per rebalance).",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600),
)
RESTORED = Counter(
    "scv_table_restored_messages_total", "Changelog messages replayed into local tables."
)
CACHE_LOOKUPS = Counter(
    "scv_state_cache_lookups_total",
    "Reads of the decoded state a stage keeps between batches, by table: a miss reads the "
    "record from RocksDB and decodes it (what SCV_PROFILE_CACHE_SIZE is sized by).",
    ["table", "result"],
)
TRANSACTIONS = Counter(
    "scv_transactions_total",
    "exactly_once: worker transactions by outcome (committed; aborted: the work since the "
    "last commit is done again; fenced: the group or a newer instance took the work over).",
    ["outcome"],
)
TRANSACTION_SECONDS = Histogram(
    "scv_transaction_commit_seconds",
    "exactly_once: time to add the offsets to a transaction and commit it.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
READY = Gauge("scv_worker_ready", "1 once assigned partitions are restored, 0 during rebalance.")

#: A DLQ reason's class is the text before its first ``:``, if that looks like a code word.
_REASON_CLASS = re.compile(r"[a-z][a-z0-9_]{0,31}")


def reason_class(reason: str) -> str:
    """A bounded label value for a DLQ reason (``schema: ...`` -> ``schema``).

    Reasons are written by code (``invalid_json``, ``schema: <path>``, ``command: <why>``),
    but the part after the colon may quote input. Anything that does not look like a code
    word becomes ``other``, so no value or message can turn into a label.
    """
    head = reason.split(":", 1)[0].strip()
    return head if _REASON_CLASS.fullmatch(head) else "other"


class BucketHistogram(Collector):
    """A histogram whose ``observe`` is a bisect and a list increment (per-event timings).

    ``prometheus_client.Histogram.observe`` takes a lock per bucket increment, about 0.6 µs;
    this is about 0.07 µs. Only the loop thread observes; a scrape copies the counts, so it
    may see a count one observation ahead of the sum, which Prometheus tolerates.
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def collect(self) -> Iterator[Metric]:
        counts, total = list(self.counts), self.sum
        cumulative, running = [], 0
        for bound, count in zip([*map(str, self.bounds), "+Inf"], counts, strict=True):
            running += count
            cumulative.append((bound, running))
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=cumulative, sum_value=total
        )


C = TypeVar("C", bound=Collector)


def _register(collector: C) -> C:
    REGISTRY.register(collector)
    return collector


RESOLVE_SECONDS = _register(
    BucketHistogram(
        "scv_resolve_seconds",
        "Time the resolver spends deciding one event.",
        (5e-05, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
    )
)


def count_labels(counter: Counter, values: Iterable[tuple[str, ...]]) -> None:
    """Increment ``counter`` once per distinct label tuple of ``values`` (a batch's worth)."""
    for labels, n in Tally(values).items():
        counter.labels(*labels).inc(n)


def count_lookups(table: str, hits: int, misses: int) -> None:
    """A batch's reads of ``table``'s decoded-state cache (:data:`CACHE_LOOKUPS`)."""
    if hits:
        CACHE_LOOKUPS.labels(table, "hit").inc(hits)
    if misses:
        CACHE_LOOKUPS.labels(table, "miss").inc(misses)


def cache_misses(families: Iterable[Metric]) -> dict[str, float]:
    """Misses of each table's decoded-state cache in ``families`` (a registry's
    ``collect()``, or parsed ``/metrics`` pages of several workers: summed)."""
    misses: dict[str, float] = {}
    for family in families:
        if family.name != "scv_state_cache_lookups":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels["result"] == "miss":
                table = sample.labels["table"]
                misses[table] = misses.get(table, 0.0) + sample.value
    return dict(sorted(misses.items()))


class CountingSink:
    """Wraps the worker's sink and counts what each stage sends, per topic.

    The pipeline sets :attr:`stage` before handing a stage its batch and calls
    :meth:`publish` once per batch, so the per-message cost is one dict update; the
    Prometheus counters are touched once per (stage, topic) and batch.
    """

    def __init__(self, out: Sink) -> None:
        self.out = out
        self.stage = "worker"
        self._counts: dict[tuple[str, str], int] = {}

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
        on_offset: OnOffset | None = None,
    ) -> None:
        slot = (self.stage, topic)
        self._counts[slot] = self._counts.get(slot, 0) + 1
        self.out.send(topic, key, value, headers, partition, on_offset)

    def publish(self) -> None:
        counts, self._counts = self._counts, {}
        for (stage, topic), n in counts.items():
            EVENTS_OUT.labels(stage, topic).inc(n)


class ConsumerLag(Collector):
    """``scv_consumer_lag_messages{topic,partition}`` from librdkafka's statistics.

    The worker's consumer emits statistics every ``LAG_INTERVAL_MS`` (``stats_cb``, called
    from the loop's own ``consume``), so nothing asks the broker for lag: librdkafka already
    knows each assigned partition's high watermark (from fetch responses, right on tansu
    too, whose ListOffsets under-reports it) and committed offset. The value is the lag a
    ``kafka-consumer-groups --describe`` would show: high watermark minus committed offset
    (minus the stored offset, or the low watermark, while nothing is committed yet). Idle
    partitions are included, which a position-based lag cannot do until a message arrives.
    """

    def __init__(self) -> None:
        self._lag: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def on_stats(self, stats_json: str) -> None:
        stats = orjson.loads(stats_json)
        lag: dict[tuple[str, int], int] = {}
        for topic, body in (stats.get("topics") or {}).items():
            for partition, p in (body.get("partitions") or {}).items():
                if partition == "-1" or p.get("fetch_state", "none") == "none":
                    continue  # librdkafka's internal partition, or not assigned here
                value = p.get("consumer_lag", -1)
                if value < 0:
                    value = p.get("consumer_lag_stored", -1)
                if value < 0 and min(p.get("hi_offset", -1), p.get("lo_offset", -1)) >= 0:
                    value = p["hi_offset"] - p["lo_offset"]  # nothing committed: all of it
                if value >= 0:
                    lag[(topic, int(partition))] = int(value)
        with self._lock:
            self._lag = lag

    def clear(self) -> None:
        with self._lock:
            self._lag = {}

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "scv_consumer_lag_messages",
            "Messages on an assigned input partition past the group's committed offset.",
            labels=["topic", "partition"],
        )
        with self._lock:
            items = sorted(self._lag.items())
        for (topic, partition), lag in items:
            family.add_metric([topic, str(partition)], lag)
        yield family


#: How often the worker's consumer reports statistics (consumer lag), in milliseconds.
LAG_INTERVAL_MS = 5000
LAG = _register(ConsumerLag())


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
