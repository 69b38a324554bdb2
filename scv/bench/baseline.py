"""The naive-Faust baseline: what a plain Faust agent does on the same machine and broker.

scv's throughput only says something next to a yardstick measured in the same run, on the
same machine, against the same broker and traffic; figures from another day or another
machine make the ratio meaningless. :func:`run_baseline` runs the agent of
:mod:`scv.bench.baseline_app` (decode + ONE RocksDB table write per event, or decode only)
as a subprocess and measures its sustained rate.

How the measurement is kept honest:

* the events are produced *before* the worker starts, so the producer never competes with
  the worker for the CPU and the worker never waits for input (the rate is the agent's, not
  the producer's);
* the clock starts at the first event the agent processes, which Faust delivers only after
  the group is joined, partitions are assigned and tables are recovered, so start-up is
  never counted;
* the clock stops when the agent has processed the last event *and* the Faust producer has
  flushed, so in table mode every changelog write is on the broker (``seconds``). The moment
  the group's committed offsets reach the end of the topic is reported too
  (``drained_seconds``); it includes Faust's commit interval (2.8 s by default), which scv's
  own drain-based figures also pay, and is only polled once the agent is done so that the
  lag queries do not steal CPU from the measurement.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from scv.kafka import producer_config
from scv.runner import Subprocess, memory_mb, pids_cpu_seconds, settings_env, wait_drained
from scv.settings import Settings
from scv.topics import TopicSpec, create_topics

#: Seed of the generated demo traffic when ``events`` is a count (the demo's default).
DEMO_SEED = 7

_runs = itertools.count(1)


def demo_messages(count: int, seed: int = DEMO_SEED) -> list[tuple[bytes | None, bytes]]:
    """``count`` demo events as (key, value) pairs: the traffic ``scv demo`` sends."""
    from scv.connectors.demo import generate

    return [(ev.key, ev.value) for ev in generate(count, seed)]


def prepare_peer(
    prefix: str,
    events: int | Sequence[tuple[bytes | None, bytes]],
    bootstrap: str,
    work_dir: Path,
    partitions: int,
    session_timeout_s: float,
    topic_config: dict[str, str] | None = None,
) -> tuple[list[tuple[bytes | None, bytes]], str, Path, Settings, str]:
    """What every peer run starts with: its messages, a unique name (its app id), a work
    folder, settings, and its input topic created and filled: (messages, name, work,
    settings, topic)."""
    messages = demo_messages(events) if isinstance(events, int) else list(events)
    if not messages:
        raise ValueError(f"{prefix} needs at least one event")
    name = f"{prefix}-{os.getpid()}-{int(time.time() * 1000)}-{next(_runs)}"
    work = work_dir / name
    work.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        bootstrap_servers=bootstrap, app_id=name, session_timeout_s=session_timeout_s
    )
    topic = f"{name}.raw"
    create_topics(settings, [TopicSpec(topic, partitions, config=topic_config or {})])
    produce(settings, topic, messages)
    return messages, name, work, settings, topic


def produce(settings: Settings, topic: str, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
    """Produce every message with scv's producer settings (murmur2 keys, large batches).

    Raises when a message is not acknowledged, so a run never measures missing input.
    """
    producer = Producer(producer_config(settings))
    failed: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    for n, (key, value) in enumerate(messages, 1):
        producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
        if n % 5000 == 0:
            producer.poll(0)
    remaining = producer.flush(60)
    if remaining or failed:
        raise RuntimeError(
            f"{topic}: {remaining} messages unsent, {len(failed)} failed ({failed[:3]})"
        )


class BaselineWorker(Subprocess):
    """One ``python -m scv.bench.baseline_app worker`` subprocess and its status file."""

    module = "scv.bench.baseline_app"
    #: How errors name it.
    name = "baseline worker"

    def __init__(self, env: dict[str, str], status_path: Path, log_path: Path) -> None:
        super().__init__(env, log_path)
        self.status_path = status_path

    def status(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.status_path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return {}

    def wait_for(self, key: str, timeout: float) -> dict[str, Any]:
        """Poll the status file until ``key`` is true; fail early if the worker died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if status.get(key):
                return status
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            time.sleep(0.01)
        raise TimeoutError(f"{self.name} not {key} after {timeout}s: {self.status()}")


def run_baseline(
    bootstrap: str,
    events: list[tuple[bytes | None, bytes]] | int,
    *,
    table_writes: bool = True,
    partitions: int = 1,
    work_dir: Path,
    timeout: float,
    session_timeout_s: float = 4.0,
    broker_pids: Sequence[int] = (),
) -> dict[str, Any]:
    """Run the naive Faust agent over ``events`` on the broker at ``bootstrap``; report speed.

    ``events`` is a list of (key, value) messages or a count of demo events (seed
    :data:`DEMO_SEED`). ``table_writes`` chooses one RocksDB table write per event or none.
    Each call uses a topic, app id and consumer group of its own, so runs can share a broker.
    ``timeout`` bounds each wait (worker ready, events processed, group drained).

    Returns ``events``, ``seconds`` (first processed event → last processed and flushed),
    ``events_per_second``, ``table_writes`` and ``peak_rss_mb`` (the worker's ``VmHWM``), plus
    the committed-offset figures ``drained_seconds`` / ``drained_events_per_second``, the
    start-up time ``startup_seconds`` (worker launch → ready), ``decode_errors`` and, in
    table mode, the table's ``table_keys``, ``table_sum`` (must equal ``events``) and
    ``changelog_topic``. ``cpu_us_per_event`` has the agent's CPU per event (first event →
    flushed, every thread) and, given the broker's ``broker_pids``, the broker's (agent ready
    → done, read from ``/proc``).
    """
    mode = "table" if table_writes else "notable"
    messages, name, work, settings, topic = prepare_peer(
        f"baseline-{mode}", events, bootstrap, work_dir, partitions, session_timeout_s
    )

    env = (
        dict(os.environ)
        | settings_env(settings)
        | {
            "SCV_LOG_LEVEL": "warning",
            "SCV_BASELINE_APP_ID": name,
            "SCV_BASELINE_TOPIC": topic,
            "SCV_BASELINE_PARTITIONS": str(partitions),
            "SCV_BASELINE_DATA_DIR": str(work / "state"),
            "SCV_BASELINE_TABLE_WRITES": "1" if table_writes else "0",
            "SCV_BASELINE_EXPECT": str(len(messages)),
            "SCV_BASELINE_STATUS": str(work / "status.json"),
        }
    )
    worker = BaselineWorker(env, work / "status.json", work / "worker.log")
    launched = time.time()
    try:
        worker.start()
        ready = worker.wait_for("ready", timeout)
        broker_cpu = pids_cpu_seconds(broker_pids)
        done = worker.wait_for("done", timeout)
        broker_cpu = pids_cpu_seconds(broker_pids) - broker_cpu
        drained_at = _wait_lag_zero(settings, topic, timeout)
        peak = memory_mb(worker.proc.pid).get("peak_rss_mb") if worker.proc is not None else None
    except BaseException:
        with contextlib.suppress(Exception):
            worker.stop(timeout=5.0)
        raise
    worker.stop()

    first, flushed = float(done["first_at"]), float(done["flushed_at"])
    seconds = max(flushed - first, 1e-9)
    drained = max(drained_at - first, 1e-9)
    count = int(done["count"])
    result: dict[str, Any] = {
        "events": count,
        "seconds": round(seconds, 3),
        "events_per_second": round(count / seconds, 1),
        "table_writes": table_writes,
        "peak_rss_mb": peak,
        "drained_seconds": round(drained, 3),
        "drained_events_per_second": round(count / drained, 1),
        "startup_seconds": round(float(ready["ready_at"]) - launched, 2),
        "decode_errors": int(done["decode_errors"]),
        "partitions": partitions,
        "cpu_us_per_event": peer_cpu(done, "cpu_flushed", count, broker_cpu, broker_pids),
    }
    if table_writes:
        result["table_keys"] = done["table_keys"]
        result["table_sum"] = done["table_sum"]
        result["changelog_topic"] = done["changelog_topic"]
    return result


def peer_cpu(
    done: dict[str, Any], end: str, count: int, broker_cpu: float, broker_pids: Sequence[int]
) -> dict[str, float]:
    """A peer's ``cpu_us_per_event``: its own (``cpu_first`` → ``end`` in its status) and the
    broker's over the same run, when its pids were given."""
    out = {"app": round((float(done[end]) - float(done["cpu_first"])) / count * 1e6, 1)}
    if broker_pids:
        out["broker"] = round(broker_cpu / count * 1e6, 1)
    return out


def _wait_lag_zero(settings: Settings, topic: str, timeout: float) -> float:
    """Wall-clock time at which the group's committed lag on ``topic`` was first seen at zero.

    :func:`scv.runner.wait_drained` without a settle time: nothing downstream can add work,
    so the first zero is the end. It gives up (``DrainTimeout``) when the lag stops going
    down, or after ``timeout``.
    """
    return wait_drained(settings, [topic], timeout, settle=0.0, poll=0.1)
