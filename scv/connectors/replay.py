"""Replay exported events from files into a raw topic.

Backfills and incident re-runs start from files: JSON lines dumped by a collector, CSV exports
from a CRM, Parquet from the lake. Replay turns each record into the JSON bytes a live source
would have sent and produces it, so the normaliser applies exactly the same rules (and the same
DLQ) as to live traffic. Replay never repairs data: a JSON line that does not parse is produced
as its raw bytes and the normaliser rejects it with a reason.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import orjson

__all__ = ["Position", "ProducerLike", "Undelivered", "detect_format", "read_records", "replay"]

#: How often the producer's delivery callbacks are served and ``progress`` is told the
#: running count (records between two calls).
POLL_EVERY = 1000

_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


class ProducerLike(Protocol):
    """The slice of ``confluent_kafka.Producer`` that replay needs (tests pass a fake)."""

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        *,
        on_delivery: Callable[[Any, Any], None] | None = None,
    ) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float = ...) -> int: ...


class Undelivered(RuntimeError):
    """Records the broker did not take (not the file's fault: the file may be sent again)."""


def detect_format(path: Path, fmt: str | None = None) -> str:
    """``jsonl``, ``csv`` or ``parquet``: the explicit ``fmt`` wins, else the file suffix."""
    if fmt is not None:
        fmt = fmt.lower().lstrip(".")
        fmt = {"ndjson": "jsonl", "pq": "parquet"}.get(fmt, fmt)
        if fmt not in {"jsonl", "csv", "parquet"}:
            raise ValueError(f"unknown format {fmt!r} (jsonl, ndjson, csv, parquet)")
        return fmt
    try:
        return _SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise ValueError(f"cannot tell the format of {path}; pass fmt=") from None


# --------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------


class Position:
    """How many bytes of its file a reader has consumed; asked only when progress is drawn.

    The reader installs :attr:`tell` when it opens the file: the byte offset of a binary
    file (JSON lines), of the buffer under the text decoder (CSV, a few KiB ahead), or the
    share of rows read times the file size (Parquet, which is read in row batches).
    """

    def __init__(self) -> None:
        self.tell: Callable[[], int] = lambda: 0


#: Marks a JSON-lines line that did not parse (None is a valid JSON value, so it can't be that).
_INVALID = object()


def _jsonl_lines(path: Path, where: Position | None = None) -> Iterator[tuple[int, bytes, Any]]:
    """(line number, raw bytes without the line break, parsed JSON or ``_INVALID``)."""
    with path.open("rb") as fh:
        if where is not None:
            where.tell = fh.tell
        for lineno, line in enumerate(fh, 1):
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed = _INVALID
            yield lineno, raw, parsed


def _csv_cell(text: str) -> Any:
    """A cell holds JSON when it parses (numbers, booleans, null, arrays, objects), else text.

    CSV has no types; a JSON reading recovers ``"total": 12.5`` and ``"items": [...]`` from an
    export, while ids with leading zeros or ``+`` (``07700…``, ``+44…``) are not JSON and stay
    strings.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _csv_records(path: Path, where: Position | None = None) -> Iterator[dict[str, Any]]:
    with path.open("rb") as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as fh:
        if where is not None:
            where.tell = raw.tell
        reader = csv.DictReader(fh)
        for rowno, row in enumerate(reader, 2):
            record: dict[str, Any] = {}
            for column, cell in row.items():
                if column is None or cell is None or cell == "":
                    continue  # ragged rows; an empty cell means "absent", not ""
                parts = column.split(".")
                target = record
                for part in parts[:-1]:
                    child = target.setdefault(part, {})
                    if not isinstance(child, dict):
                        raise ValueError(f"{path}:{rowno}: column {column!r} clashes with {part!r}")
                    target = child
                if parts[-1] in target:
                    raise ValueError(f"{path}:{rowno}: column {column!r} clashes with another")
                target[parts[-1]] = _csv_cell(cell)
            yield record


def _drop_nulls(value: Any) -> Any:
    """Parquet writes an absent optional field as null; a JSON source would omit the key."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _parquet_records(path: Path, where: Position | None = None) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq  # heavy import, only when a Parquet file is replayed

    with pq.ParquetFile(path) as parquet:
        rows, done = max(1, parquet.metadata.num_rows), [0]
        if where is not None:
            size = path.stat().st_size
            where.tell = lambda: size * done[0] // rows
        for batch in parquet.iter_batches(batch_size=10_000):
            for row in batch.to_pylist():
                done[0] += 1
                yield _drop_nulls(row)


def read_records(
    path: Path, *, fmt: str | None = None, where: Position | None = None
) -> Iterator[dict[str, Any]]:
    """The records of one file as dicts, streamed (files larger than memory are fine).

    ``.jsonl``/``.ndjson``: one JSON object per line, blank lines skipped; a line that is not a
    JSON object raises ``ValueError`` naming the line (use :func:`replay`, which passes such
    lines through, to move data without judging it). ``.csv``: a header row; dotted names
    (``cart.cart_id``) build nested objects; see :func:`_csv_cell` for cell typing; empty cells
    are omitted. ``.parquet``: rows with nested structs as dicts; nulls are omitted.
    """
    kind = detect_format(path, fmt)
    if kind == "csv":
        yield from _csv_records(path, where)
    elif kind == "parquet":
        yield from _parquet_records(path, where)
    else:
        for lineno, _raw, parsed in _jsonl_lines(path, where):
            if not isinstance(parsed, dict):
                raise ValueError(f"{path}:{lineno}: not a JSON object")
            yield parsed


# --------------------------------------------------------------------------------------------
# Replay
# --------------------------------------------------------------------------------------------


def _default(value: Any) -> Any:
    """orjson fallback for Parquet types JSON lacks (decimals, binary)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _key_of(record: Any, key_field: str | None) -> bytes | None:
    """``str(record[key_field])`` (dotted paths reach nested fields); None when absent."""
    if key_field is None or not isinstance(record, dict):
        return None
    value: Any = record
    for part in key_field.split("."):
        if not isinstance(value, dict) or value.get(part) is None:
            return None
        value = value[part]
    return str(value).encode()


def _payloads(path: Path, fmt: str | None, where: Position) -> Iterator[tuple[bytes, Any]]:
    """(bytes to produce, parsed record or None) for every record of a file."""
    if detect_format(path, fmt) == "jsonl":
        # The line's own bytes: re-encoding could alter numbers or key order the source chose.
        for _lineno, raw, parsed in _jsonl_lines(path, where):
            yield raw, (None if parsed is _INVALID else parsed)
    else:
        for record in read_records(path, fmt=fmt, where=where):
            yield orjson.dumps(record, default=_default), record


def replay(
    paths: Sequence[Path],
    topic: str,
    producer: ProducerLike,
    *,
    key_field: str | None = None,
    fmt: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Produce every record of ``paths`` (in order) to ``topic``; returns how many.

    Values are JSON bytes; the key is ``str(record[key_field])`` when the record has that
    field, else None. ``poll(0)`` every :data:`POLL_EVERY` records serves delivery callbacks,
    and a full local queue (``BufferError``) is waited out instead of dropping the record. The
    final ``flush`` must empty the queue and every delivery report must be clean, or
    :class:`Undelivered` says how many were not delivered (a record that timed out in the
    queue leaves it too, so an empty queue alone proves nothing). ``progress`` is told
    (records so far, bytes of input read) as often, and once at the end
    (:class:`scv.connectors.progress.Progress` draws it).
    """
    count = 0
    before = 0  # bytes of the files already finished
    failed: list[str] = []

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    for path in paths:
        path = Path(path)
        where = Position()
        for value, record in _payloads(path, fmt, where):
            key = _key_of(record, key_field)
            while True:
                try:
                    producer.produce(topic, value, key=key, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.5)
            count += 1
            if count % POLL_EVERY == 0:
                producer.poll(0)
                if progress is not None:
                    progress(count, before + where.tell())
        before += path.stat().st_size
    left = producer.flush()
    if left or failed:
        raise Undelivered(
            f"{left} of {count} records still queued after flush, {len(failed)} failed"
            + (f" (first: {failed[0]})" if failed else "")
        )
    if progress is not None:
        progress(count, before)
    return count
