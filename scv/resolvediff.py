"""``scv resolve --diff``: replay recorded ``identity.events.v1`` history under new rules.

The comparison itself is :mod:`scv.domain.rulediff`; this module feeds it. It reads the
topics from the beginning to their current end by assigning partitions directly (no group
join, nothing committed, under a throw-away group id), so the live pipeline's consumer
group and tables are never touched. Each rule set replays into its own fresh graph store
(RocksDB in a temporary directory by default, so the graph of a large history stays on
disk); events are kept in memory without traits, consent or payload, which the resolver
never reads.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from rocksdict import Options, Rdict, WriteOptions

from scv.domain.governance import DEFAULT_RULES_PATH, load_rules
from scv.domain.graph import DictStore, GraphStore, MappingStore
from scv.domain.model import NormalizedEvent
from scv.domain.rulediff import compare, render_text
from scv.kafka import consumer_config
from scv.runner import _end_offsets
from scv.settings import Settings

log = logging.getLogger(__name__)


class RdictMap(MutableMapping[bytes, bytes]):
    """One scratch RocksDB (``rocksdict``) as a byte map. No write-ahead log: the data lives
    only as long as one command."""

    def __init__(self, path: Path) -> None:
        self._db = Rdict(str(path), Options(raw_mode=True))
        no_wal = WriteOptions()
        no_wal.disable_wal = True  # type: ignore[method-assign,assignment]  # property at runtime
        self._db.set_write_options(no_wal)

    def __getitem__(self, key: bytes) -> bytes:
        value = self._db.get(key)
        if value is None:
            raise KeyError(key)
        return bytes(value)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._db[key] = value

    def __delitem__(self, key: bytes) -> None:
        del self._db[key]

    def __iter__(self) -> Iterator[bytes]:
        return (k for k in self._db.keys() if isinstance(k, bytes))

    def __len__(self) -> int:
        return sum(1 for _ in self._db.keys())

    def close(self) -> None:
        self._db.close()


@contextlib.contextmanager
def scratch_stores(
    kind: str, state_dir: Path | None, live_data_dir: Path
) -> Iterator[tuple[GraphStore, GraphStore]]:
    """Two empty graph stores (baseline, candidate), closed and removed on exit.

    ``state_dir`` None means a temporary directory. A given directory keeps nothing of ours
    afterwards either; it must not be, or lie inside, the worker's state (``live_data_dir``).
    """
    if kind == "memory":
        yield DictStore(), DictStore()
        return
    if state_dir is not None:
        here, live = state_dir.resolve(), live_data_dir.resolve()
        if here == live or live in here.parents:
            raise ValueError(f"--state-dir {state_dir} is inside the worker's state {live}")
        state_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="scv-rulediff-", dir=state_dir))
    maps: list[RdictMap] = []
    try:
        for name in ("baseline-owners", "baseline-nodes", "candidate-owners", "candidate-nodes"):
            maps.append(RdictMap(root / name))
        yield MappingStore(maps[0], maps[1]), MappingStore(maps[2], maps[3])
    finally:
        for m in maps:
            m.close()
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------------ input


@dataclass(slots=True)
class Loaded:
    """Decoded events and what was read to get them (counts only: no personal data)."""

    sources: list[str]
    events: list[NormalizedEvent] = field(default_factory=list)
    records: int = 0
    undecodable: int = 0


def decode(values: Iterable[bytes | str | None], sources: list[str]) -> Loaded:
    """NormalizedEvents from JSON values; anything else is counted and skipped."""
    loaded = Loaded(sources)
    for value in values:
        loaded.records += 1
        try:
            event = NormalizedEvent.from_dict(orjson.loads(value))  # type: ignore[arg-type]
            if not math.isfinite(event.ts):
                raise ValueError("ts is not finite")
        except Exception:  # a tombstone, foreign JSON or garbage: not ours to judge here
            loaded.undecodable += 1
            continue
        # The resolver reads ids, time and identifiers only: drop the rest to save memory.
        loaded.events.append(
            NormalizedEvent(event.event_id, event.source, event.type, event.ts, event.identifiers)
        )
    return loaded


def read_file(path: Path) -> Iterator[bytes]:
    """The non-blank lines of a JSONL file of NormalizedEvents."""
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                yield line


def topic_names(consumer: Consumer, settings: Settings, names: Iterable[str]) -> list[str]:
    """Full topic names: ``SCV_TOPIC_PREFIX`` + name when that topic exists, else the name as
    given (so both ``identity.events.v1`` and ``prod-identity.events.v1`` work). The prefixed
    name wins when both exist: everywhere else scv applies the prefix, and an unprefixed
    topic of the same name on a shared cluster belongs to another pipeline."""
    existing = set(consumer.list_topics(timeout=10).topics)
    out = []
    for name in names:
        if settings.topic(name) in existing:
            out.append(settings.topic(name))
        elif name in existing:
            out.append(name)
        else:
            raise ValueError(f"topic {name!r} not found (nor {settings.topic(name)!r})")
    return list(dict.fromkeys(out))


def read_topics(
    settings: Settings, names: Iterable[str], idle_timeout: float = 30.0
) -> tuple[list[str], Iterator[bytes | None]]:
    """The resolved topic names, and every value on them from the log start to the end
    they had when reading began (later records are left for the next run)."""
    group = f"{settings.app_id}-rulediff-{uuid.uuid4().hex[:12]}"  # never the worker's group
    consumer = Consumer(
        consumer_config(
            settings, group, **{"enable.auto.commit": False, "enable.auto.offset.store": False}
        )
    )
    try:
        topics = topic_names(consumer, settings, names)
    except Exception:
        consumer.close()
        raise
    return topics, _values(consumer, topics, idle_timeout)


def _values(consumer: Consumer, topics: list[str], idle_timeout: float) -> Iterator[bytes | None]:
    try:
        remaining: dict[tuple[str, int], int] = {}
        for tp in _end_offsets(consumer, topics):  # tansu-safe log ends
            low, _ = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), 10)
            if tp.offset > max(low, 0):
                remaining[(tp.topic, tp.partition)] = tp.offset
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in remaining])
        last_progress = time.monotonic()
        while remaining:
            batch = consumer.consume(10_000, 0.5)
            for msg in batch:
                where = (msg.topic() or "", msg.partition() or 0)
                offset, end = msg.offset(), remaining.get(where)
                if msg.error() is not None or offset is None or end is None:
                    continue
                last_progress = time.monotonic()
                if offset < end:
                    yield msg.value()
                if offset + 1 >= end:
                    del remaining[where]
            if not batch and remaining:
                # Control records (transaction markers) are never delivered: trust positions.
                for tp in consumer.position([TopicPartition(t, p) for t, p in remaining]):
                    if tp.offset >= remaining[(tp.topic, tp.partition)]:
                        del remaining[(tp.topic, tp.partition)]
                if remaining and time.monotonic() - last_progress > idle_timeout:
                    raise TimeoutError(
                        f"no progress reading {', '.join(topics)} for {idle_timeout}s"
                    )
    finally:
        consumer.close()


# ------------------------------------------------------------------------------ command


def rule_diff(
    settings: Settings,
    *,
    candidate_rules: Path,
    baseline_rules: Path | None,
    topics: list[str] | None,
    file: Path | None,
    limit: int,
    json_path: Path | None,
    store: str,
    state_dir: Path | None,
    out: TextIO,
) -> int:
    """Run ``scv resolve --diff``: load, replay twice, print (and maybe write) the report."""
    baseline_path = baseline_rules or settings.rules_path
    baseline, candidate = load_rules(baseline_path), load_rules(candidate_rules)
    if file is not None:
        loaded = decode(read_file(file), [str(file)])
    else:
        names, values = read_topics(settings, topics or [])
        loaded = decode(values, names)
    log.info(
        "rule diff: %d records from %s, %d undecodable",
        loaded.records,
        loaded.sources,
        loaded.undecodable,
    )
    with scratch_stores(store, state_dir, settings.data_dir) as stores:
        result = compare(loaded.events, baseline, candidate, stores)
    duplicates = len(loaded.events) - result.events
    labels = {
        "baseline_rules": str(baseline_path or f"{DEFAULT_RULES_PATH} (shipped defaults)"),
        "candidate_rules": str(candidate_rules),
    }
    if json_path is not None:
        doc: dict[str, Any] = {
            "input": {
                "sources": loaded.sources,
                "records": loaded.records,
                "undecodable": loaded.undecodable,
                "duplicate_event_ids": duplicates,
                "order": "event time (ts, event_id)",
            },
            **labels,
            "diff": result.to_dict(),
        }
        text = orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text)
        out.write(text)
        return 0
    out.write(
        f"input     {loaded.records} records from {', '.join(loaded.sources)} "
        f"({loaded.undecodable} undecodable, {duplicates} duplicate event ids skipped), "
        "replayed in event-time order\n"
        f"baseline  {labels['baseline_rules']}\n"
        f"candidate {labels['candidate_rules']}\n\n"
    )
    out.write(render_text(result, limit=limit))
    return 0
