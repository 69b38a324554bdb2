"""One worker process: a batch loop over every stage's input, and the HTTP endpoints.

The loop takes whatever the consumer has (up to ``SCV_BATCH_MAX`` messages, waiting at most
``SCV_BATCH_WITHIN_S``), hands each stage its share in order, writes the tables once per
changed key, waits until everything produced is on the broker, and only then stores the
input offsets for the next commit: at least once, with the hand-overs between stages in
order. Due carts are checked between batches.

One consumer group (``SCV_APP_ID``) covers every input topic, so Kafka spreads partitions
over workers: the raw and profile topics over all of them, ``identity.events.v1`` and
``identity.commands.v1`` (one partition each, the range assignor gives both to the same
worker) to the single resolver. Faust was the runtime here until its per-message cost
capped a worker at about 1,700 events/s (docs/performance.md).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from prometheus_client import REGISTRY

from scv.kafka import consumer_config
from scv.settings import Settings
from scv.streams import metrics
from scv.streams.commit import Committer, Unit, restore
from scv.streams.dlq import Msg
from scv.streams.normalize import NormalizeStage
from scv.streams.origin import origin_of
from scv.streams.output import Output, Sink, Ticket
from scv.streams.profiles import ProfilesStage
from scv.streams.resolve import ResolveStage
from scv.streams.state import Table, rocksdb_options
from scv.topics import TABLES, Topics

log = logging.getLogger(__name__)


#: Errors a group coordinator answers with while it moves (a broker restarting): transient.
_COORDINATOR_MOVING = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
    }
)


class Stage(Protocol):
    name: str
    inputs: list[str]

    def process(self, batch: Sequence[Msg]) -> None: ...


class Pipeline:
    """The stages and their tables, wired to one output; no consumer (tests drive it)."""

    def __init__(self, settings: Settings, out: Sink, *, changelogs: bool = True) -> None:
        self.settings = settings
        #: every stage sends through this: it counts messages per stage and topic
        self.out = self.counting = metrics.CountingSink(out)
        memory = settings.store.startswith("memory")
        data_dir = None if memory else settings.data_dir
        options = None if memory else rocksdb_options(settings)

        topics = Topics(settings)

        def table(name: str) -> Table:
            partitions = settings.stage_partitions if TABLES[name] else 1
            changelog = topics.changelog(name) if changelogs else None
            return Table(name, partitions, changelog, data_dir, options)

        self.owners, self.nodes = table("identity-owners"), table("identity-nodes")
        self.suppressed = table("identity-suppressed")
        self.profile_table, self.carts_due = table("profiles"), table("carts-due")
        self.tables = [
            self.owners,
            self.nodes,
            self.suppressed,
            self.profile_table,
            self.carts_due,
        ]
        self.normalize = NormalizeStage(settings, self.out)
        self.resolve = ResolveStage(settings, self.out, self.owners, self.nodes, self.suppressed)
        self.profiles = ProfilesStage(settings, self.out, self.profile_table, self.carts_due)
        #: the stages this worker runs (``SCV_STAGES``); its consumer subscribes to their inputs
        chosen = set(settings.stages.split(","))
        self.stages: list[Stage] = [
            s for s in (self.normalize, self.resolve, self.profiles) if s.name in chosen
        ]
        self.stage_of = {topic: stage for stage in self.stages for topic in stage.inputs}
        self.topics = [topic for stage in self.stages for topic in stage.inputs]
        #: input topic -> tables co-partitioned with it (opened when it is assigned)
        self.tables_of: dict[str, list[Table]] = {
            self.resolve.inputs[0]: [self.owners, self.nodes, self.suppressed],
            self.profiles.inputs[0]: [self.profile_table, self.carts_due],
        }
        #: the open units of state (scv.streams.commit), and the input partitions feeding them
        self.units: dict[str, Unit] = {}
        self.unit_of: dict[tuple[str, int], tuple[Unit, str]] = {}
        #: inputs whose position is committed with a unit's state, not per batch
        self.stateful = {*self.resolve.inputs, *self.profiles.inputs}
        self.duplicates = {
            stage.name: metrics.DUPLICATES.labels(stage.name) for stage in self.stages
        }

    def open(self, topic: str, partition: int) -> list[Unit]:
        """Open the tables behind an assigned partition; the unit that needs restoring."""
        tables = self.tables_of.get(topic, [])
        for table in tables:
            table.open(partition)
        if not tables:
            return []
        if topic == self.resolve.inputs[0]:
            self.resolve.reset()
            inputs = [(t, 0) for t in self.resolve.inputs]
            unit = Unit("resolve", [(t, 0) for t in tables], inputs)
        else:
            unit = Unit(
                f"profiles[{partition}]",
                [(t, partition) for t in tables],
                [(topic, partition)],
                self.profiles.ledger(partition),
                (self.profiles.topics.actions, partition),
            )
        self.units[unit.name] = unit
        for name in unit.inputs:
            t, _, p = name.rpartition("/")
            self.unit_of[(t, int(p))] = (unit, name)
        return [unit]

    def close(self, topic: str, partition: int) -> list[Unit]:
        """Close the tables behind a partition; the unit that closed with them."""
        for table in self.tables_of.get(topic, []):
            table.close(partition)
        if topic == self.resolve.inputs[0]:
            self.resolve.reset()
        if topic == self.profiles.inputs[0]:
            self.profiles.ledgers.pop(partition, None)
        entry = self.unit_of.get((topic, partition))
        if entry is None or topic not in self.tables_of:
            return []
        unit = entry[0]
        self.units.pop(unit.name, None)
        for name in unit.inputs:
            t, _, p = name.rpartition("/")
            self.unit_of.pop((t, int(p)), None)
        return [unit]

    def process(self, batch: Sequence[Msg]) -> None:
        """One batch: each stage its messages (in consumed order), then the table writes.

        A message a unit of state has already applied (a repeat from an upstream redo,
        known by its origin) is dropped here; each unit's input positions move on.
        """
        shares: dict[str, list[Msg]] = {}
        unit_of = self.unit_of
        for msg in batch:
            topic = msg.topic() or ""
            stage = self.stage_of.get(topic)
            if stage is None:
                continue
            entry = unit_of.get((topic, msg.partition() or 0)) if topic in self.stateful else None
            if entry is not None:
                unit, name = entry
                unit.progress.positions[name] = int(msg.offset() or 0) + 1
                unit.changed = True
                if not unit.progress.fresh(origin_of(msg)):
                    self.duplicates[stage.name].inc()
                    continue
            shares.setdefault(stage.name, []).append(msg)
        for stage in self.stages:
            share = shares.get(stage.name)
            if share:
                self.counting.stage = stage.name
                stage.process(share)
        self.flush_tables()

    def check_due(self, now: float) -> None:
        """Abandoned carts past their window: ticks applied inline, then the table writes."""
        self.counting.stage = self.profiles.name
        self.profiles.check_due(now)
        self.flush_tables()

    def flush_tables(self) -> None:
        """The batch ended: its table writes are staged for the next commit."""
        for unit in self.units.values():
            unit.note_batch()
        self.counting.publish()

    def position_of(self, topic: str, partition: int) -> int | None:
        """Where a unit's committed state says to resume ``topic[partition]``."""
        entry = self.unit_of.get((topic, partition))
        return entry[0].progress.positions.get(entry[1]) if entry is not None else None


class FullCollections:
    """When the garbage collector may scan the whole heap.

    A worker keeps tens of thousands of long-lived objects (decoded profiles and graph nodes
    in bounded caches), and CPython's automatic full collections walked them all: on the
    demo workload they took about a quarter of a stage's time, with pauses up to 286 ms
    that became the tail of every hop's latency. Young generations are still collected as
    usual (pauses of a few ms); full collections run only when the worker is idle, or at
    the latest every ``interval_s`` so that reference cycles cannot pile up under load.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.last = time.monotonic()
        gc.freeze()  # what start-up built (modules, rules, models) is never garbage
        gc.set_threshold(700, 10, 1_000_000_000)

    def tick(self, idle: bool) -> None:
        elapsed = time.monotonic() - self.last
        if elapsed >= self.interval_s or (idle and elapsed >= self.interval_s / 10):
            gc.collect()
            self.last = time.monotonic()


class Fenced(RuntimeError):
    """Exactly once: this worker may no longer write (a newer instance of it, or the group,
    took its work over)."""


class Worker:
    """The consumer loop around a :class:`Pipeline`."""

    def __init__(self, settings: Settings, stopping: threading.Event | None = None) -> None:
        self.settings = settings
        self.output = Output(settings)
        self.pipeline = Pipeline(settings, self.output)
        if self.pipeline.resolve.matcher is not None:
            REGISTRY.register(metrics.MatcherCollector(self.pipeline.resolve.matcher))
        #: set to end :meth:`run` (SIGTERM)
        self.stopping = stopping or threading.Event()
        self.ready = threading.Event()
        #: exactly once: offsets go into each transaction, never through the group's commits
        self.eos = settings.processing_guarantee == "exactly_once"
        offsets: dict[str, Any] = (
            {"enable.auto.commit": False, "isolation.level": "read_committed"}
            if self.eos
            else {"enable.auto.commit": True, "enable.auto.offset.store": False}
        )
        self.consumer = Consumer(
            consumer_config(
                settings,
                settings.app_id,
                **{
                    **offsets,
                    "fetch.wait.max.ms": settings.fetch_max_wait_ms,
                    "partition.assignment.strategy": "range",
                    "statistics.interval.ms": metrics.LAG_INTERVAL_MS,
                },
            )
            | {"stats_cb": metrics.LAG.on_stats}  # consumer lag (not a dotted librdkafka name)
        )
        #: exactly once: the input positions the last transaction committed
        self._committed: dict[tuple[str, int], int] = {}
        self._idle_check = 0.0
        self.fenced = False
        self._fences: list[float] = []  # when the producer was last replaced (fatal errors)
        self._last_due = 0.0
        #: batches whose output is on its way: (ticket, input offsets to store once delivered)
        self._unsettled: deque[tuple[Ticket, list[TopicPartition]]] = deque()
        self.committer = Committer(self.output, self.pipeline.units.values)

    # --- rebalances --------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Restore the assigned units' tables, then resume their inputs where the restored
        state ends (not at the group's committed offsets, which may lag behind it)."""
        started = time.monotonic()
        log.info("restoring the tables of %d assigned partition(s)", len(partitions))
        units = []
        for tp in partitions:
            units += self.pipeline.open(tp.topic, tp.partition)
        restored = restore(self.settings, units)
        resume = []
        for tp in partitions:
            position = self.pipeline.position_of(tp.topic, tp.partition)
            if position is not None:
                tp.offset = position
                resume.append(TopicPartition(tp.topic, tp.partition, position))
        consumer.assign(partitions)
        # Stored for the group too: a crash may have come before the last commit's offsets
        # were, and an idle input would otherwise show that lag until new messages came.
        # (Exactly once: the next transaction commits them.)
        if not self.eos:
            self._store(resume)
        took = time.monotonic() - started
        log.info(
            "assigned %d partition(s); %d changelog message(s) restored in %.2fs",
            len(partitions),
            restored,
            took,
        )
        metrics.RESTORE_SECONDS.observe(took)
        metrics.RESTORED.inc(restored)
        metrics.LAG.clear()  # the assignment changed; the next update reports the new one
        self.ready.set()
        metrics.READY.set(1)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.ready.clear()
        metrics.READY.set(0)
        if self.eos:
            # The generation is still valid here: commit what the partitions did (a failed
            # commit rolls everything back), then hand them over.
            if not self.fenced:
                self._commit()
            for tp in partitions:
                self.pipeline.close(tp.topic, tp.partition)
                self._committed.pop((tp.topic, tp.partition), None)
            return
        self.output.flush()
        self._settle()
        self._finish_commits()
        try:
            consumer.commit(asynchronous=False)
        except Exception as exc:  # nothing stored since the last commit
            if not (exc.args and exc.args[0].code() == KafkaError._NO_OFFSET):
                log.warning("commit on revoke failed: %s", exc)
        for tp in partitions:
            self.pipeline.close(tp.topic, tp.partition)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions taken away without a revoke (the session expired): their offsets can no
        longer be stored; the next owner redoes what was not committed."""
        self.ready.clear()
        metrics.READY.set(0)
        lost = {(tp.topic, tp.partition) for tp in partitions}
        if self.eos:
            # The open transaction holds the lost partitions' work: it can only be dropped,
            # and with it what the others did since the last commit.
            keep = [tp for tp in consumer.assignment() if (tp.topic, tp.partition) not in lost]
            self._abort(f"{len(lost)} partition(s) lost")
            for tp in partitions:
                self.pipeline.close(tp.topic, tp.partition)
                self._committed.pop((tp.topic, tp.partition), None)
            self._reopen(keep)
            return
        self._unsettled = deque(
            (ticket, [o for o in offsets if (o.topic, o.partition) not in lost])
            for ticket, offsets in self._unsettled
        )
        closed = []
        for tp in partitions:
            closed += self.pipeline.close(tp.topic, tp.partition)
        self.committer.drop(closed)

    # --- the loop ----------------------------------------------------------------------
    def run(self) -> None:
        settings = self.settings
        self.consumer.subscribe(
            self.pipeline.topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        collections = FullCollections(settings.gc_full_interval_s)
        try:
            while not self.stopping.is_set():
                msgs = self.consumer.consume(settings.batch_max, settings.batch_within_s)
                batch = [m for m in msgs if m.error() is None]
                if len(batch) < len(msgs):
                    self._report_errors(msgs)
                try:
                    if batch:
                        started = time.perf_counter()
                        self.pipeline.process(batch)
                        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
                        metrics.BATCH_MESSAGES.observe(len(batch))
                    now = time.time()
                    due_check = now - self._last_due >= settings.cart_check_interval_s
                    if due_check:
                        self._last_due = now
                        self.pipeline.check_due(now)
                except KafkaException as exc:
                    if not self.eos:
                        raise
                    self._recover(exc.args[0])  # a send refused in a failed transaction
                    continue
                if self.eos:
                    self._transact(idle=not batch)
                    self.output.poll(0)
                    collections.tick(idle=not batch)
                    continue
                if batch or due_check:
                    self._unsettled.append((self.output.mark(), self._offsets(batch)))
                self.output.poll(0)
                self._settle()
                for unit in self.committer.step(t for t, _ in self._unsettled):
                    self._store(unit.offsets())
                collections.tick(idle=not batch)
        except Fenced:
            log.error("stopped: fenced (see above); nothing since the last commit is kept")
        finally:
            self.close()

    # --- exactly once --------------------------------------------------------------------
    def _transact(self, idle: bool) -> None:
        """Commit the open transaction once it is ``SCV_COMMIT_INTERVAL_S`` old. When idle,
        also commit positions that moved past transaction markers since the last commit, so
        the group's lag reaches 0."""
        out, now = self.output, time.monotonic()
        if out.in_transaction:
            if now - out.began >= self.settings.commit_interval_s:
                self._commit()
        elif idle and now >= self._idle_check:
            self._idle_check = now + self.settings.commit_interval_s
            self._commit()  # only if the positions moved

    def _positions(self) -> list[TopicPartition]:
        """Where the consumer is on each assigned partition: past the last message processed
        and past transaction markers after it."""
        return [tp for tp in self.consumer.position(self.consumer.assignment()) if tp.offset >= 0]

    def _commit(self) -> bool:
        """One transaction: the units' sealed writes and commit markers to the changelogs,
        the consumed positions with the group's metadata, commit; then RocksDB. A failure
        aborts and rolls back (or, fenced for good, stops the worker)."""
        units = [u for u in self.pipeline.units.values() if u.seal()]
        offsets = self._positions()
        moved = any(self._committed.get((tp.topic, tp.partition)) != tp.offset for tp in offsets)
        if not units and not moved and not self.output.in_transaction:
            return True  # nothing to commit
        for unit in units:
            unit.send_writes(self.output)
            unit.send_markers(self.output)
        started = time.perf_counter()
        deadline = time.monotonic() + 2 * self.settings.transaction_timeout_s
        while True:
            try:
                self.output.commit(offsets, self.consumer.consumer_group_metadata())
                break
            except KafkaException as exc:
                err = exc.args[0]
                retry = err.retriable() and not (err.fatal() or err.txn_requires_abort())
                if retry and time.monotonic() < deadline:  # e.g. a broker restarting
                    log.info("transaction commit: %s; trying again", err)
                    time.sleep(0.5)
                    continue
                self._recover(err)
                return False
        took = time.perf_counter() - started
        if took > 5.0:
            log.warning("transaction commit took %.1f s", took)
        metrics.TRANSACTION_SECONDS.observe(took)
        metrics.TRANSACTIONS.labels("committed").inc()
        for unit in units:
            unit.apply()
        self._committed = {(tp.topic, tp.partition): tp.offset for tp in offsets}
        return True

    def _recover(self, err: KafkaError) -> None:
        """A transaction that cannot commit: drop it, roll every assigned unit back to its
        last commit and go on. The producer itself is replaced when its epoch was fenced
        (the broker aborted a transaction that outlived SCV_TRANSACTION_TIMEOUT_S during an
        outage); if that keeps happening, another live worker uses this transactional.id,
        and this one stops."""
        if err.fatal():
            now = time.monotonic()
            self._fences = [t for t in self._fences if now - t < 60.0] + [now]
            metrics.TRANSACTIONS.labels("fenced").inc()
            if len(self._fences) > 3:
                self.fenced = True
                log.error(
                    "fenced: %s; %d times in a minute: another worker has transactional.id "
                    "%s (set SCV_TRANSACTIONAL_ID per worker); stopping",
                    err,
                    len(self._fences),
                    self.settings.worker_transactional_id(),
                )
                raise Fenced(str(err))
            log.warning(
                "producer fenced (%s): a new one takes over; redoing since the last commit", err
            )
            self.output.reset()
        else:
            log.warning("transaction failed (%s): rolling back to the last commit", err)
            self._abort(str(err))
        self._reopen(self.consumer.assignment())

    def _abort(self, why: str) -> None:
        """Drop the open transaction; the caller rolls the state back."""
        if not self.output.in_transaction:
            return
        log.warning("transaction aborted (%s): the work since the last commit is redone", why)
        try:
            self.output.abort()
        except KafkaException:
            self.output.reset()  # the abort itself failed: the next producer aborts it
        metrics.TRANSACTIONS.labels("aborted").inc()

    def _reopen(self, partitions: list[TopicPartition]) -> None:
        """Roll the state of ``partitions`` back to their last commit: close the tables
        (what was not committed goes), restore them, and resume every input there."""
        started = time.monotonic()
        for tp in partitions:
            self.pipeline.close(tp.topic, tp.partition)
        units = []
        for tp in partitions:
            units += self.pipeline.open(tp.topic, tp.partition)
        restore(self.settings, units)
        stateless = [
            TopicPartition(tp.topic, tp.partition)
            for tp in partitions
            if self.pipeline.position_of(tp.topic, tp.partition) is None
        ]
        committed = {
            (tp.topic, tp.partition): tp.offset
            for tp in (self._committed_offsets(stateless) if stateless else [])
        }
        for tp in partitions:
            position = self.pipeline.position_of(tp.topic, tp.partition)
            if position is None:
                position = committed.get((tp.topic, tp.partition), OFFSET_BEGINNING)
                position = OFFSET_BEGINNING if position < 0 else position
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, position))
        took = time.monotonic() - started
        log.info("rolled %d partition(s) back to their last commit in %.2fs", len(partitions), took)

    def _committed_offsets(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """The group's committed offsets of ``partitions``, asked again while the broker
        answers with a retriable error (a coordinator moving in a broker restart answers
        NOT_COORDINATOR for a few seconds; exactly-once chaos on Apache Kafka met it)."""
        deadline = time.monotonic() + 60
        while True:
            try:
                return list(self.consumer.committed(partitions, 10))
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                transient = isinstance(error, KafkaError) and (
                    error.retriable() or error.code() in _COORDINATOR_MOVING
                )
                if not transient or time.monotonic() > deadline:
                    raise
                log.warning("committed offsets: %s; asking again", error)
                time.sleep(0.5)

    def _settle(self) -> None:
        """Store the input offsets of every batch whose output is all delivered, in order.

        A batch's offsets are stored (and later committed) only after everything it produced
        is on the broker: at least once. Inputs of stateful stages are left out: their
        offsets are stored when the state that applied them is committed.
        """
        while self._unsettled and self._unsettled[0][0].done:
            _, offsets = self._unsettled.popleft()
            self._store(offsets)

    def _store(self, offsets: list[TopicPartition]) -> None:
        if offsets:
            self.consumer.store_offsets(offsets=offsets)

    def _finish_commits(self) -> None:
        """Commit every unit's state now (before a revoke or shutdown) and store its offsets."""
        for unit in self.committer.finish():
            self._store(unit.offsets())

    @staticmethod
    def _report_errors(msgs: list[Message]) -> None:
        """Consumer errors that came in a batch (the end of a partition is not one)."""
        for msg in msgs:
            err = msg.error()
            if err is not None and err.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error: %s", err)

    def _offsets(self, batch: list[Message]) -> list[TopicPartition]:
        """The offsets to commit after ``batch``: one past its last message per partition
        (stateless inputs only)."""
        last: dict[tuple[str, int], int] = {}
        stateful = self.pipeline.stateful
        for msg in batch:
            topic = msg.topic() or ""
            if topic not in stateful:
                last[(topic, msg.partition() or 0)] = int(msg.offset() or 0)
        return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]

    def close(self) -> None:
        """Deliver what is pending, leave the group (committing what is stored), close the
        tables. Exactly once: commit the open transaction, unless fenced."""
        self.ready.clear()
        try:
            if self.eos:
                if not self.fenced:
                    with contextlib.suppress(Fenced):
                        self._commit()
                self.consumer.close()
                return
            self.output.flush()
            self._settle()
            self._finish_commits()
            self.consumer.close()
        finally:
            self.output.close()
            for table in self.pipeline.tables:
                table.close_all()


def run_worker(settings: Settings) -> None:
    """``scv worker``: the loop in this thread, the HTTP endpoints in another.

    First the broker is asked whether it lets this worker in and do what it needs
    (:mod:`scv.streams.access`): a refusal raises :class:`~scv.kafka.KafkaRefused`, which
    ``scv`` reports in one line, instead of a worker that never becomes ready.
    """
    from scv.streams.access import check_worker_access
    from scv.streams.web import start_web

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    log.info("worker starting (pid %d; stages %s)", os.getpid(), settings.stages)
    stopping = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    check_worker_access(settings, stopping)
    if stopping.is_set():
        return
    worker = Worker(settings, stopping)
    web = start_web(settings, worker)
    try:
        worker.run()
    finally:
        web.stop()
