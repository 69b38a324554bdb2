"""Each stage's own cost, without a broker: the ceiling the Kafka plumbing works under.

The demo workload runs through the real stages (``Pipeline``) with RocksDB tables, in
batches as the worker takes them. A loop-back sink hands each stage's output to the next
stage, so the figures are Python and RocksDB only. The resolver is a single writer: its
events/s here is the most the whole pipeline can ever do, however many workers run.
"""

from __future__ import annotations

import gc
import logging
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from statistics import median
from typing import Any

from scv.bench.loopback import LoopBack
from scv.connectors.demo import generate
from scv.settings import Settings
from scv.streams.dlq import LocalMsg
from scv.streams.metrics import CACHE_LOOKUPS, cache_misses
from scv.streams.worker import FullCollections, Pipeline
from scv.topics import Topics


def run_once(events: int, seed: int, batch: int, matching: bool, work: Path) -> dict[str, Any]:
    settings = Settings(
        topic_prefix="",
        data_dir=work,
        matching=matching,
        stage_partitions=4,
    )
    topics = Topics(settings)
    sink = LoopBack(settings.stage_partitions)
    pipeline = Pipeline(settings, sink)
    for topic, tables in pipeline.tables_of.items():
        for p in range(tables[0].partitions):
            pipeline.open(topic, p)
    raw = [
        LocalMsg(topics.raw(ev.source), ev.value, ev.key, 0, i)
        for i, ev in enumerate(generate(events, seed))
    ]
    spent: dict[str, float] = defaultdict(float)
    stages: tuple[tuple[Any, str | None], ...] = (
        (pipeline.normalize, None),
        (pipeline.resolve, topics.identity_events),
        (pipeline.profiles, topics.profile_events),
    )
    counts: dict[str, int] = defaultdict(int)
    misses_before = cache_misses(CACHE_LOOKUPS.collect())
    for start in range(0, len(raw), batch):
        # One raw batch, then whatever it set off downstream (merge hand-overs and adoptions
        # go round the profiles stage until none is left).
        first: list[LocalMsg] | None = raw[start : start + batch]
        while first or sink.waiting(t for _, t in stages[1:] if t is not None):
            for stage, source in stages:
                chunk = first if source is None else sink.take(source)
                first = None if source is None else first
                if not chunk:
                    continue
                began = time.perf_counter()
                stage.process(chunk)
                pipeline.flush_tables()
                spent[stage.name] += time.perf_counter() - began
                counts[stage.name] += len(chunk)
    total = sum(spent.values())
    after = cache_misses(CACHE_LOOKUPS.collect())
    misses = {t: n - misses_before.get(t, 0.0) for t, n in after.items()}
    return {
        "seconds": {name: round(s, 3) for name, s in spent.items()},
        "messages": dict(counts),
        "us_per_event": {name: round(s / events * 1e6, 1) for name, s in spent.items()},
        "events_per_second": {name: round(events / s) for name, s in spent.items()},
        "all_stages_events_per_second": round(events / total),
        "messages_out": sink.count,
        "cache_misses_per_event": {t: round(n / events, 3) for t, n in sorted(misses.items())},
    }


def run_stages(
    events: int = 30_000, seed: int = 7, batch: int = 500, matching: bool = False, runs: int = 3
) -> dict[str, Any]:
    """Median per-stage cost over ``runs`` runs, each on fresh RocksDB tables."""
    results = []
    logging.getLogger("scv.streams.dlq").setLevel(logging.ERROR)  # the demo's bad input
    thresholds = gc.get_threshold()
    FullCollections(interval_s=3600)  # the worker's garbage collection settings
    try:
        for _ in range(runs):
            with tempfile.TemporaryDirectory(prefix="scv-stages-") as tmp:
                results.append(run_once(events, seed, batch, matching, Path(tmp)))
            gc.collect()  # between runs, as an idle worker would
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    names = list(results[0]["us_per_event"])
    us = {name: median(r["us_per_event"][name] for r in results) for name in names}
    return {
        "events": events,
        "seed": seed,
        "batch": batch,
        "matching": matching,
        "runs": runs,
        "us_per_event": us,
        "events_per_second": {name: round(1e6 / v) for name, v in us.items()},
        "all_stages_events_per_second": round(1e6 / sum(us.values())),
        "resolver_ceiling_events_per_second": round(1e6 / us["resolve"]),
        "messages_out_per_event": round(results[0]["messages_out"] / events, 2),
        "cache_misses_per_event": results[0]["cache_misses_per_event"],
    }
