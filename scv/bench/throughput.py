"""``scv bench throughput`` and ``scv bench latency``: the demo workload through real workers.

Throughput is measured end to end from output timestamps, not from polling: the clock starts
when the first event is produced (workers already running and joined) and stops at the
broker timestamp of the last ``profiles.v1`` snapshot, the pipeline's final output. The
default 30-minute cart window keeps cart ticks (processing-time timers) out of the run, so
nothing but the events is measured. Each stage's own output rate (first to last record it
wrote) is reported too: with one partition, the resolver's rate is its ceiling.

Latency is churn_save's: from the produce time of the web visit that triggered it to the
action's timestamp on ``actions.v1``, with the demo traffic paced at a fixed rate.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from scv.bench.baseline import run_baseline
from scv.bench.stages import run_stages
from scv.broker import EmbeddedBroker
from scv.connectors.demo import DemoEvent, generate
from scv.demo import local_pipeline, produce_events
from scv.kafka import producer_config
from scv.runner import (
    Record,
    WorkerProcess,
    cpu_seconds,
    latest_by_key,
    memory_mb,
    read_topic,
    wait_drained,
)
from scv.topics import Topics


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _rate(records: Sequence[Record]) -> float | None:
    """Records per second between a topic's first and last record (broker timestamps)."""
    if len(records) < 2:
        return None
    stamps = sorted(r.timestamp_ms for r in records)
    span = (stamps[-1] - stamps[0]) / 1000
    return round(len(records) / span, 1) if span > 0 else None


def _quantiles(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": round(statistics.median(ordered), 1), "p95": at(0.95), "p99": at(0.99)}


def _pids(procs: Sequence[WorkerProcess], broker_pid: int | None) -> dict[str, int]:
    pids = {f"worker{i}": p.proc.pid for i, p in enumerate(procs) if p.proc is not None}
    if broker_pid is not None:
        pids["broker"] = broker_pid
    pids["producer"] = os.getpid()  # this process: it produces the traffic and reads results
    return pids


def run_throughput(
    events: int = 50_000,
    *,
    workers: int = 1,
    seed: int = 7,
    bootstrap: str | None = None,
    work_dir: Path | None = None,
    timeout: float = 900.0,
    broker_pid: int | None = None,
) -> dict[str, Any]:
    """Produce ``events`` demo events as fast as possible and measure how fast they come out.

    Also the CPU each process spent per event until the output went quiet: on a two-core
    machine shared with the broker and this producer, a worker's µs per event says what it
    would do on a core of its own, which the end-to-end rate alone cannot show.
    """

    batch = list(generate(events, seed))
    with local_pipeline(
        f"tp{workers}w", workers=workers, bootstrap=bootstrap, work_dir=work_dir
    ) as (settings, procs, work):
        topics = Topics(settings)
        pids = _pids(procs, broker_pid)
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.time()
        produce_events(settings, iter(batch), lambda _: None)
        produced = time.time()
        wait_drained(settings, topics.dead_lettered, timeout, settle=1.0)
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        rss = [memory_mb(p.proc.pid).get("peak_rss_mb") if p.proc else None for p in procs]
        snapshots = read_topic(settings, topics.profiles, timeout=120)
        identity = read_topic(settings, topics.identity_events, timeout=120)
        routed = read_topic(settings, topics.profile_events, timeout=120)
        live = latest_by_key(snapshots)
        identifiers = sum(
            len(v) for value in live.values() for v in orjson.loads(value)["identifiers"].values()
        )
        state = sum(dir_bytes(work / f"worker{i}") for i in range(workers))
    end = max(r.timestamp_ms for r in snapshots) / 1000
    return {
        "events": events,
        "workers": workers,
        "events_per_second": round(events / (end - started), 1),
        "seconds": round(end - started, 2),
        "produce_seconds": round(produced - started, 2),
        "stage_output_per_second": {
            "normalize": _rate(identity),
            "resolve": _rate(routed),
            "profiles": _rate(snapshots),
        },
        "messages_out_per_event": {
            "identity.events": round(len(identity) / events, 2),
            "profiles.events": round(len(routed) / events, 2),
            "profiles": round(len(snapshots) / events, 2),
        },
        "cpu_us_per_event": {name: round(sec / events * 1e6, 1) for name, sec in cpu.items()},
        "peak_rss_mb": rss,
        "profiles": len(live),
        "identifiers": identifiers,
        "state_bytes_per_identifier": round(state / max(identifiers, 1), 1),
    }


def run_latency(
    rate: float,
    events: int = 30_000,
    *,
    seed: int = 11,
    bootstrap: str | None = None,
    work_dir: Path | None = None,
    timeout: float = 900.0,
    broker_pid: int | None = None,
) -> dict[str, Any]:
    """Pace ``events`` demo events at ``rate``/s; churn_save latency quantiles in ms.

    Also the CPU each process used while paced, as a share of one core: on a small machine
    the broker's share says how much of the latency is the broker's.
    """

    batch: list[DemoEvent] = list(generate(events, seed))
    sent_at: dict[str, float] = {}
    with local_pipeline("lat", bootstrap=bootstrap, work_dir=work_dir) as (settings, procs, _):
        topics = Topics(settings)
        producer = Producer(producer_config(settings, linger_ms=5))
        pids = _pids(procs, broker_pid)
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.time()
        for i, ev in enumerate(batch):
            delay = started + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
            if ev.event_id is not None:
                sent_at[ev.event_id] = time.time()
            producer.produce(topics.raw(ev.source), value=ev.value, key=ev.key)
            producer.poll(0)
        producer.flush(60)
        paced = time.time() - started
        cpu = {name: (cpu_seconds(pid) - cpu_before[name]) / paced for name, pid in pids.items()}
        wait_drained(settings, topics.dead_lettered, timeout, settle=1.0)
        actions = read_topic(settings, topics.actions, timeout=60)
    latencies = []
    for rec in actions:
        action = orjson.loads(rec.value or b"{}")
        produced = sent_at.get(action.get("trigger_event_id", ""))
        if action.get("type") == "churn_save" and produced is not None:
            latencies.append(rec.timestamp_ms - produced * 1000)
    return {
        "rate": rate,
        "events": events,
        "achieved_rate": round(events / paced, 1),
        "churn_save_actions": len(latencies),
        "churn_save_latency_ms": _quantiles(latencies),
        "cpu_share_of_one_core": {name: round(share, 2) for name, share in cpu.items()},
    }


def scaling_ceiling(runs: Sequence[dict[str, Any]], cores: int) -> dict[str, Any]:
    """The most each multi-worker run could have scaled on this machine's cores.

    Workers, broker and producer share ``cores``: with every core busy, the rate is at most
    the cores' CPU over what all processes spent per event in that run. Over the one-worker
    rate, that is the best ratio the machine allows, whatever the code does; a measured
    ratio near it means the run was CPU-bound, not that the workers failed to scale.
    """
    one = runs[0]["events_per_second"]
    ceiling: dict[str, Any] = {"cores": cores}
    for r in runs[1:]:
        spent = sum(r["cpu_us_per_event"].values())
        ceiling[f"{r['workers']}_vs_{runs[0]['workers']}"] = round(cores * 1e6 / spent / one, 2)
    return ceiling


def throughput_report(
    events: int = 50_000,
    workers: Sequence[int] = (1, 2),
    seed: int = 7,
    latency_events: int = 0,
) -> dict[str, Any]:
    """scv with each worker count, then the naive Faust baseline, on one embedded broker and
    the same traffic, so that the ratios compare like with like.

    With ``latency_events``, also churn_save latency at half the rate one worker sustained,
    and each stage's own cost without a broker (``scv.bench.stages``): the resolver's
    single-writer ceiling.
    """
    work = Path(tempfile.mkdtemp(prefix="scv-bench-"))
    with EmbeddedBroker(log_path=work / "broker.log") as broker:
        runs = [
            run_throughput(
                events,
                workers=w,
                seed=seed,
                bootstrap=broker.bootstrap,
                work_dir=work / f"scv{w}",
                broker_pid=broker.pid,
            )
            for w in workers
        ]
        messages = [(ev.key, ev.value) for ev in generate(events, seed)]
        baseline = {
            mode: run_baseline(
                broker.bootstrap, messages, table_writes=writes, work_dir=work, timeout=600
            )
            for mode, writes in (("one_table_write", True), ("no_table", False))
        }
    latency = None
    if latency_events:
        # A broker of its own: tansu keeps every topic in memory, and after the runs above
        # (several hundred thousand messages) it answered the same paced traffic with about
        # twice the tail (p99 334 against 169 ms, one run each); a real broker's cost does not
        # grow with what it stores like that.
        half = round(runs[0]["events_per_second"] / 2)
        with EmbeddedBroker(log_path=work / "broker-latency.log") as fresh:
            latency = run_latency(
                half,
                latency_events,
                bootstrap=fresh.bootstrap,
                work_dir=work / "latency",
                broker_pid=fresh.pid,
            )
    one = runs[0]["events_per_second"]
    naive = baseline["one_table_write"]["events_per_second"]
    report: dict[str, Any] = {
        "events": events,
        "scv": runs,
        "naive_faust": baseline,
        "scv_vs_naive": round(one / naive, 2) if naive else None,
    }
    if len(runs) > 1:
        report["scaling"] = {
            f"{r['workers']}_vs_{runs[0]['workers']}": round(r["events_per_second"] / one, 2)
            for r in runs[1:]
        }
        report["scaling_ceiling"] = scaling_ceiling(runs, os.cpu_count() or 1)
    if latency is not None:
        report["latency_at_half_max"] = latency
        report["stages_without_broker"] = run_stages(events, seed)
    return report
