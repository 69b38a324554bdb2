"""Commits: how a stage's state, its output and its input position stay consistent in a crash.

The guarantee is at least once with idempotent effects (docs/guarantees.md). tansu accepts
Kafka transactions but shows aborted records to ``read_committed`` readers, so they cannot
carry exactly-once here; instead each *unit* of state (the resolver's two graph tables; one
partition of the profile tables) commits in three steps, none of which blocks the loop:

1. **seal** the writes staged by finished batches, with the unit's :class:`Progress` at that
   point (input positions, the last origin applied per stream, the ``actions.v1`` offset);
2. once everything those batches sent is on the broker, send the writes to the changelogs,
   each with the commit's id in a header;
3. once those are on the broker, send a **marker** (the commit id and the progress) to each
   changelog; once it is delivered, apply the writes to RocksDB and store the input offsets.

A marker is only sent after all its writes are delivered, so any marker proves its commit
complete. :func:`restore` applies the changelog up to the newest complete commit, drops a
torn tail (writes without a marker) and stages the dropped keys' restored values again, so
the next commit overwrites the torn writes for any later reader too (compaction keeps the
last value). The worker then seeks the unit's inputs to the committed positions. What was
processed after the commit is processed again; its repeats downstream are dropped by origin
(``scv.streams.origin``), and actions it re-fires are not sent when recovery found them
on ``actions.v1`` already (:class:`ActionLedger`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition

from scv.kafka import consumer_config
from scv.settings import Settings
from scv.streams import metrics
from scv.streams.origin import Origin, parse_stream, stream
from scv.streams.output import Output, Ticket
from scv.streams.state import BOOKKEEPING, CHECKPOINT, Table

log = logging.getLogger(__name__)

#: The changelog key of commit markers (and where a database keeps the last one applied).
MARKER = BOOKKEEPING + b"commit"
#: Where a database keeps the next commit id to use (ids are never reused).
NEXT_ID = BOOKKEEPING + b"next-commit"
#: Header with the commit id on every changelog record.
COMMIT = "scv.commit"


@dataclass(slots=True)
class Progress:
    """How far a unit's state goes: what a commit marker records.

    ``positions``: the next offset to consume per input stream. ``origins``: per origin
    stream, the last (offset, index) applied. ``actions_from``: the ``actions.v1`` offset
    from which sent actions may be missing from the state (profile units only).
    """

    positions: dict[str, int] = field(default_factory=dict)
    origins: dict[str, list[int]] = field(default_factory=dict)
    actions_from: int = 0

    def fresh(self, origin: Origin | None) -> bool:
        """False for a message this state has already applied (then skip it)."""
        if origin is None:
            return True
        name, offset, index = origin
        last = self.origins.get(name)
        if last is not None and (offset, index) <= (last[0], last[1]):
            return False
        self.origins[name] = [offset, index]
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "positions": dict(self.positions),
            "origins": {k: list(v) for k, v in self.origins.items()},
            "actions_from": self.actions_from,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Progress:
        return cls(
            dict(d.get("positions") or {}),
            {k: list(v) for k, v in (d.get("origins") or {}).items()},
            int(d.get("actions_from") or 0),
        )


class ActionLedger:
    """What one profile partition has sent to its ``actions.v1`` partition.

    ``on_topic`` holds the ids recovery found on the topic past the committed state: the
    redo fires them again, and they must not be sent twice. Until each has come round again
    (and is in the state's fired ids), ``floor`` stays where recovery started reading, so a
    second crash reads them again.
    """

    def __init__(self) -> None:
        self.on_topic: set[str] = set()
        self.end = 0  # one past the highest delivered offset
        self.frozen_at: int | None = None

    def delivered(self, offset: int) -> None:
        self.end = max(self.end, offset + 1)

    def already_sent(self, action_id: str) -> bool:
        if action_id not in self.on_topic:
            return False
        self.on_topic.discard(action_id)
        return True

    def floor(self) -> int:
        if self.on_topic and self.frozen_at is not None:
            return self.frozen_at
        return self.end

    def recovered(self, start: int, end: int, ids: Iterable[str]) -> None:
        self.on_topic = set(ids)
        self.frozen_at, self.end = start, max(end, start)


class Unit:
    """Table partitions that commit together, and the input partitions that feed them."""

    def __init__(
        self,
        name: str,
        parts: list[tuple[Table, int]],
        inputs: list[tuple[str, int]],
        ledger: ActionLedger | None = None,
        actions: tuple[str, int] | None = None,
    ) -> None:
        self.name = name
        self.parts = parts
        self.inputs = [stream(t, p) for t, p in inputs]
        self.ledger = ledger
        self.actions = actions  # the actions.v1 partition the ledger covers
        self.progress = Progress()
        self.next_id = 1
        self.changed = False  # state or progress changed since the last seal
        #: the input positions of the last complete commit (to store for the group)
        self.committed_positions: dict[str, int] = {}
        self._sealed: tuple[int, bytes, dict[str, int]] | None = None  # the commit in flight
        self._markers: dict[tuple[str, int], int] = {}

    def note_batch(self) -> None:
        """The batch ended: stage its writes; remember whether anything changed."""
        for table, p in self.parts:
            if table[p].stage():
                self.changed = True

    def seal(self) -> bool:
        """Step 1: freeze the staged writes and the progress into a commit (if any)."""
        if not self.changed:
            return False
        if self.ledger is not None:
            self.progress.actions_from = self.ledger.floor()
        cid, self.next_id = self.next_id, self.next_id + 1
        marker = orjson.dumps({"id": cid, **self.progress.to_dict()})
        for table, p in self.parts:
            part = table[p]
            part.sealed, part.staged = part.staged, {}
        self._sealed = (cid, marker, dict(self.progress.positions))
        self.changed = False
        return True

    def send_writes(self, out: Output) -> None:
        """Step 2: the sealed writes to the changelogs."""
        assert self._sealed is not None
        header = [(COMMIT, str(self._sealed[0]).encode())]
        for table, p in self.parts:
            if table.changelog is None:
                continue
            sealed = table[p].sealed
            for key, value in sealed.items():
                out.send(table.changelog, key, value, headers=header, partition=p)
            if sealed:  # one increment per commit and changelog, not per write
                metrics.EVENTS_OUT.labels("tables", table.changelog).inc(len(sealed))

    def send_markers(self, out: Output) -> None:
        """Step 3: a marker to each changelog; each remembers where it landed."""
        assert self._sealed is not None
        cid, marker, _ = self._sealed
        header = [(COMMIT, str(cid).encode())]
        self._markers = {}
        for table, p in self.parts:
            if table.changelog is None:
                continue

            def landed(offset: int, at: tuple[str, int] = (table.name, p)) -> None:
                self._markers[at] = offset

            out.send(table.changelog, MARKER, marker, headers=header, partition=p, on_offset=landed)

    def apply(self) -> None:
        """The markers are delivered: the commit goes into RocksDB with its checkpoints."""
        assert self._sealed is not None
        _, marker, positions = self._sealed
        for table, p in self.parts:
            part = table[p]
            entries: dict[bytes, bytes | None] = dict(part.sealed)
            entries[MARKER] = marker
            entries[NEXT_ID] = str(self.next_id).encode()
            offset = self._markers.get((table.name, p))
            if offset is not None:
                entries[CHECKPOINT] = str(offset + 1).encode()
            table.apply(part, entries)
            part.sealed = {}
        self._sealed = None
        self.committed_positions = positions

    def offsets(self) -> list[TopicPartition]:
        """The committed input positions, for the consumer group."""
        return [
            TopicPartition(*parse_stream(name), offset)
            for name, offset in self.committed_positions.items()
            if name in self.inputs
        ]


class Committer:
    """Moves the units' commits through their steps as deliveries come in (never waits,
    except in :meth:`finish`)."""

    def __init__(self, out: Output, units: Callable[[], Iterable[Unit]]) -> None:
        self.out = out
        self.units = units
        self._step = 0  # 0 idle, 1 waiting for the batches' output, 2 writes, 3 markers
        self._waits: list[Ticket] = []
        self._committing: list[Unit] = []

    def step(self, outstanding: Iterable[Ticket]) -> list[Unit]:
        """Advance; the units whose commit completed (their input offsets may be stored).

        ``outstanding``: the tickets of batches whose output is not known delivered yet.
        """
        if self._step == 0:
            self._committing = [u for u in self.units() if u.seal()]
            if not self._committing:
                return []
            self._waits, self._step = [*outstanding, self.out.mark()], 1
        if not all(t.done for t in self._waits):
            return []
        if self._step == 1:
            for unit in self._committing:
                unit.send_writes(self.out)
            self._waits, self._step = [self.out.mark()], 2
        elif self._step == 2:
            for unit in self._committing:
                unit.send_markers(self.out)
            self._waits, self._step = [self.out.mark()], 3
        else:
            done, self._committing = self._committing, []
            for unit in done:
                unit.apply()
            self._step = 0
            return done
        return []

    def finish(self) -> list[Unit]:
        """Commit everything now (a revoke or shutdown): waits for each delivery."""
        done: list[Unit] = []
        for _ in range(20):  # the commit in flight, then one of everything staged: <= 8
            self.out.flush()
            done += self.step([])
            if self._step == 0 and not any(u.changed for u in self.units()):
                return done
        raise RuntimeError("commits did not settle")

    def drop(self, units: Iterable[Unit]) -> None:
        """Units taken away without a revoke: their commit in flight is abandoned."""
        gone = set(map(id, units))
        self._committing = [u for u in self._committing if id(u) not in gone]
        if not self._committing:
            self._step, self._waits = 0, []


# --- recovery ------------------------------------------------------------------------------
@dataclass(slots=True)
class _Log:
    """One changelog partition being restored."""

    table: Table
    partition: int
    position: int
    held: list[tuple[int, bytes, bytes | None, int]] = field(default_factory=list)
    done: bool = False


@dataclass(slots=True)
class _Sent:
    """A profile unit's ``actions.v1`` partition being read back: (offset, action id)."""

    position: int
    ids: list[tuple[int, str]] = field(default_factory=list)
    done: bool = False


@dataclass(slots=True)
class _Recovery:
    """One unit's recovery: the newest complete commit seen, and the highest id."""

    unit: Unit
    committed: int
    marker: bytes | None
    max_id: int
    logs: list[_Log] = field(default_factory=list)
    sent: _Sent | None = None


def restore(settings: Settings, units: list[Unit], timeout: float = 300.0) -> int:
    """Bring each unit's tables to its newest complete commit; returns records applied.

    Reads each changelog from its checkpoint to the end (the high watermark of a fetch
    response: tansu under-reports it in ListOffsets), and, in the same pass, each profile
    unit's ``actions.v1`` partition from the ``actions_from`` of its local commit (the
    restored one can only be later). A checkpoint past the end means the broker lost its
    data: the unit's partitions are wiped and rebuilt.
    """
    todo = [u for u in units if any(t.changelog is not None for t, _ in u.parts)]
    if not todo:
        return 0
    consumer = Consumer(
        consumer_config(
            settings,
            f"{settings.app_id}-restore",
            **{
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
                "auto.offset.reset": "error",
                # what an aborted transaction wrote is not state (librdkafka's default too)
                "isolation.level": "read_committed",
            },
        )
    )
    try:
        recoveries = [_start(unit) for unit in todo]
        logs = {
            (str(lg.table.changelog), lg.partition): (r, lg) for r in recoveries for lg in r.logs
        }
        sent = {r.unit.actions: r for r in recoveries if r.sent is not None and r.unit.actions}
        starts = [TopicPartition(t, p, lg.position) for (t, p), (_, lg) in logs.items()]
        starts += [TopicPartition(t, p, r.sent.position) for (t, p), r in sent.items() if r.sent]
        consumer.assign(starts)
        applied = _replay(consumer, logs, sent, timeout)
        for recovery in recoveries:
            _finish(recovery)
    finally:
        consumer.close()
    return applied


def _start(unit: Unit) -> _Recovery:
    first, p = unit.parts[0]
    marker = first[p].db.get(MARKER)
    committed = int(orjson.loads(marker)["id"]) if marker else 0
    next_id = max(int(t[q].db.get(NEXT_ID) or b"1") for t, q in unit.parts)
    recovery = _Recovery(unit, committed, marker, max(committed, next_id - 1))
    for table, q in unit.parts:
        if table.changelog is not None:
            recovery.logs.append(_Log(table, q, table.checkpoint_of(q)))
    if unit.ledger is not None and unit.actions is not None:
        local = Progress.from_dict(orjson.loads(marker)) if marker else Progress()
        recovery.sent = _Sent(local.actions_from)
    return recovery


def _replay(
    consumer: Consumer,
    logs: dict[tuple[str, int], tuple[_Recovery, _Log]],
    sent: dict[tuple[str, int], _Recovery],
    timeout: float,
) -> int:
    applied = 0
    deadline = time.monotonic() + timeout
    recoveries = list({id(r): r for r, _ in logs.values()}.values())
    while not all(lg.done for _, lg in logs.values()) or not all(
        r.sent.done for r in sent.values() if r.sent
    ):
        for msg in consumer.consume(10_000, 0.1):
            tp = (msg.topic() or "", msg.partition() or 0)
            err = msg.error()
            if tp in sent:
                _read_sent(sent[tp], msg)
                continue
            if tp not in logs:
                continue
            recovery, log_ = logs[tp]
            if err is not None:
                if err.code() == KafkaError._AUTO_OFFSET_RESET:
                    _rebuild(consumer, recovery, log_.position)
                continue
            offset = int(msg.offset() or 0)
            log_.position = offset + 1
            applied += 1
            cid = _commit_id(msg.headers())
            recovery.max_id = max(recovery.max_id, cid)
            key = msg.key()
            if key == MARKER:
                if cid > recovery.committed:
                    recovery.committed, recovery.marker = cid, msg.value()
            elif key is not None:
                log_.held.append((offset, key, msg.value(), cid))
        for recovery in recoveries:
            for log_ in recovery.logs:
                _release(log_, recovery.committed)
        for tp, (recovery, log_) in logs.items():
            if not log_.done:
                high = _high(consumer, tp)
                if high >= 0 and log_.position > high:  # tansu: no out-of-range error
                    _rebuild(consumer, recovery, log_.position)
                elif high >= 0 and max(log_.position, _position(consumer, tp)) >= high:
                    log_.done = True
        for tp, recovery in sent.items():
            if recovery.sent is not None and not recovery.sent.done:
                high = _high(consumer, tp)
                at = max(recovery.sent.position, _position(consumer, tp))
                recovery.sent.done = 0 <= high <= at
        if time.monotonic() > deadline:
            pending = [tp for tp, (_, lg) in logs.items() if not lg.done]
            pending += [tp for tp, r in sent.items() if r.sent and not r.sent.done]
            raise TimeoutError(f"restore incomplete after {timeout}s: {pending}")
    return applied


def _high(consumer: Consumer, tp: tuple[str, int]) -> int:
    return int(consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)[1])


def _position(consumer: Consumer, tp: tuple[str, int]) -> int:
    """The consumer's position: past the last record read and past transaction markers
    after it (exactly once puts one after each transaction's records), which no record
    read shows."""
    return int(consumer.position([TopicPartition(*tp)])[0].offset)


def _read_sent(recovery: _Recovery, msg: Any) -> None:
    assert recovery.sent is not None
    if msg.error() is not None:
        return
    offset = int(msg.offset() or 0)
    recovery.sent.position = offset + 1
    try:
        recovery.sent.ids.append((offset, str(orjson.loads(msg.value() or b"{}")["action_id"])))
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return


def _release(log_: _Log, committed: int) -> None:
    """Apply held records up to the first one past the newest complete commit."""
    writes: dict[bytes, bytes | None] = {}
    n = 0
    for _, key, value, cid in log_.held:
        if cid > committed:
            break
        writes[key] = value
        n += 1
    if n:
        del log_.held[:n]
        log_.table.apply(log_.table[log_.partition], writes)


def _finish(recovery: _Recovery) -> None:
    """Checkpoints, the marker, the next id; a torn tail dropped and staged for overwrite;
    the actions found on the topic past the restored commit."""
    unit = recovery.unit
    unit.next_id = recovery.max_id + 1
    unit.progress = (
        Progress.from_dict(orjson.loads(recovery.marker)) if recovery.marker else Progress()
    )
    unit.committed_positions = dict(unit.progress.positions)
    for log_ in recovery.logs:
        part = log_.table[log_.partition]
        torn = log_.held
        resume = torn[0][0] if torn else log_.position
        book: dict[bytes, bytes | None] = {
            CHECKPOINT: str(resume).encode(),
            NEXT_ID: str(unit.next_id).encode(),
        }
        if recovery.marker is not None:
            book[MARKER] = recovery.marker
        log_.table.apply(part, book)
        if torn:
            log.warning(
                "%s[%d]: %d changelog write(s) past the last complete commit dropped",
                log_.table.name,
                log_.partition,
                len(torn),
            )
            for _, key, _, _ in torn:
                part.staged[key] = part.db.get(key)
            unit.changed = True
        log_.held = []
    if recovery.sent is not None and unit.ledger is not None:
        start = unit.progress.actions_from
        ids = [aid for offset, aid in recovery.sent.ids if offset >= start]
        unit.ledger.recovered(start, recovery.sent.position, ids)
        if ids:
            log.info("%s: %d action(s) already on actions.v1 past its commit", unit.name, len(ids))


def _rebuild(consumer: Consumer, recovery: _Recovery, at: int) -> None:
    """The broker holds less than the local state says: wipe the unit and start over."""
    unit = recovery.unit
    log.warning(
        "%s: local state is past the changelog's end (checkpoint %d): rebuilding", unit.name, at
    )
    for log_ in recovery.logs:
        log_.table.reset(log_.partition)
        log_.position, log_.held, log_.done = 0, [], False
        tp = TopicPartition(str(log_.table.changelog), log_.partition)
        consumer.incremental_unassign([tp])
        consumer.incremental_assign([TopicPartition(tp.topic, tp.partition, 0)])
    recovery.committed, recovery.marker, recovery.max_id = 0, None, 0


def _commit_id(headers: Any) -> int:
    for name, value in headers or ():
        if name == COMMIT and value is not None:
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
