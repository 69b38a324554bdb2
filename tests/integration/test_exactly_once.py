"""Exactly once on Apache Kafka: transactions, read_committed, and a zombie fenced (issue 17).

With ``SCV_PROCESSING_GUARANTEE=exactly_once`` each worker's outputs, changelog writes and
input offsets commit in one Kafka transaction. Two workers share the work; one is paused
with SIGSTOP in the middle of a transaction (a long GC pause, a frozen VM) until the group
has given its partitions to the other, then resumed. It must not be able to write: its
transaction is refused (the group generation it carries is stale: KIP-447) and aborted,
so nothing it wrote is ever read committed, and every event is still processed exactly
once.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from scv.brokers import Broker, free_port
from scv.connectors.demo import generate
from scv.kafka import client_config, producer_config
from scv.runner import WorkerProcess, read_topic, wait_drained
from scv.settings import Settings
from scv.topics import Topics, create_topics

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

SESSION_S = 3.0


def worker(base: Settings, tmp: Path, name: str, **update: Any) -> WorkerProcess:
    own = base.model_copy(update={"data_dir": tmp / name, "web_port": free_port(), **update})
    return WorkerProcess(own, tmp / f"{name}.log").start()


def read_all(settings: Settings, topic: str, committed: bool) -> list[tuple[bytes | None, bytes]]:
    """Every record of ``topic``, read committed or not (what a zombie wrote shows only in
    the second)."""
    consumer = Consumer(
        client_config(settings)
        | {
            "group.id": "scv-eos-reader",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if committed else "read_uncommitted",
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p))[1] for p in meta.partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
        out: list[tuple[bytes | None, bytes]] = []
        deadline = time.monotonic() + 30
        remaining = {p for p, end in ends.items() if end > 0}
        while remaining and time.monotonic() < deadline:
            for msg in consumer.consume(5000, 0.5):
                if msg.error() is None and msg.value() is not None:
                    out.append((msg.key(), msg.value()))
            for tp in consumer.position([TopicPartition(topic, p) for p in remaining]):
                if tp.offset >= ends[tp.partition]:
                    remaining.discard(tp.partition)
        return out
    finally:
        consumer.close()


def test_a_paused_worker_is_fenced_and_every_event_counts_once(
    kafka: Broker, tmp_path: Path
) -> None:
    n = int(time.time())
    base = Settings(
        bootstrap_servers=kafka.bootstrap,
        topic_prefix=f"eos{n}-",
        app_id=f"scv-eos-{n}",
        session_timeout_s=SESSION_S,
        processing_guarantee="exactly_once",
        commit_interval_s=1.5,  # long transactions: the pause lands inside one
        transaction_timeout_s=60.0,  # longer than the pause: the zombie's own abort decides
        cart_max_lag_s=0,
        churn_visit_max_lag_s=0,
    )
    create_topics(base)
    topics = Topics(base)
    first = worker(base, tmp_path, "w1")
    first.wait_ready(90)
    second = worker(base, tmp_path, "w2")
    second.wait_ready(90)

    events = list(generate(3000, 5))
    producer = Producer(producer_config(base))
    sending = threading.Event()

    def send() -> None:
        for i, ev in enumerate(events):
            producer.produce(topics.raw(ev.source), ev.value, ev.key)
            if i % 50 == 0:
                producer.poll(0)
                time.sleep(0.05)  # about 1,000 events/s, for 3 s
        producer.flush(30)
        sending.set()

    feeder = threading.Thread(target=send, daemon=True)
    feeder.start()
    time.sleep(1.2)  # inside the traffic, inside a transaction of the first worker
    assert first.proc is not None
    os.killpg(first.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(SESSION_S * 3)  # the group gives its partitions to the second worker
    finally:
        os.killpg(first.proc.pid, signal.SIGCONT)
    feeder.join(60)
    assert sending.is_set()
    wait_drained(base, topics.dead_lettered, 240, stall=60)

    # The resumed worker was refused: its transaction aborted, nothing of it committed.
    log1 = first.log_path.read_text()
    assert "transaction aborted" in log1 or "fenced" in log1, first.tail(40)
    # ... and it had written: its records are in the log, but only read_uncommitted sees them.
    outputs = [topics.identity_events, topics.profile_events, topics.profiles]
    written = sum(len(read_all(base, t, committed=False)) for t in outputs)
    committed = sum(len(read_all(base, t, committed=True)) for t in outputs)
    assert written > committed

    # Exactly once: every valid raw event reached the resolver once, and nothing the
    # workers publish is there twice.
    ids = Counter(
        orjson.loads(v)["event_id"] for _, v in read_all(base, topics.identity_events, True)
    )
    valid = sum(1 for ev in events if not ev.malformed)
    assert len(ids) == valid and max(ids.values()) == 1, ids.most_common(3)
    for topic in (
        topics.merges,
        topics.audit,
        topics.actions,
        *map(topics.dlq, topics.dead_lettered),
    ):
        records = read_all(base, topic, committed=True)
        twice = [v for v, k in Counter(v for _, v in records).items() if k > 1]
        assert not twice, f"{topic}: {len(twice)} record(s) twice, e.g. {twice[0][:200]!r}"
    dlq = sum(len(read_topic(base, topics.dlq(t))) for t in topics.raw_topics)
    assert dlq == sum(1 for ev in events if ev.malformed)
    first.stop()
    second.stop()
