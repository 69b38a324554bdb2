"""The worker loop's bookkeeping when Kafka takes partitions away."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import TopicPartition

from scv.brokers import free_port
from scv.settings import Settings
from scv.streams.output import Ticket
from scv.streams.worker import Worker


def test_lost_partitions_drop_their_pending_offsets(tmp_path: Path) -> None:
    """After a session loss the offsets of lost partitions cannot be stored any more (the
    consumer would raise); the batches' other offsets still are, once delivered."""
    settings = Settings(
        bootstrap_servers=f"127.0.0.1:{free_port()}",  # nothing listens: no broker needed
        store="memory://",
        data_dir=tmp_path,
    )
    worker = Worker(settings)
    try:
        ticket = Ticket()
        worker._unsettled.append(
            (ticket, [TopicPartition("raw.web.v1", 0, 5), TopicPartition("raw.web.v1", 1, 7)])
        )
        worker._on_lost(worker.consumer, [TopicPartition("raw.web.v1", 0)])
        [(kept_ticket, offsets)] = worker._unsettled
        assert kept_ticket is ticket
        assert [(o.topic, o.partition, o.offset) for o in offsets] == [("raw.web.v1", 1, 7)]
    finally:
        worker.consumer.close()
