"""A naive Quix Streams app: the second yardstick scv's throughput is compared against.

The peer a Python team would pick today for stateful stream processing, written as the Quix
Streams docs show it: an ``Application`` (defaults: at-least-once, RocksDB state, a changelog
topic per store, a checkpoint every 5 s), a ``StreamingDataFrame`` over the input topic and
one stateful function that decodes each event with orjson and makes ONE state write per
event (``state.set("count", state.get("count", 0) + 1)``, per message key). It mirrors the
naive Faust agent (:mod:`scv.bench.baseline_app`): the same topic of raw demo events, raw
bytes in (decoding is part of the work; a malformed event still counts and still writes),
one write per event.

Quix Streams pins older confluent-kafka and pydantic than scv uses, so this file runs in an
interpreter of its own (:func:`scv.bench.quix.quix_python`) and imports nothing of scv:
only the standard library, quixstreams and orjson. Its settings are ``SCV_QUIX_*``
variables, set by :func:`scv.bench.quix.run_quix`:

``SCV_QUIX_BOOTSTRAP``         broker address (required)
``SCV_QUIX_APP_ID``            consumer group (default ``scv-quix``)
``SCV_QUIX_TOPIC``             input topic (required; it exists already)
``SCV_QUIX_STATE_DIR``         Quix state directory (default ``var/quix``)
``SCV_QUIX_EXPECT``            events to process before committing and stopping (0: run on)
``SCV_QUIX_STATUS``            JSON status file, rewritten atomically (required)
``SCV_QUIX_SESSION_TIMEOUT_MS`` consumer session timeout (default 10000)
``SCV_QUIX_FETCH_MAX_WAIT_MS`` consumer ``fetch.wait.max.ms`` (default 500, librdkafka's)

The clock, as for the Faust agent: the first processed event is stamped inside the function
(group join, assignment and recovery are not counted). With ``EXPECT`` the app runs
``app.run(count=EXPECT)``: after the last event Quix commits its checkpoint at once (state
written to RocksDB, changelog produced and flushed, offsets committed) instead of at the
next 5 s tick, and ``committed_at`` is stamped when ``run`` returns, so the figure is the
work, not an idle wait for the timer.

Run it as ``python quix_app.py worker``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

#: How often the status file is rewritten while the app runs (progress and diagnosis).
STATUS_INTERVAL_S = 0.25


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(f"SCV_QUIX_{name}", default)
    if value is None:
        raise SystemExit(f"SCV_QUIX_{name} is required")
    return value


class Progress:
    """What the app did, in wall-clock seconds (comparable across processes)."""

    def __init__(self, status_path: Path | None, expect: int) -> None:
        self.status_path = status_path
        self.expect = expect
        self.count = 0
        self.decode_errors = 0
        self.state_writes = 0
        # CPU of this process (every thread) at the first event and after the last commit
        self.cpu_first: float | None = None
        self.cpu_committed: float | None = None
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.committed_at: float | None = None
        self.done = False
        self.error: str | None = None
        self.extra: dict[str, Any] = {}
        self._lock = threading.Lock()

    def as_dict(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "expect": self.expect,
            # The first processed event: group joined, partition assigned, state recovered.
            "ready": self.first_at is not None,
            "ready_at": self.first_at,
            "count": self.count,
            "decode_errors": self.decode_errors,
            "state_writes": self.state_writes,
            "cpu_first": self.cpu_first,
            "cpu_committed": self.cpu_committed,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "committed_at": self.committed_at,
            "done": self.done,
            "error": self.error,
            **self.extra,
        }

    def write(self) -> None:
        """Rewrite the status file atomically, so the parent never reads half a file."""
        if self.status_path is None:
            return
        with self._lock:
            tmp = self.status_path.with_name(self.status_path.name + ".tmp")
            tmp.write_text(json.dumps(self.as_dict()), encoding="utf-8")
            os.replace(tmp, self.status_path)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["worker"]:
        print("usage: python quix_app.py worker", file=sys.stderr)
        return 2
    import orjson
    import quixstreams
    from quixstreams import Application, State

    topic_name = _env("TOPIC")
    expect = int(_env("EXPECT", "0"))
    status = os.environ.get("SCV_QUIX_STATUS")
    progress = Progress(Path(status) if status else None, expect)
    progress.extra["quixstreams"] = quixstreams.__version__

    app = Application(
        broker_address=_env("BOOTSTRAP"),
        consumer_group=_env("APP_ID", "scv-quix"),
        # The events were produced before the app started.
        auto_offset_reset="earliest",
        state_dir=_env("STATE_DIR", "var/quix"),
        loglevel="WARNING",
        # The same group timing and fetch wait as the other peers' consumers (on tansu a
        # first join waits about half the session timeout, and a waiting fetch is answered
        # only when the wait runs out).
        consumer_extra_config={
            "session.timeout.ms": int(_env("SESSION_TIMEOUT_MS", "10000")),
            "fetch.wait.max.ms": int(_env("FETCH_MAX_WAIT_MS", "500")),
        },
    )
    # Raw bytes in, as for the Faust agent: decoding is part of the measured work.
    topic = app.topic(topic_name, key_deserializer="bytes", value_deserializer="bytes")
    sdf = app.dataframe(topic)

    def count_event(value: bytes, state: State) -> int:
        """Decode the event; count it under its key (ONE state write)."""
        now = time.time()
        if progress.first_at is None:
            progress.first_at, progress.cpu_first = now, time.process_time()
        try:
            orjson.loads(value)
        except orjson.JSONDecodeError:
            # Malformed input still counts as an event; it is decoded (and fails) like the rest.
            progress.decode_errors += 1
        total = int(state.get("count", 0)) + 1
        state.set("count", total)
        progress.state_writes += 1
        progress.count += 1
        progress.last_at = now
        return total

    sdf = sdf.apply(count_event, stateful=True)

    stop = threading.Event()

    def report() -> None:
        while not stop.wait(STATUS_INTERVAL_S):
            progress.write()

    reporter = threading.Thread(target=report, name="status", daemon=True)
    reporter.start()
    try:
        app.run(count=expect, collect=False)
    except BaseException as exc:
        progress.error = f"{type(exc).__name__}: {exc}"
        progress.write()
        raise
    finally:
        stop.set()
    if expect:
        progress.committed_at, progress.cpu_committed = time.time(), time.process_time()
        progress.done = True
    progress.write()
    if expect:
        # Stay up until the parent stops us, as the Faust agent does: the parent reads the
        # peak RSS of a live process.
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        while not stopped.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
