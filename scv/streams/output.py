"""Stage output through one librdkafka producer, flushed at the end of every batch.

Faust's ``Topic.send`` costs a future, sensor calls and several event-loop callbacks per
message. That was the second-largest share of worker CPU (see docs/performance.md).
librdkafka's ``produce`` only appends to a C buffer.

Delivery keeps the at-least-once guarantee. A stage calls :meth:`Output.flush` before its
batch body returns, and ``take_events`` acknowledges the batch's input offsets only after
that, so nothing is committed before what it produced is on the broker. The producer is
idempotent: retries can neither reorder nor duplicate what it sends to a partition. The
order matters here, because a merge hand-over must reach a profile before the events that
follow it. Partitioning is murmur2, like Faust's, so keys land where Faust's tables expect
them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from scv.kafka import producer_config
from scv.settings import Settings


class DeliveryFailed(RuntimeError):
    """A stage's output could not be delivered: the batch must not be acknowledged."""


class Output:
    """Buffered sends for one worker's stages; :meth:`flush` at every batch end."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: Producer | None = None
        self._failed: list[str] = []
        self._names: dict[int, str] = {}

    def _get(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(
                producer_config(self._settings, **{"enable.idempotence": True})
            )
        return self._producer

    def _name(self, topic: Any) -> str:
        """A Faust topic's name (cached per topic object) or the name itself."""
        if isinstance(topic, str):
            return topic
        name = self._names.get(id(topic))
        if name is None:
            name = self._names[id(topic)] = str(topic.get_topic_name())
        return name

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failed.append(f"{msg.topic()}: {err}")

    def send(self, topic: Any, key: bytes | None, value: bytes | None) -> None:
        producer = self._get()
        try:
            producer.produce(self._name(topic), value=value, key=key, on_delivery=self._on_delivery)
        except BufferError:  # the local queue is full: let librdkafka drain it, then retry
            producer.poll(1.0)
            producer.produce(self._name(topic), value=value, key=key, on_delivery=self._on_delivery)
        producer.poll(0)

    async def flush(self, timeout: float = 60.0) -> None:
        """Wait until everything sent is on the broker; raise if anything failed."""
        if self._producer is None:
            return
        remaining = await asyncio.get_running_loop().run_in_executor(
            None, self._producer.flush, timeout
        )
        if remaining or self._failed:
            failed, self._failed = self._failed, []
            raise DeliveryFailed(
                f"{remaining} message(s) undelivered after {timeout}s; failures: {failed[:3]}"
            )

    def close(self) -> None:
        """Drop the producer (its threads stop); anything not flushed is abandoned."""
        self._producer = None
