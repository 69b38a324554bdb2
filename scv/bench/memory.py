"""``scv bench memory``: does a worker's memory stay flat while the identity graph grows?

State lives in RocksDB, and what the stages hold in Python is bounded by a batch, so a
worker's resident memory should not grow with the number of identifiers. This benchmark
checks that. It feeds one worker orders from ever new customers, each with three
identifiers of its own (customer id, email, cookie). It reads the worker's current and peak
RSS after the first ``small`` identifiers and again after ``large`` (100k and 1M by default),
feeding in chunks so that the backlog, and with it the consumer's buffers, is the same at
both readings.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from scv.bench.throughput import dir_bytes
from scv.demo import local_pipeline
from scv.kafka import producer_config
from scv.runner import memory_mb, wait_drained
from scv.settings import Settings
from scv.topics import Topics

#: Identifiers each generated order brings (customer id, email, cookie).
PER_EVENT = 3


def _order(i: int, ts: float) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"mem-{i}",
            "timestamp": ts,
            "type": "order",
            "order_id": f"o-{i}",
            "items": [{"sku": "sku-1", "qty": 1, "price": 9.5}],
            "total": 9.5,
            "customer_id": f"c-{i}",
            "email": f"customer{i}@shop-mail.com",
            "anonymous_id": f"ck-{i}",
        }
    )


#: Orders produced before waiting for the worker to catch up. Producing everything at once
#: would measure the consumer's buffers for a backlog, not the graph: keep the backlog the
#: same size at every reading.
CHUNK = 10_000


def _feed(settings: Settings, start: int, stop: int, timeout: float) -> None:
    topics = Topics(settings)
    producer = Producer(producer_config(settings))
    now = time.time()
    for first in range(start, stop, CHUNK):
        for i in range(first, min(first + CHUNK, stop)):
            producer.produce(
                topics.raw("transactions"), value=_order(i, now), key=f"o-{i}".encode()
            )
        producer.flush(120)
        wait_drained(settings, topics.dead_lettered, timeout, settle=0.3)


def run_memory(
    small: int = 100_000,
    large: int = 1_000_000,
    *,
    bootstrap: str | None = None,
    work_dir: Path | None = None,
    timeout: float = 3600.0,
) -> dict[str, Any]:
    """Grow one worker's graph to ``small`` then ``large`` identifiers; memory at each."""

    points: list[dict[str, Any]] = []
    with local_pipeline("mem", bootstrap=bootstrap, work_dir=work_dir) as (settings, procs, work):
        done = 0
        started = time.time()
        for target in (small, large):
            events = target // PER_EVENT
            _feed(settings, done, events, timeout)
            done = events
            points.append(
                {
                    "identifiers": events * PER_EVENT,
                    "profiles": events,
                    **memory_mb(procs[0].proc.pid if procs[0].proc else 0),
                    "state_mb": round(dir_bytes(work / "worker0") / 2**20, 1),
                    "seconds": round(time.time() - started, 1),
                }
            )
    first, last = points[0]["rss_mb"], points[-1]["rss_mb"]
    return {"points": points, "rss_growth": round(last / first - 1, 3) if first else None}
