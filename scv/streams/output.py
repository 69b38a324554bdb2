"""Everything a worker produces goes through one librdkafka producer, flushed per batch.

Delivery keeps the at-least-once guarantee: the worker calls :meth:`Output.flush` before it
stores the batch's input offsets, so nothing is committed before what it produced is on the
broker. One produce request is in flight at a time, so a retry cannot reorder what it sends
to a partition. The order matters, because a merge hand-over must reach a profile before the
events that follow it. (An idempotent producer guarantees the same and also drops retried
duplicates, but it cost 7.5-12.6 µs per message on tansu against 2.5 µs: at-least-once
delivery already means consumers see a duplicate after a crash.) Partitioning is murmur2 (``scv.kafka.PARTITIONER``), like the Java
clients, so keys land on the partition whose state owns them.

:class:`Sink` is the interface the stages see; tests hand them a recording sink instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message, Producer

from scv.kafka import producer_config
from scv.settings import Settings

Headers = list[tuple[str, bytes]]
#: Told the offset a message got, once it is on the broker (changelog checkpoints).
OnOffset = Callable[[int], None]


class Sink(Protocol):
    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
        on_offset: OnOffset | None = None,
    ) -> None: ...


class DeliveryFailed(RuntimeError):
    """Output could not be delivered: the batch must not be acknowledged."""


class Output:
    """Buffered sends for one worker; :meth:`flush` at every batch end."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: Producer | None = None
        self._failed: list[str] = []

    def _get(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(
                producer_config(self._settings, **{"max.in.flight.requests.per.connection": 1})
            )
        return self._producer

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failed.append(f"{msg.topic()}: {err}")

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
        on_offset: OnOffset | None = None,
    ) -> None:
        producer = self._get()
        kwargs: dict[str, Any] = {"value": value, "key": key}
        if headers:
            kwargs["headers"] = headers
        if partition is not None:
            kwargs["partition"] = partition
        if on_offset is None:
            kwargs["on_delivery"] = self._on_delivery
        else:

            def delivered(err: KafkaError | None, msg: Message) -> None:
                if err is None:
                    on_offset(int(msg.offset() or 0))
                self._on_delivery(err, msg)

            kwargs["on_delivery"] = delivered
        try:
            producer.produce(topic, **kwargs)
        except BufferError:  # the local queue is full: let librdkafka drain it, then retry
            producer.poll(1.0)
            producer.produce(topic, **kwargs)

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until everything sent is on the broker; raise if anything failed."""
        if self._producer is None:
            return
        remaining = self._producer.flush(timeout)
        if remaining or self._failed:
            failed, self._failed = self._failed, []
            raise DeliveryFailed(
                f"{remaining} message(s) undelivered after {timeout}s; failures: {failed[:3]}"
            )

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is buffered (best effort) and drop the producer."""
        if self._producer is not None:
            self._producer.flush(timeout)
        self._producer = None
