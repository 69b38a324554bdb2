"""Run and observe a local pipeline: worker processes, drain detection, topic reads.

Shared by ``scv demo``, ``scv run`` and the integration tests so that all three exercise the
same real parts: ``scv worker`` subprocesses against a Kafka-protocol broker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self

from confluent_kafka import Consumer, KafkaException, TopicPartition

from scv.drain import DrainTimeout as DrainTimeout  # re-exported: what wait_drained raises
from scv.drain import DrainWatch, Verdict
from scv.kafka import client_config, consumer_config
from scv.settings import Settings
from scv.topics import Topics


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``SCV_*`` variables that reproduce ``settings`` in a child process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"SCV_{name.upper()}"] = str(value)
    return env


def memory_mb(pid: int) -> dict[str, float]:
    """Current (``rss_mb``, VmRSS) and peak (``peak_rss_mb``, VmHWM) resident memory of a
    live process in MiB; empty when it cannot be read (the process is gone)."""
    names = {"VmRSS": "rss_mb", "VmHWM": "peak_rss_mb"}
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in names:
                out[names[name]] = round(int(value.split()[0]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        return {}
    return out


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a live process has used so far; 0.0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pids_cpu_seconds(pids: Iterable[int]) -> float:
    """CPU time the processes ``pids`` used so far, summed (an Apache Kafka cluster: one JVM
    per node); 0.0 for each that is gone."""
    return sum(cpu_seconds(pid) for pid in pids)


class Subprocess:
    """A ``python -m MODULE worker`` child in its own process group, logging to a file."""

    module = "scv.cli"

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def command(self) -> list[str]:
        """What :meth:`start` runs: ``python -m MODULE worker`` in this interpreter."""
        return [sys.executable, "-m", self.module, "worker"]

    def start(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.command(),
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stop() signals Faust's children too
        )
        return self

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


class WorkerProcess(Subprocess):
    """One ``scv worker`` subprocess with its own state dir, web port and log file."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        super().__init__(os.environ | settings_env(settings), log_path)
        self.settings = settings

    @property
    def url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}: {self.tail()}")
            if self.ready():
                return
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout}s: {self.tail()}")

    def metrics(self) -> str:
        """The worker's Prometheus ``/metrics`` page (with the API token, when one is set)."""
        request = urllib.request.Request(self.url + "/metrics")
        if self.settings.api_token is not None:
            token = self.settings.api_token.get_secret_value()
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=5) as resp:
            return str(resp.read().decode())


class ActivationProcess(WorkerProcess):
    """One ``scv activation`` subprocess (the activation layer's Faust worker)."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.module, "activation"]

    @property
    def url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.activation_web_port}"


def _end_offsets(
    consumer: Consumer, topics: Iterable[str], timeout: float = 10.0
) -> list[TopicPartition]:
    """The true log-end offset of every partition of ``topics``.

    tansu 0.6 answers ListOffsets(latest) with the last batch's base offset + 1, not the log
    end; a fetch response carries the true high watermark. So: ask, then fetch from the
    answer - 1 and read the watermark the fetch left in the client's cache.
    """
    meta = consumer.list_topics(timeout=timeout)
    listed: dict[tuple[str, int], int] = {}
    for topic in topics:
        md = meta.topics.get(topic)
        if md is None or md.error is not None:
            continue
        for p in md.partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            listed[(topic, p)] = high
    probe = {tp: high for tp, high in listed.items() if high > 0}
    if probe:
        consumer.assign([TopicPartition(t, p, high - 1) for (t, p), high in probe.items()])
        pending = set(probe)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.2):
                if msg.error() is None:
                    pending.discard((msg.topic() or "", msg.partition() or 0))
            # A transaction marker at the end is no message: the position passes it.
            for tp in consumer.position([TopicPartition(t, p) for t, p in pending]):
                if tp.offset >= probe[(tp.topic, tp.partition)]:
                    pending.discard((tp.topic, tp.partition))
        for (t, p), high in probe.items():
            _, cached = consumer.get_watermark_offsets(TopicPartition(t, p), cached=True)
            listed[(t, p)] = max(high, cached)
        consumer.unassign()
    return [TopicPartition(t, p, high) for (t, p), high in listed.items()]


def topic_sizes(settings: Settings, topics: Iterable[str]) -> dict[str, int]:
    """How many messages each of ``topics`` holds (log-end offsets summed over partitions;
    nothing is compacted away on tansu)."""
    consumer = Consumer(client_config(settings) | {"group.id": "scv-sizes"})
    try:
        sizes = dict.fromkeys(topics, 0)
        for tp in _end_offsets(consumer, sizes):
            sizes[tp.topic] += tp.offset
        return sizes
    finally:
        consumer.close()


def partition_lags(settings: Settings, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """Messages not yet committed by the worker group (``settings.app_id``), per (topic,
    partition) of ``topics``."""
    consumer = Consumer(consumer_config(settings, settings.app_id, **{"enable.auto.commit": False}))
    try:
        ends = _end_offsets(consumer, topics)
        committed = consumer.committed([TopicPartition(t.topic, t.partition) for t in ends], 10)
        return {
            (end.topic, end.partition): end.offset - max(done.offset, 0)
            for end, done in zip(ends, committed, strict=True)
        }
    finally:
        consumer.close()


def committed_total(settings: Settings) -> int | None:
    """The worker group's committed offsets summed over every stage input (None while the
    broker cannot answer): it grows as long as the pipeline makes progress."""
    consumer = Consumer(consumer_config(settings, settings.app_id, **{"enable.auto.commit": False}))
    try:
        meta = consumer.list_topics(timeout=5)
        tps = [
            TopicPartition(topic, p)
            for topic in Topics(settings).dead_lettered
            if topic in meta.topics
            for p in meta.topics[topic].partitions
        ]
        return sum(max(tp.offset, 0) for tp in consumer.committed(tps, 5))
    except KafkaException:
        return None
    finally:
        consumer.close()


def group_lag(settings: Settings, topics: Iterable[str]) -> int:
    """Messages on ``topics`` not yet committed by the worker group (``settings.app_id``)."""
    return sum(partition_lags(settings, topics).values())


#: How long :func:`wait_drained` waits for the lag to reach a new lowest before it gives up.
STALL_S = 60.0


def wait_drained(
    settings: Settings,
    topics: Iterable[str],
    timeout: float,
    settle: float = 2.0,
    *,
    stall: float = STALL_S,
    poll: float = 0.25,
) -> float:
    """Block until the group's lag on ``topics`` is zero for ``settle`` seconds; returns the
    wall-clock time the lag reached zero.

    Zero lag once is not enough: a stage may be about to produce to the next topic. Raises
    :class:`~scv.drain.DrainTimeout` (a ``TimeoutError``) naming each topic still behind,
    after ``stall`` seconds in which the lag (in total or on any one topic) got no lower than
    before, or after ``timeout`` seconds in all (:class:`~scv.drain.DrainWatch` decides).
    A lag reading the broker fails (a rebalancing group) is retried at the next poll.
    """
    topic_list = list(topics)
    watch = DrainWatch(
        topic_list, settle=settle, stall=stall, timeout=timeout, start=time.monotonic()
    )
    while True:
        try:
            lags = partition_lags(settings, topic_list)
        except KafkaException as exc:
            now = time.monotonic()
            verdict = watch.failed(now, str(exc))
        else:
            now = time.monotonic()
            verdict = watch.observe(now, lags)
        if verdict is Verdict.DRAINED:
            return time.time() - (now - (watch.zero_since or now))
        if verdict is not Verdict.WAITING:
            raise watch.exception(now)
        time.sleep(poll)


@dataclass(slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    timestamp_ms: int


def read_topic(settings: Settings, topic: str, timeout: float = 30.0) -> list[Record]:
    """Everything on ``topic`` up to its current end, read without a consumer group.

    Assigning partitions directly avoids a group join (seconds on tansu) and commits nothing.
    """
    consumer = Consumer(
        client_config(settings)
        | {"group.id": "scv-reader", "enable.auto.commit": False, "auto.offset.reset": "earliest"}
    )
    try:
        ends = [tp for tp in _end_offsets(consumer, [topic]) if tp.offset > 0]
        if not ends:
            return []
        remaining = {tp.partition: tp.offset for tp in ends}
        consumer.assign([TopicPartition(topic, tp.partition, 0) for tp in ends])
        out: list[Record] = []
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            for msg in consumer.consume(10000, 0.5):
                if msg.error() is not None:
                    continue
                part = msg.partition()
                offset = msg.offset()
                if part is None or offset is None or part not in remaining:
                    continue
                if offset < remaining[part]:
                    ts = msg.timestamp()[1]
                    headers = dict(_headers(msg.headers()))
                    key, value = msg.key(), msg.value()
                    out.append(Record(topic, part, offset, _b(key), _b(value), headers, ts))
                if offset + 1 >= remaining[part]:
                    del remaining[part]
            # Past the end without a message there: a transaction marker (or an aborted
            # transaction's records, which read_committed skips).
            for tp in consumer.position([TopicPartition(topic, p) for p in remaining]):
                if tp.offset >= remaining[tp.partition]:
                    del remaining[tp.partition]
        if remaining:
            raise TimeoutError(f"{topic}: could not read to the end in {timeout}s")
        return out
    finally:
        consumer.close()


def _b(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _headers(raw: Any) -> Iterable[tuple[str, bytes]]:
    for name, value in raw or []:
        yield name, _b(value) or b""


def latest_by_key(records: Iterable[Record]) -> dict[bytes, Any]:
    """Compaction semantics on the client side: last value per key, tombstones delete."""
    state: dict[bytes, Any] = {}
    for rec in records:
        if rec.key is None:
            continue
        if rec.value is None:
            state.pop(rec.key, None)
        else:
            state[rec.key] = rec.value
    return state
