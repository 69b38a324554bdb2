"""Everything a worker produces goes through one librdkafka producer.

At least once: the worker stores a batch's input offsets for commit only once everything the
batch produced is on the broker (:class:`Ticket`). It does not wait for that before taking
the next batch, so the broker's round trip is not added to every hop.

Order: the order matters, because a merge hand-over must reach a profile before the events
that follow it. The producer is idempotent (``SCV_IDEMPOTENT_OUTPUT``, on by default), which
keeps the order with five requests in flight and drops the duplicates a retry after a
broker failover would write. Without it, one produce request is in flight at a time, which
keeps the order but not a retried record from repeating; idempotence cost 7.5-12.6 µs per
message on tansu against 2.5 µs, so the local pipelines scv runs on tansu turn it off.

Partitioning is murmur2 (``scv.kafka.PARTITIONER``), like the Java clients, so keys land on
the partition whose state owns them. :class:`Sink` is the interface the stages see; tests
hand them a recording sink instead.

Exactly once (``SCV_PROCESSING_GUARANTEE=exactly_once``): the producer is transactional
(``transactional.id`` stable per worker, so a restarted worker aborts what its predecessor
left open). The first send opens a transaction; :meth:`Output.commit` adds the consumed
offsets (with the consumer's group metadata, so a worker the group has replaced is fenced:
KIP-447) and commits; :meth:`Output.abort` drops everything since. Idempotence keeps the
order with five requests in flight.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message, Producer, TopicPartition

from scv.kafka import producer_config
from scv.settings import Settings

log = logging.getLogger(__name__)

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


class Ticket:
    """The messages sent between two :meth:`Output.mark` calls: done once all are delivered."""

    __slots__ = ("delivered", "failed", "sent")

    def __init__(self) -> None:
        self.sent = 0
        self.delivered = 0
        self.failed: list[str] = []

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        self.delivered += 1
        if err is not None:
            self.failed.append(f"{msg.topic()}: {err}")

    @property
    def done(self) -> bool:
        if self.failed:
            raise DeliveryFailed(f"{len(self.failed)} message(s) undelivered: {self.failed[:3]}")
        return self.delivered >= self.sent


class Output:
    """Buffered sends for one worker.

    The worker calls :meth:`mark` where a batch's messages end and stores the batch's input
    offsets once that :class:`Ticket` is done, while it works on the next batches.
    :meth:`flush` waits for everything (rebalance, shutdown, tests).
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: Producer | None = None
        self._ticket = Ticket()
        self.transactional = settings.processing_guarantee == "exactly_once"
        #: a transaction is open (exactly once), since ``began`` (monotonic seconds)
        self.in_transaction = False
        self.began = 0.0

    def _get(self) -> Producer:
        if self._producer is None:
            settings = self._settings
            if self.transactional:
                extra: dict[str, Any] = {
                    "transactional.id": settings.worker_transactional_id(),
                    "transaction.timeout.ms": round(settings.transaction_timeout_s * 1000),
                    "enable.idempotence": True,
                }
            elif settings.idempotent_output:  # retries cannot repeat or reorder a record
                extra = {"enable.idempotence": True, "max.in.flight.requests.per.connection": 5}
            else:
                extra = {"max.in.flight.requests.per.connection": 1}
            producer = Producer(
                producer_config(settings, **{"linger.ms": settings.linger_ms, **extra})
            )
            if self.transactional:
                # Fences an older producer with this id and aborts what it left open.
                started = time.monotonic()
                producer.init_transactions(max(30.0, 3 * settings.transaction_timeout_s))
                log.info(
                    "transactional producer %s ready in %.2fs",
                    settings.worker_transactional_id(),
                    time.monotonic() - started,
                )
            self._producer = producer
        return self._producer

    def begin(self) -> None:
        """Open a transaction (exactly once; the first send does it)."""
        self._get().begin_transaction()
        self.in_transaction = True
        self.began = time.monotonic()

    def commit(self, offsets: list[TopicPartition], group: Any, timeout: float = 20.0) -> None:
        """Exactly once: the consumed ``offsets`` join the transaction, which then commits
        (everything sent is delivered first). ``group`` is the consumer's group metadata: a
        worker whose generation is stale is refused. Raises ``KafkaException``."""
        producer = self._get()
        if not self.in_transaction:
            self.begin()
        if offsets:
            producer.send_offsets_to_transaction(offsets, group, timeout)
        producer.commit_transaction(timeout)
        self.in_transaction = False
        self._ticket = Ticket()

    def reset(self) -> None:
        """Exactly once, after an error the producer cannot recover from (its epoch was
        fenced, e.g. the broker aborted a transaction that outlived its timeout): drop it
        with what it holds; the next send starts a new one, whose ``init_transactions``
        takes the id over."""
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.purge()
        self.in_transaction = False
        self._ticket = Ticket()

    def abort(self, timeout: float = 20.0) -> None:
        """Exactly once: drop the open transaction (what it sent is never read committed)."""
        if self._producer is not None and self.in_transaction:
            self._producer.abort_transaction(timeout)
        self.in_transaction = False
        self._ticket = Ticket()

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
        if self.transactional and not self.in_transaction:
            self.begin()
        ticket = self._ticket
        if on_offset is None:
            on_delivery = ticket.on_delivery
        else:

            def on_delivery(err: KafkaError | None, msg: Message) -> None:
                if err is None:
                    on_offset(int(msg.offset() or 0))
                ticket.on_delivery(err, msg)

        # Positional (topic, value, key, partition, on_delivery, callback, timestamp,
        # headers): building keyword arguments cost more than the call (1.75 against
        # 1.1 µs a message). -1 is librdkafka's "partition by key"; 0 its "now".
        part = -1 if partition is None else partition
        hdrs: Any = headers or None  # librdkafka's stubs want header values of any type
        try:
            producer.produce(topic, value, key, part, on_delivery, None, 0, hdrs)
        except BufferError:  # the local queue is full: let librdkafka drain it, then retry
            producer.poll(1.0)
            producer.produce(topic, value, key, part, on_delivery, None, 0, hdrs)
        ticket.sent += 1

    def mark(self) -> Ticket:
        """End the current ticket (what was sent so far) and start a new one."""
        ticket, self._ticket = self._ticket, Ticket()
        return ticket

    def poll(self, timeout: float = 0.0) -> None:
        """Serve delivery reports (tickets complete here)."""
        if self._producer is not None:
            self._producer.poll(timeout)

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until everything sent is on the broker; raise if anything failed."""
        ticket = self.mark()
        if self._producer is None:
            return
        remaining = self._producer.flush(timeout)
        if remaining:
            raise DeliveryFailed(f"{remaining} message(s) undelivered after {timeout}s")
        _ = ticket.done  # raises if anything in it failed

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is buffered (best effort) and drop the producer."""
        if self._producer is not None:
            self._producer.flush(timeout)
        self._producer = None
