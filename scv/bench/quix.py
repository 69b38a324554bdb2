"""The naive Quix Streams peer: what a stateful Quix Streams app does on the same broker.

:func:`run_quix` runs the app of :mod:`scv.bench.quix_app` (decode + ONE RocksDB state
write per event, Quix's defaults otherwise) as a subprocess over the same demo events the
naive Faust agent gets (:func:`scv.bench.baseline.run_baseline`), on a topic of its own, and
measures its sustained rate the same way:

* the events are produced *before* the app starts, so the producer never competes with it;
* the clock starts at the first event the app processes (after group join, assignment and
  state recovery) and stops when the checkpoint holding the last event is committed: state
  written to RocksDB, changelog produced and flushed, input offsets committed
  (``seconds``). The moment the group's committed lag on the topic is first seen at zero
  is reported too (``drained_seconds``);
* the app's own CPU per event over that window is read inside it (``time.process_time``,
  every thread of the process), and the broker's from ``/proc`` by the caller.

Quix Streams (3.28) pins ``confluent-kafka<2.13`` and ``pydantic<2.14``, older than what scv
runs on, so installing it next to scv would downgrade scv's own Kafka client. The app runs
in a virtualenv of its own instead, made once under ``~/.cache/scv/quixstreams-<version>``
with ``pip install quixstreams==<version>`` (:func:`quix_python`); ``SCV_QUIX_PYTHON`` names
an interpreter that already has quixstreams instead. Its confluent-kafka (librdkafka) is
then the one Quix Streams ships with, as it would be for a team using it.

**On tansu.** Quix derives its changelog topic's config from the input topic's, which it
reads with DescribeConfigs, and needs ``retention.ms`` among them: Apache Kafka lists every
config, tansu 0.6 only those the topic was created with, so an app on a plain tansu topic
stops at start-up with ``KeyError: 'retention.ms'``. The input topic is therefore created
with Kafka's default retention (7 days, no size limit) spelled out, which changes nothing on
Kafka and lets Quix start on tansu.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from scv.bench.baseline import BaselineWorker, peer_cpu, prepare_peer
from scv.brokers.fetch import cache_root
from scv.runner import latest_by_key, memory_mb, pids_cpu_seconds, read_topic, wait_drained

#: The Quix Streams release the peer runs (PyPI), in a virtualenv of its own.
QUIXSTREAMS_VERSION = "3.28.1"

#: Kafka's defaults, spelled out so tansu's DescribeConfigs lists them (see the module doc).
INPUT_TOPIC_CONFIG = {"retention.ms": "604800000", "retention.bytes": "-1"}

_APP = Path(__file__).with_name("quix_app.py")
_COMPLETE = ".complete"


class QuixSetupError(RuntimeError):
    """What stops the Quix Streams peer from being installed, in one line."""


def quix_python(version: str = QUIXSTREAMS_VERSION) -> str:
    """An interpreter with ``quixstreams==version``: ``SCV_QUIX_PYTHON`` if set, else the
    virtualenv under ``~/.cache/scv/quixstreams-<version>``, made on first use (pip, PyPI)."""
    given = os.environ.get("SCV_QUIX_PYTHON")
    if given:
        return given
    folder = cache_root() / f"quixstreams-{version}"
    python = folder / "venv" / "bin" / "python"
    if (folder / _COMPLETE).exists():
        return str(python)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be installing the same one
        if not (folder / _COMPLETE).exists():
            _install(version, folder / "venv")
            (folder / _COMPLETE).write_text(f"quixstreams=={version}\n")
    return str(python)


def _install(version: str, venv: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)  # what a cut-short install left
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [*pip, "install", "-q", f"quixstreams=={version}"],
    ]
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
            raise QuixSetupError(f"could not install quixstreams=={version} in {venv}: {tail}")


class QuixWorker(BaselineWorker):
    """One ``quix_app.py worker`` subprocess (in the Quix virtualenv) and its status file."""

    name = "Quix Streams app"

    def __init__(self, python: str, env: dict[str, str], status_path: Path, log_path: Path) -> None:
        super().__init__(env, status_path, log_path)
        self.python = python

    def command(self) -> list[str]:
        return [self.python, str(_APP), "worker"]


def run_quix(
    bootstrap: str,
    events: list[tuple[bytes | None, bytes]] | int,
    *,
    partitions: int = 1,
    work_dir: Path,
    timeout: float,
    session_timeout_s: float = 4.0,
    python: str | None = None,
    broker_pids: Sequence[int] = (),
) -> dict[str, Any]:
    """Run the naive Quix Streams app over ``events`` on the broker at ``bootstrap``.

    ``events`` is a list of (key, value) messages or a count of demo events. Each call uses a
    topic, consumer group and state directory of its own, so runs can share a broker.
    ``timeout`` bounds each wait (app started, events processed, group drained).

    Returns ``events``, ``seconds`` (first processed event → checkpoint with the last one
    committed), ``events_per_second``, ``processing_seconds`` (first → last processed),
    ``drained_seconds`` / ``drained_events_per_second`` (committed lag seen at zero),
    ``startup_seconds`` (launch → first event), ``cpu_us_per_event`` (the app's, first event
    → committed, and given the broker's ``broker_pids``, the broker's over the run),
    ``peak_rss_mb``, ``decode_errors``, ``state_writes`` (one per event), the changelog
    read back from the broker (``changelog_topic``, ``changelog_messages``,
    ``changelog_keys`` and ``changelog_sum``, which must equal ``events``), and the
    ``quixstreams`` version.
    """
    python = python or quix_python()
    messages, name, work, settings, topic = prepare_peer(
        "quix", events, bootstrap, work_dir, partitions, session_timeout_s, INPUT_TOPIC_CONFIG
    )

    env = dict(os.environ) | {
        "SCV_QUIX_BOOTSTRAP": bootstrap,
        "SCV_QUIX_APP_ID": name,
        "SCV_QUIX_TOPIC": topic,
        "SCV_QUIX_STATE_DIR": str(work / "state"),
        "SCV_QUIX_EXPECT": str(len(messages)),
        "SCV_QUIX_STATUS": str(work / "status.json"),
        "SCV_QUIX_SESSION_TIMEOUT_MS": str(int(session_timeout_s * 1000)),
        # The fetch wait every other peer's consumer uses (scv's; the Faust agent's lifted)
        "SCV_QUIX_FETCH_MAX_WAIT_MS": str(settings.fetch_max_wait_ms),
        # The app imports nothing of scv; keep scv's path out of the other interpreter.
        "PYTHONPATH": "",
    }
    worker = QuixWorker(python, env, work / "status.json", work / "app.log")
    launched = time.time()
    try:
        worker.start()
        worker.wait_for("ready", timeout)
        broker_cpu = pids_cpu_seconds(broker_pids)
        done = worker.wait_for("done", timeout)
        broker_cpu = pids_cpu_seconds(broker_pids) - broker_cpu
        drained_at = wait_drained(settings, [topic], timeout, settle=0.0, poll=0.1)
        peak = memory_mb(worker.proc.pid).get("peak_rss_mb") if worker.proc is not None else None
    except BaseException:
        with contextlib.suppress(Exception):
            worker.stop(timeout=5.0)
        raise
    worker.stop()

    first, last, committed = (float(done[k]) for k in ("first_at", "last_at", "committed_at"))
    count = int(done["count"])
    seconds = max(committed - first, 1e-9)
    drained = max(drained_at - first, 1e-9)
    changelog = f"changelog__{name}--{topic}--default"
    records = read_topic(settings, changelog, timeout=60)
    latest = latest_by_key(records)
    return {
        "events": count,
        "seconds": round(seconds, 3),
        "events_per_second": round(count / seconds, 1),
        "processing_seconds": round(max(last - first, 1e-9), 3),
        "drained_seconds": round(drained, 3),
        "drained_events_per_second": round(count / drained, 1),
        "startup_seconds": round(first - launched, 2),
        "cpu_us_per_event": peer_cpu(done, "cpu_committed", count, broker_cpu, broker_pids),
        "peak_rss_mb": peak,
        "decode_errors": int(done["decode_errors"]),
        "state_writes": int(done["state_writes"]),
        "changelog_topic": changelog,
        "changelog_messages": len(records),
        "changelog_keys": len(latest),
        "changelog_sum": sum(int(orjson.loads(v)) for v in latest.values()),
        "partitions": partitions,
        "quixstreams": done.get("quixstreams"),
    }
