"""A naive Faust worker: the yardstick scv's throughput is compared against.

"How fast is scv?" only means something next to what a plain Faust agent does on the same
machine, broker and traffic. This module is that plain agent and nothing of scv's pipeline:
one agent reads raw JSON events (bytes), decodes each with orjson and, in table mode, makes
exactly ONE table write per event (``counts[key] = counts[key] + 1`` in a RocksDB table, so
one changelog message per event). With ``SCV_BASELINE_TABLE_WRITES=0`` it only decodes and
counts in memory: the ceiling of a Faust agent on this stack.

It shares only the Kafka client settings with scv (:func:`scv.kafka.faust_broker_kwargs`, from
the ``SCV_*`` connection variables), so both talk to the broker the same way. Everything
else comes from ``SCV_BASELINE_*`` variables, set by :func:`scv.bench.baseline.run_baseline`:

``SCV_BASELINE_APP_ID``      Faust app id and consumer group (default ``scv-baseline``)
``SCV_BASELINE_TOPIC``       input topic (required; must exist with ``..._PARTITIONS``)
``SCV_BASELINE_PARTITIONS``  partitions of the input topic and the table (default 1)
``SCV_BASELINE_DATA_DIR``    Faust data dir for the RocksDB table (default ``var/baseline``)
``SCV_BASELINE_STORE``       table store (default ``rocksdb://``)
``SCV_BASELINE_TABLE_WRITES`` ``1`` (default): one table write per event; ``0``: none
``SCV_BASELINE_EXPECT``      events to wait for before reporting ``done`` (0: never done)
``SCV_BASELINE_STATUS``      JSON status file, rewritten atomically (required)

The status file is how the parent measures without disturbing the worker: it holds the
wall-clock times of the first and last processed event (taken inside the agent, so
group-join and recovery time are never counted), of the producer flush after the last
event (the changelog writes are then on the broker), and, once done, the table's key count
and sum of counts (proof that the writes really happened).

Run it as ``python -m scv.bench.baseline_app worker``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust
import orjson

from scv.kafka import faust_broker_kwargs, set_fetch_max_wait
from scv.settings import Settings

log = logging.getLogger(__name__)

#: How often the status file is rewritten while the worker runs (progress and readiness).
STATUS_INTERVAL_S = 0.25


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(f"SCV_BASELINE_{name}", default)
    if value is None:
        raise SystemExit(f"SCV_BASELINE_{name} is required")
    return value


def _flag(name: str, default: str) -> bool:
    return _env(name, default).strip().lower() not in ("0", "false", "no", "off", "")


settings = Settings()
# Tuned as scv's own Faust worker was: Faust's hard-coded 1.5 s fetch wait is lifted.
set_fetch_max_wait(settings.fetch_max_wait_ms)
APP_ID = _env("APP_ID", "scv-baseline")
TOPIC = _env("TOPIC", "")
PARTITIONS = int(_env("PARTITIONS", "1"))
DATA_DIR = Path(_env("DATA_DIR", "var/baseline"))
STORE = _env("STORE", "rocksdb://")
TABLE_WRITES = _flag("TABLE_WRITES", "1")
EXPECT = int(_env("EXPECT", "0"))
STATUS_PATH = Path(_env("STATUS", "")) if os.environ.get("SCV_BASELINE_STATUS") else None

app = faust.App(
    APP_ID,
    autodiscover=False,
    store=STORE,
    datadir=str(DATA_DIR),
    topic_partitions=PARTITIONS,
    # No HTTP at all: the status file reports readiness, and a web server is one more
    # thing competing for the CPU being measured.
    web_enabled=False,
    **faust_broker_kwargs(settings),
)

#: Raw bytes in, like scv's raw topics: decoding is part of the work being measured.
source = app.topic(
    TOPIC or "scv-baseline-unset",
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=PARTITIONS,
    internal=False,
)

#: Events per message key. ``default=int`` and JSON values: what a naive agent would write.
counts = app.Table(
    "counts",
    default=int,
    key_type=bytes,
    value_type=int,
    partitions=PARTITIONS,
    help="message key -> events seen",
)


class Progress:
    """What the agent did, in wall-clock seconds (``time.time()``, comparable across processes)."""

    def __init__(self) -> None:
        self.count = 0
        self.decode_errors = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.flushed_at: float | None = None
        # CPU of this process (every thread) at the first event and after the flush
        self.cpu_first: float | None = None
        self.cpu_flushed: float | None = None
        self.ready_at: float | None = None
        self.done = False
        self.table_keys: int | None = None
        self.table_sum: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "app_id": APP_ID,
            "topic": TOPIC,
            "table_writes": TABLE_WRITES,
            "expect": EXPECT,
            "ready": self.ready_at is not None,
            "ready_at": self.ready_at,
            "count": self.count,
            "decode_errors": self.decode_errors,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "flushed_at": self.flushed_at,
            "cpu_first": self.cpu_first,
            "cpu_flushed": self.cpu_flushed,
            "done": self.done,
            "table_keys": self.table_keys,
            "table_sum": self.table_sum,
            "changelog_topic": counts.changelog_topic.get_topic_name() if TABLE_WRITES else None,
        }


progress = Progress()


def write_status() -> None:
    """Rewrite the status file atomically, so the parent never reads half a file."""
    if STATUS_PATH is None:
        return
    tmp = STATUS_PATH.with_name(STATUS_PATH.name + ".tmp")
    tmp.write_text(json.dumps(progress.as_dict()), encoding="utf-8")
    os.replace(tmp, STATUS_PATH)


def is_ready() -> bool:
    """Group joined, every input partition assigned here, tables recovered, no rebalance.

    The same test as scv's ``/readyz`` plus the assignment, so "ready" means the agent can
    receive every partition's messages.
    """
    recovery = app.tables.recovery  # type: ignore[attr-defined]
    if not recovery.completed.is_set() or app.rebalancing:
        return False
    assigned = {tp for tp in app.assignor.assigned_actives() if tp.topic == TOPIC}
    return len(assigned) == PARTITIONS


async def finish() -> None:
    """After the expected event: flush the producer (changelog on the broker), sum the table."""
    if TABLE_WRITES:
        await app.producer.flush()
    progress.flushed_at, progress.cpu_flushed = time.time(), time.process_time()
    if TABLE_WRITES:
        keys = total = 0
        for _, value in counts.items():
            keys += 1
            total += int(value)
        progress.table_keys, progress.table_sum = keys, total
    progress.done = True
    write_status()


@app.agent(source, name="baseline")
async def baseline_agent(stream: Any) -> None:
    """Decode every event; in table mode count it under its key (one table write)."""
    async for key, value in stream.items():
        if progress.first_at is None:
            progress.first_at, progress.cpu_first = time.time(), time.process_time()
        try:
            orjson.loads(value)
        except orjson.JSONDecodeError:
            # Malformed input still counts as an event; it is decoded (and fails) like the rest.
            progress.decode_errors += 1
        if TABLE_WRITES:
            table_key = key if key is not None else b""
            counts[table_key] = counts[table_key] + 1
        progress.count += 1
        progress.last_at = time.time()
        if EXPECT and progress.count == EXPECT:
            await finish()


@app.timer(STATUS_INTERVAL_S)
async def report() -> None:
    """Mark readiness once, and keep the status file current for progress and diagnosis."""
    if progress.ready_at is None and is_ready():
        progress.ready_at = time.time()
    write_status()


def main(argv: Sequence[str] | None = None) -> int:
    """``worker``: run the Faust worker until SIGTERM."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["worker"]:
        print("usage: python -m scv.bench.baseline_app worker", file=sys.stderr)
        return 2
    if not TOPIC:
        print("SCV_BASELINE_TOPIC is required", file=sys.stderr)
        return 2
    from faust.worker import Worker

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    Worker(app, loglevel=settings.log_level, quiet=True).execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
