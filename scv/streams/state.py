"""Stage state: a partitioned bytes→bytes table in RocksDB with a compacted changelog topic.

Faust's tables write one changelog message per ``table[key] = value`` and cost several
event-loop callbacks each (see docs/performance.md). These tables are written once per key
per batch: writes collect in a pending map that reads see, and at the end of a batch they
move to the partition's *staged* writes.

Staged writes reach the changelog and RocksDB only through a commit
(``scv.streams.commit``): once everything the batches produced is on the broker, their
writes are sent to the changelog, then a commit marker; once the marker is delivered they
are applied to RocksDB with the changelog offset to resume from (``CHECKPOINT``). RocksDB
therefore never holds state whose output or changelog could still be lost in a crash, and
reads see pending, staged and sealed (committing) writes above it.

A checkpoint past the end of the changelog means the broker lost its data (tansu keeps
topics in memory only): the partition is wiped and rebuilt from the changelog.
"""

from __future__ import annotations

import logging
import shutil
from collections import OrderedDict
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

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

from scv.settings import Settings

log = logging.getLogger(__name__)

#: Keys of the bookkeeping a table keeps beside its data start so (no table key does).
BOOKKEEPING = b"\xff\xffscv:"
#: Where a partition's database keeps the changelog offset to resume restoring from.
CHECKPOINT = BOOKKEEPING + b"changelog-offset"
#: A partition's decoded values, least recently used first.
LruCache = OrderedDict[bytes, Any]

#: A partition's database: an ``Rdict`` (raw mode), or a dict for ``SCV_STORE=memory://``.
Db = Any


class Partition(MutableMapping[bytes, bytes]):
    """One partition of a table, write-back: writes wait in ``pending`` until the batch
    ends, then in ``staged`` until a commit seals them (``sealed``) and applies them.

    The mapping methods the stages and ``MappingStore`` use (``get``, ``[]``, ``pop``,
    ``in``); ``None`` in a layer is a delete.
    """

    def __init__(self, db: Db) -> None:
        self.db = db
        self.pending: dict[bytes, bytes | None] = {}
        #: writes of finished batches, not yet in a commit
        self.staged: dict[bytes, bytes | None] = {}
        #: writes of the commit in flight (in RocksDB once its marker is delivered)
        self.sealed: dict[bytes, bytes | None] = {}
        #: decoded values the partition's one writer keeps (dropped with the partition),
        #: least recently used first
        self.cache: LruCache = OrderedDict()
        #: keys whose old values must leave the disk once their write is applied (erasure)
        self.purge: set[bytes] = set()

    def get(self, key: bytes, default: Any = None) -> Any:
        if key in self.pending:
            value = self.pending[key]
        elif key in self.staged:
            value = self.staged[key]
        elif key in self.sealed:
            value = self.sealed[key]
        else:
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
        """Every live entry, unapplied writes included (for scans such as due carts)."""
        layered = {**self.sealed, **self.staged, **self.pending}
        for key, value in self.db.items():
            if not key.startswith(BOOKKEEPING) and key not in layered:
                yield key, value
        for key, newer in layered.items():
            if newer is not None:
                yield key, newer

    def stage(self) -> bool:
        """The batch ended: its writes join the staged ones; whether there were any."""
        if not self.pending:
            return False
        self.staged.update(self.pending)
        self.pending = {}
        return True


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

    def apply(self, part: Partition, entries: Mapping[bytes, bytes | None]) -> None:
        """Write ``entries`` to a partition's database (one RocksDB write batch)."""
        if isinstance(part.db, Rdict):
            batch = WriteBatch(raw_mode=True)
            for key, value in entries.items():
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
            part.db.write(batch)
        else:
            for key, value in entries.items():
                if value is None:
                    part.db.pop(key, None)
                else:
                    part.db[key] = value
        # An erased key's old bytes can only be purged once its overwrite is in RocksDB,
        # which for a key written in a later commit is not yet.
        due = part.purge.intersection(entries)
        if due:
            if isinstance(part.db, Rdict):
                _purge(part.db, due)
                part.db = self._reopen(part.db)
            part.purge -= due

    def _reopen(self, db: Rdict) -> Rdict:
        """``db`` closed and opened again, so RocksDB writes a new MANIFEST.

        The MANIFEST records each SST file's smallest and largest key. After a purge, the
        purged key can still be named there, as the boundary of a file the compaction
        replaced. Only a new MANIFEST forgets it, and RocksDB writes one when the database is
        opened. A web-thread read of the closed handle fails and is answered "retry"
        (``scv.streams.api.read``).
        """
        path = db.path()
        db.close()  # _purge flushed: nothing is left only in memory
        reopened = Rdict(path, self._options)
        reopened.set_write_options(_NO_WAL)
        return reopened


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
    cost does not grow with the table. A key that was a file boundary is also named in the
    MANIFEST: :meth:`Table.apply` then opens the database again.
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
