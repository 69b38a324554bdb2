"""Stage state: a partitioned bytes→bytes table in RocksDB with a compacted changelog topic.

Faust's tables write one changelog message per ``table[key] = value`` and cost several
event-loop callbacks each (see docs/performance.md). These tables are written once per key
per batch: writes collect in a pending map that reads see, and :meth:`Table.flush` applies
them to RocksDB in one ``WriteBatch`` and sends one changelog message per key.

Recovery: each partition's database remembers the changelog offset it has applied up to
(``CHECKPOINT``, written once the batch's changelog messages are on the broker). When the
worker is assigned a partition it replays the changelog from there to the end, so a
partition that moved to another worker and back catches up with what the other worker
wrote. A checkpoint past the end of the changelog means the broker lost its data (tansu
keeps topics in memory only): the database is wiped and rebuilt from the changelog.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition
from rocksdict import (
    BlockBasedOptions,
    BottommostLevelCompaction,
    Cache,
    CompactOptions,
    Options,
    Rdict,
    WriteBatch,
    WriteOptions,
)

from scv.kafka import consumer_config
from scv.settings import Settings
from scv.streams.output import Sink

log = logging.getLogger(__name__)

#: Where a partition's database keeps its changelog checkpoint (no table key starts so).
CHECKPOINT = b"\xff\xffscv:changelog-offset"

#: A partition's database: an ``Rdict`` (raw mode), or a dict for ``SCV_STORE=memory://``.
Db = Any


class Partition(MutableMapping[bytes, bytes]):
    """One partition of a table, write-back: writes wait in ``pending`` until the flush.

    The mapping methods the stages and ``MappingStore`` use (``get``, ``[]``, ``pop``,
    ``in``); ``None`` in ``pending`` is a delete.
    """

    def __init__(self, db: Db) -> None:
        self.db = db
        self.pending: dict[bytes, bytes | None] = {}
        #: decoded values the partition's one writer keeps (dropped with the partition)
        self.cache: dict[bytes, Any] = {}
        self.applied = -1  # changelog offset of the last flushed write on the broker
        #: keys whose old values must leave the disk after the next write (an erasure)
        self.purge: set[bytes] = set()

    def get(self, key: bytes, default: Any = None) -> Any:
        if key in self.pending:
            value = self.pending[key]
            return default if value is None else value
        value = self.db.get(key)
        return default if value is None else value

    def __getitem__(self, key: bytes) -> bytes:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.pending[key] = value

    def __delitem__(self, key: bytes) -> None:
        if self.get(key) is None:
            raise KeyError(key)
        self.pending[key] = None

    def __iter__(self) -> Iterator[bytes]:
        return (key for key, _ in self.items())

    def __len__(self) -> int:
        return sum(1 for _ in self.items())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and self.get(key) is not None

    def pop(self, key: bytes, default: Any = None) -> Any:
        value = self.get(key, default)
        self.pending[key] = None
        return value

    def items(self) -> Iterator[tuple[bytes, bytes]]:  # type: ignore[override]
        """Every live entry, pending writes included (for scans such as due carts)."""
        for key, value in self.db.items():
            if key != CHECKPOINT and key not in self.pending:
                yield key, value
        for key, pending in list(self.pending.items()):
            if pending is not None:
                yield key, pending

    def on_offset(self, offset: int) -> None:
        self.applied = max(self.applied, offset)


class Table:
    """A named table with ``partitions`` partitions, opened as the worker is assigned them.

    ``data_dir`` None keeps the partitions in dicts (``SCV_STORE=memory://``); they are then
    rebuilt from the changelog whenever they are opened. ``changelog`` None (tests) means no
    changelog at all.
    """

    def __init__(
        self,
        name: str,
        partitions: int,
        changelog: str | None,
        data_dir: Path | None = None,
        options: Options | None = None,
    ) -> None:
        self.name = name
        self.partitions = partitions
        self.changelog = changelog
        self._dir = data_dir / name if data_dir is not None else None
        self._options = options
        self.open_partitions: dict[int, Partition] = {}

    def __getitem__(self, partition: int) -> Partition:
        """The open partition (KeyError if this worker does not own it)."""
        return self.open_partitions[partition]

    def _open_db(self, partition: int, wipe: bool = False) -> Db:
        if self._dir is None:
            return {}
        path = self._dir / str(partition)
        if wipe and path.exists():
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        db = Rdict(str(path), self._options)
        db.set_write_options(_NO_WAL)
        return db

    def open(self, partition: int) -> Partition:
        if partition not in self.open_partitions:
            self.open_partitions[partition] = Partition(self._open_db(partition))
        return self.open_partitions[partition]

    def checkpoint_of(self, partition: int) -> int:
        """The changelog offset to replay from (0 for a new or in-memory partition)."""
        raw = self.open_partitions[partition].db.get(CHECKPOINT)
        return int(raw) if raw is not None else 0

    def reset(self, partition: int) -> Partition:
        """Drop a partition's local state (its checkpoint is beyond the changelog's end)."""
        self.close(partition)
        self.open_partitions[partition] = Partition(self._open_db(partition, wipe=True))
        return self.open_partitions[partition]

    def close(self, partition: int) -> None:
        part = self.open_partitions.pop(partition, None)
        if part is not None and isinstance(part.db, Rdict):
            part.db.flush()  # memtables to disk: without a WAL, close is the only other flush
            part.db.close()

    def close_all(self) -> None:
        for partition in list(self.open_partitions):
            self.close(partition)

    def flush(self, out: Sink) -> None:
        """Apply pending writes to the databases and send them to the changelog."""
        for number, part in self.open_partitions.items():
            if not part.pending:
                continue
            if self.changelog is not None:
                for key, value in part.pending.items():
                    out.send(self.changelog, key, value, partition=number, on_offset=part.on_offset)
            self.apply(part)

    @staticmethod
    def apply(part: Partition) -> None:
        """Write a partition's pending entries to its database (one RocksDB write batch)."""
        if isinstance(part.db, Rdict):
            batch = WriteBatch(raw_mode=True)
            for key, value in part.pending.items():
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
            part.db.write(batch)
            if part.purge:
                _purge(part.db, part.purge)
        else:
            for key, value in part.pending.items():
                if value is None:
                    part.db.pop(key, None)
                else:
                    part.db[key] = value
        part.pending = {}
        part.purge = set()

    def checkpoint(self) -> None:
        """After the output flush: remember how far each partition's changelog is applied."""
        for part in self.open_partitions.values():
            if part.applied >= 0:
                part.db[CHECKPOINT] = str(part.applied + 1).encode()


def _no_wal() -> WriteOptions:
    """Writes skip RocksDB's write-ahead log: the changelog topic is the log.

    After a crash the database holds a prefix of its writes (memtables are flushed in
    order), its checkpoint included, so the replay from that checkpoint restores the rest.
    Kafka Streams does the same. The WAL cost a synchronous file append per batch and key.
    """
    options = WriteOptions()
    options.disable_wal = True  # type: ignore[method-assign,assignment]  # a property at run time
    return options


_NO_WAL = _no_wal()


def _purge(db: Rdict, keys: set[bytes]) -> None:
    """Make RocksDB drop the old values of ``keys`` from its files now.

    A delete or overwrite only hides the old value: it stays in older SST files until
    compaction reaches them, which may be never (there is no write-ahead log: see
    :func:`_no_wal`). After an erasure the memtable is flushed and the key's range is
    compacted down through every level. Only the erased keys' ranges are compacted, so the
    cost does not grow with the table. (A key that was a file boundary is also named in the
    MANIFEST until the database is next opened.)
    """
    db.flush(True)
    # Forced, or RocksDB may move files into the last level without rewriting them (the
    # old value and its tombstone then both survive, measured on rocksdict 0.3).
    options = CompactOptions()
    options.set_bottommost_level_compaction(BottommostLevelCompaction.force())
    for key in sorted(keys):
        db.compact_range(key, key, options)


def rocksdb_options(settings: Settings) -> Options:
    """One block cache for every database of the worker, and small write buffers.

    RocksDB's defaults give each database its own cache and 64 MB buffers; a worker opens one
    database per table partition, so memory would grow with partitions and state.
    """
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_write_buffer_size(settings.rocksdb_write_buffer_mb * 2**20)
    options.set_max_write_buffer_number(2)
    table = BlockBasedOptions()
    table.set_block_cache(Cache(settings.rocksdb_block_cache_mb * 2**20))
    table.set_bloom_filter(10, False)  # most owner lookups are for identifiers never seen
    options.set_block_based_table_factory(table)
    return options


def restore(settings: Settings, wanted: list[tuple[Table, int]], timeout: float = 300.0) -> int:
    """Replay each (table, partition)'s changelog from its checkpoint to the end.

    Returns the number of changelog messages applied. The end is the high watermark of a
    fetch response: tansu under-reports it in ListOffsets. A checkpoint the broker calls out
    of range, or that lies past the fetched high watermark (tansu reports no out-of-range
    error), means the changelog is shorter than what was applied: the broker lost its data.
    The partition is then wiped and rebuilt from offset 0.
    """
    todo = [(t, p) for t, p in wanted if t.changelog is not None]
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
            },
        )
    )
    applied = 0
    try:
        parts: dict[tuple[str, int], tuple[Table, int]] = {}
        position: dict[tuple[str, int], int] = {}
        for table, p in todo:
            tp = (str(table.changelog), p)
            parts[tp], position[tp] = (table, p), table.checkpoint_of(p)
        consumer.assign([TopicPartition(t, p, position[(t, p)]) for t, p in parts])
        pending = set(parts)
        deadline = time.monotonic() + timeout
        while pending:
            writes: dict[tuple[str, int], dict[bytes, bytes | None]] = {}
            for msg in consumer.consume(10_000, 0.1):
                tp = (msg.topic() or "", msg.partition() or 0)
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._AUTO_OFFSET_RESET and tp in parts:
                        _rebuild(consumer, parts[tp], tp, position[tp])
                        position[tp] = 0
                        writes.pop(tp, None)
                    continue
                key = msg.key()
                if key is not None:
                    writes.setdefault(tp, {})[key] = msg.value()
                position[tp] = int(msg.offset() or 0) + 1
                applied += 1
            for tp, entries in writes.items():
                table, p = parts[tp]
                part = table.open_partitions[p]
                part.pending = entries
                table.apply(part)
            for tp in list(pending):
                _, high = consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
                if high >= 0 and position[tp] > high:  # tansu: no out-of-range error
                    _rebuild(consumer, parts[tp], tp, position[tp])
                    position[tp] = 0
                elif high >= 0 and position[tp] >= high:
                    pending.discard(tp)
                    table, p = parts[tp]
                    table.open_partitions[p].db[CHECKPOINT] = str(position[tp]).encode()
            if time.monotonic() > deadline:
                raise TimeoutError(f"changelog restore incomplete after {timeout}s: {pending}")
    finally:
        consumer.close()
    return applied


def _rebuild(consumer: Consumer, part: tuple[Table, int], tp: tuple[str, int], at: int) -> None:
    table, p = part
    log.warning(
        "%s[%d]: local state is past the changelog's end (checkpoint %d): rebuilding",
        table.name,
        p,
        at,
    )
    table.reset(p)
    consumer.incremental_unassign([TopicPartition(*tp)])
    consumer.incremental_assign([TopicPartition(*tp, 0)])
