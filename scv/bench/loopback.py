"""A broker in a dict: what the stages send, kept per topic partition for them to read back.

The stage benchmark (:mod:`scv.bench.stages`) and the arrival-order tests run the real
stages (``Pipeline``) without Kafka. What a stage sends lands on the partition its key
hashes to, as on a broker; :meth:`LoopBack.drain` then hands the stages their input in
batches until nothing is left, in an order a ``pick`` function chooses. The benchmark
takes the stages in pipeline order; the tests let a seeded random choice interleave the
partitions the way parallel consumption does, which is what exposes hand-overs that
never end.
"""

from __future__ import annotations

import zlib
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from typing import Any

from scv.streams.dlq import LocalMsg
from scv.streams.output import Headers, OnOffset

#: A topic partition.
Queue = tuple[str, int]
#: Given the non-empty queues the stages read, the one to take a batch from and its size.
Pick = Callable[[list[Queue], dict[Queue, int]], tuple[Queue, int]]


class Unquiet(RuntimeError):
    """The stages kept sending after ``limit`` messages: a hand-over or loop never ends."""


class LoopBack:
    """A sink that keeps messages per topic partition (partitioned by key like the real one)."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.queues: dict[Queue, deque[LocalMsg]] = defaultdict(deque)
        self.offsets: dict[Queue, int] = defaultdict(int)
        self.count = 0
        #: messages taken per topic by :meth:`drain`
        self.taken: dict[str, int] = defaultdict(int)

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
        on_offset: OnOffset | None = None,
    ) -> None:
        self.count += 1
        if partition is None:
            partition = zlib.crc32(key or b"") % self.partitions
        offset = self.offsets[(topic, partition)]
        self.offsets[(topic, partition)] = offset + 1
        self.queues[(topic, partition)].append(LocalMsg(topic, value, key, partition, offset))
        if on_offset is not None:
            on_offset(offset)

    def take(self, topic: str) -> list[LocalMsg]:
        """Every message waiting on ``topic``, partition by partition."""
        out: list[LocalMsg] = []
        for (name, _), queue in sorted(self.queues.items()):
            if name == topic:
                out.extend(queue)
                queue.clear()
        return out

    def waiting(self, topics: Iterable[str]) -> list[Queue]:
        wanted = set(topics)
        return sorted(q for q, msgs in self.queues.items() if msgs and q[0] in wanted)

    def drain(self, pipeline: Any, pick: Pick, limit: int) -> int:
        """Feed ``pipeline`` (a ``Pipeline``) batches of its inputs until none is left;
        how many messages it took. Raises :class:`Unquiet` past ``limit`` messages."""
        total = 0
        while True:
            queues = self.waiting(pipeline.stage_of)
            if not queues:
                return total
            queue, size = pick(queues, {q: len(self.queues[q]) for q in queues})
            waiting = self.queues[queue]
            batch = [waiting.popleft() for _ in range(max(1, min(size, len(waiting))))]
            total += len(batch)
            self.taken[queue[0]] += len(batch)
            if total > limit:
                raise Unquiet(f"still sending after {limit} messages: {dict(self.taken)}")
            pipeline.process(batch)
