"""``scv export --parquet PATH``: the current profiles as one Parquet file.

The source is ``profiles.v1``, the compacted topic activation services read, not the
workers' tables: it needs no worker, works from any machine that reaches Kafka, and shows
exactly what consumers see. It is read from the beginning to the end every partition had
when the export started, keeping the last value per key; a tombstone (a profile merged away
or erased) removes the key. Memory is one snapshot per live profile.

Schema: the snapshot's own field names, with types a lake can query.

* Epoch-second floats (``created_ts``, ``consent[].ts``, …) become
  ``timestamp[us, UTC]``, so SQL engines compare and bucket them without conversions.
* Keyed collections with a fixed value shape are lists of structs: ``identifiers`` is
  ``list<struct<type, value>>`` (one element per identifier, ready to ``UNNEST`` and join
  on), ``consent`` is ``list<struct<purpose, granted, ts, source>>``. A struct with one
  field per identifier type or purpose would change the file's schema whenever a source
  sends a new type, and files written on different days would no longer union.
* ``channels`` (source -> event count) is a ``map<string, int64>``.
* ``traits`` and cart ``items`` are JSON strings (Parquet's JSON logical type): their
  keys and value types are the sources' choice, the same trait can be a string in one
  profile and a number in another, and Arrow has no column type for that.
* Fields this exporter does not know (added to the snapshot after it was written) land in
  ``extra`` as JSON instead of being dropped.

The file is written under a temporary name and renamed into place, so a reader (or a drop
folder watcher) never sees half an export.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from scv.kafka import consumer_config
from scv.settings import Settings
from scv.topics import Topics

__all__ = ["SCHEMA", "export_parquet", "latest_profiles", "profiles_table"]

TS = pa.timestamp("us", tz="UTC")
#: Rows per Parquet row group (and per conversion batch): bounds the conversion's memory.
ROW_GROUP = 50_000


def _schema(json_type: pa.DataType) -> pa.Schema:
    return pa.schema(
        [
            pa.field("profile_id", pa.string(), nullable=False),
            pa.field("created_ts", TS),
            pa.field("updated_ts", TS),
            pa.field(
                "identifiers", pa.list_(pa.struct([("type", pa.string()), ("value", pa.string())]))
            ),
            pa.field("traits", json_type),
            pa.field(
                "consent",
                pa.list_(
                    pa.struct(
                        [
                            ("purpose", pa.string()),
                            ("granted", pa.bool_()),
                            ("ts", TS),
                            ("source", pa.string()),
                        ]
                    )
                ),
            ),
            pa.field("channels", pa.map_(pa.string(), pa.int64())),
            pa.field(
                "last_activity",
                pa.struct([("ts", TS), ("source", pa.string()), ("type", pa.string())]),
            ),
            pa.field(
                "open_carts",
                pa.list_(
                    pa.struct(
                        [
                            ("cart_id", pa.string()),
                            ("items", json_type),
                            ("currency", pa.string()),
                            ("updated_ts", TS),
                            ("due_at", TS),
                        ]
                    )
                ),
            ),
            pa.field(
                "orders",
                pa.struct(
                    [
                        ("count", pa.int64()),
                        ("total", pa.float64()),
                        ("last_order_id", pa.string()),
                        ("last_ts", TS),
                        ("returns", pa.int64()),
                    ]
                ),
            ),
            pa.field("churn_risk", pa.struct([("flagged_ts", TS), ("event_id", pa.string())])),
            pa.field("merged_from", pa.list_(pa.string())),
            pa.field("event_count", pa.int64()),
            pa.field("extra", json_type),
        ]
    )


#: The export's schema (JSON columns carry Parquet's JSON logical type).
SCHEMA = _schema(pa.json_())
#: The same with JSON columns as plain strings: what rows are built in before the cast
#: (``Table.from_pylist`` cannot build extension types inside lists and structs).
_STORAGE = _schema(pa.string())
_KNOWN = frozenset(SCHEMA.names)


def _us(ts: Any) -> int | None:
    """Epoch seconds (float) -> epoch microseconds."""
    return None if ts is None else round(float(ts) * 1_000_000)


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def row(snapshot: dict[str, Any]) -> dict[str, Any]:
    """One ``profiles.v1`` snapshot as a row of :data:`SCHEMA` (JSON columns as text)."""
    s = snapshot
    activity = s.get("last_activity")
    orders = s.get("orders") or {}
    churn = s.get("churn_risk")
    extra = {k: v for k, v in s.items() if k not in _KNOWN}
    return {
        "profile_id": s["profile_id"],
        "created_ts": _us(s.get("created_ts")),
        "updated_ts": _us(s.get("updated_ts")),
        "identifiers": [
            {"type": kind, "value": value}
            for kind, values in (s.get("identifiers") or {}).items()
            for value in values
        ],
        "traits": _json(s.get("traits") or {}),
        "consent": [
            {
                "purpose": purpose,
                "granted": rec.get("granted"),
                "ts": _us(rec.get("ts")),
                "source": rec.get("source"),
            }
            for purpose, rec in (s.get("consent") or {}).items()
        ],
        "channels": s.get("channels") or {},
        "last_activity": None
        if activity is None
        else {
            "ts": _us(activity.get("ts")),
            "source": activity.get("source"),
            "type": activity.get("type"),
        },
        "open_carts": [
            {
                "cart_id": c.get("cart_id"),
                "items": _json(c.get("items") or []),
                "currency": c.get("currency"),
                "updated_ts": _us(c.get("updated_ts")),
                "due_at": _us(c.get("due_at")),
            }
            for c in s.get("open_carts") or []
        ],
        "orders": {
            "count": orders.get("count", 0),
            "total": orders.get("total", 0.0),
            "last_order_id": orders.get("last_order_id"),
            "last_ts": _us(orders.get("last_ts")),
            "returns": orders.get("returns", 0),
        },
        "churn_risk": None
        if churn is None
        else {"flagged_ts": _us(churn.get("flagged_ts")), "event_id": churn.get("event_id")},
        "merged_from": list(s.get("merged_from") or []),
        "event_count": s.get("event_count", 0),
        "extra": _json(extra) if extra else None,
    }


def profiles_table(snapshots: Iterable[dict[str, Any]]) -> pa.Table:
    """Snapshots -> an Arrow table of :data:`SCHEMA`."""
    return pa.Table.from_pylist([row(s) for s in snapshots], schema=_STORAGE).cast(SCHEMA)


def latest_profiles(settings: Settings, timeout: float = 120.0) -> dict[bytes, bytes]:
    """``profiles.v1`` read with compaction semantics: {profile id: last snapshot bytes}.

    Partitions are assigned directly (no consumer group, nothing committed) from the
    beginning, and each is read until the consumer reports its end (``enable.partition.eof``,
    taken from the fetch responses' high watermark: tansu's ListOffsets under-reports it).
    """
    topic = Topics(settings).profiles
    consumer = Consumer(
        consumer_config(
            settings,
            f"{settings.app_id}-export",
            **{"enable.auto.commit": False, "enable.partition.eof": True},
        )
    )
    try:
        meta = consumer.list_topics(topic, timeout=30).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise RuntimeError(
                f"topic {topic} not found (check SCV_BOOTSTRAP_SERVERS, SCV_TOPIC_PREFIX)"
            )
        pending = set(meta.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        latest: dict[bytes, bytes] = {}
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: partitions {sorted(pending)} not read to the end")
            for msg in consumer.consume(10_000, 0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    raise RuntimeError(f"{topic}: {err}")
                key, value = msg.key(), msg.value()
                if key is None:
                    continue
                if value is None:
                    latest.pop(key, None)  # tombstone: merged away or erased
                else:
                    latest[key] = value
        return latest
    finally:
        consumer.close()


def _chunks(values: Iterable[bytes], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for value in values:
        chunk.append(orjson.loads(value))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def export_parquet(settings: Settings, path: Path, timeout: float = 120.0) -> int:
    """Write every live profile to ``path`` (Parquet, zstd); returns how many."""
    latest = latest_profiles(settings, timeout)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    try:
        with pq.ParquetWriter(tmp, SCHEMA, compression="zstd") as writer:
            for chunk in _chunks((latest[k] for k in sorted(latest)), ROW_GROUP):
                writer.write_table(profiles_table(chunk), row_group_size=ROW_GROUP)
                count += len(chunk)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return count
