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

import logging
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeGuard

import orjson
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from scv.bench.baseline import run_baseline
from scv.bench.quix import QuixSetupError, quix_python, run_quix
from scv.bench.stages import run_stages
from scv.brokers import Broker, local_broker
from scv.connectors.demo import DemoEvent, generate
from scv.demo import local_pipeline, produce_events
from scv.kafka import producer_config
from scv.runner import (
    Record,
    WorkerProcess,
    latest_by_key,
    memory_mb,
    pids_cpu_seconds,
    read_topic,
    topic_sizes,
    wait_drained,
)
from scv.settings import Settings
from scv.streams.metrics import cache_misses
from scv.topics import TABLES, Topics

log = logging.getLogger(__name__)


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


def _pids(
    procs: Sequence[WorkerProcess], broker_pid: int | Sequence[int] | None
) -> dict[str, list[int]]:
    """The processes to read CPU time from, by name: each worker, the broker (tansu, or
    every node's JVM of an Apache Kafka cluster, summed) and this process."""
    pids = {f"worker{i}": [p.proc.pid] for i, p in enumerate(procs) if p.proc is not None}
    if broker_pid is not None:
        pids["broker"] = [broker_pid] if isinstance(broker_pid, int) else list(broker_pid)
    pids["producer"] = [os.getpid()]  # this process: it produces the traffic, reads results
    return pids


def run_throughput(
    events: int = 50_000,
    *,
    workers: int = 1,
    seed: int = 7,
    bootstrap: str | None = None,
    work_dir: Path | None = None,
    timeout: float = 900.0,
    broker_pid: int | Sequence[int] | None = None,
    stages: Sequence[str] = (),
    tansu: bool = False,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Produce ``events`` demo events as fast as possible and measure how fast they come out.

    ``tansu``: the broker is the embedded one, where the workers run without an idempotent
    producer, as the local pipelines do (SCV_IDEMPOTENT_OUTPUT). ``overrides``: worker
    settings (e.g. the processing guarantee); an exactly-once run also reports its
    transactions (count, mean commit time).

    ``stages``: the stages each worker runs (``SCV_STAGES``); unset, every worker runs all.
    ``broker_pid``: the broker's process, or processes (one JVM per Kafka node), whose CPU
    is reported (summed) as ``broker``.

    Also the CPU each process spent per event until the output went quiet: on a two-core
    machine shared with the broker and this producer, a worker's µs per event says what it
    would do on a core of its own, which the end-to-end rate alone cannot show.
    """

    batch = list(generate(events, seed))
    with local_pipeline(
        f"tp{workers}w",
        workers=workers,
        bootstrap=bootstrap,
        work_dir=work_dir,
        per_worker=[{"stages": s} for s in stages],
        settings=({"idempotent_output": False} if tansu else {}) | (overrides or {}),
    ) as (settings, procs, work):
        topics = Topics(settings)
        pids = _pids(procs, broker_pid)
        cpu_before = {name: pids_cpu_seconds(p) for name, p in pids.items()}
        started = time.time()
        produce_events(settings, iter(batch), lambda _: None)
        produced = time.time()
        wait_drained(settings, topics.dead_lettered, timeout, settle=1.0)
        cpu = {name: pids_cpu_seconds(p) - cpu_before[name] for name, p in pids.items()}
        rss = [memory_mb(p.proc.pid).get("peak_rss_mb") if p.proc else None for p in procs]
        # each miss reads and decodes a record: where the CPU per event grows with the graph
        pages = [p.metrics() for p in procs]
        misses = cache_misses(f for page in pages for f in text_string_to_metric_families(page))
        transactions = transaction_figures(pages)
        snapshots = read_topic(settings, topics.profiles, timeout=120)
        identity = read_topic(settings, topics.identity_events, timeout=120)
        routed = read_topic(settings, topics.profile_events, timeout=120)
        live = latest_by_key(snapshots)
        identifiers = sum(
            len(v) for value in live.values() for v in orjson.loads(value)["identifiers"].values()
        )
        state = sum(dir_bytes(work / f"worker{i}") for i in range(workers))
        outputs = {
            "identity.events": topics.identity_events,
            "profiles.events": topics.profile_events,
            "profiles": topics.profiles,
            "actions": topics.actions,
            "merges": topics.merges,
            "audit": topics.audit,
            **{f"changelog {name}": topics.changelog(name) for name in TABLES},
        }
        counts = topic_sizes(settings, outputs.values())
        sizes = {name: counts[topic] for name, topic in outputs.items()}
    end = max(r.timestamp_ms for r in snapshots) / 1000
    return {
        "events": events,
        "workers": workers,
        **({"stages": list(stages)} if stages else {}),
        "events_per_second": round(events / (end - started), 1),
        "seconds": round(end - started, 2),
        "produce_seconds": round(produced - started, 2),
        "stage_output_per_second": {
            "normalize": _rate(identity),
            "resolve": _rate(routed),
            "profiles": _rate(snapshots),
        },
        "messages_out_per_event": {name: round(n / events, 2) for name, n in sizes.items() if n},
        "cpu_us_per_event": {name: round(sec / events * 1e6, 1) for name, sec in cpu.items()},
        "peak_rss_mb": rss,
        "cache_misses_per_event": {t: round(n / events, 3) for t, n in misses.items()},
        "profiles": len(live),
        "identifiers": identifiers,
        "state_bytes_per_identifier": round(state / max(identifiers, 1), 1),
        **({"transactions": transactions} if transactions["commits"] else {}),
    }


def transaction_figures(pages: Sequence[str]) -> dict[str, Any]:
    """Exactly once: the workers' committed transactions and their mean commit time, from
    their ``/metrics`` pages (scv_transaction_commit_seconds)."""
    count = total = 0.0
    for page in pages:
        for family in text_string_to_metric_families(page):
            for sample in family.samples:
                if sample.name == "scv_transaction_commit_seconds_count":
                    count += sample.value
                elif sample.name == "scv_transaction_commit_seconds_sum":
                    total += sample.value
    return {
        "commits": int(count),
        "mean_commit_ms": round(total / count * 1000, 2) if count else None,
    }


def run_latency(
    rate: float,
    events: int = 30_000,
    *,
    seed: int = 11,
    bootstrap: str | None = None,
    work_dir: Path | None = None,
    timeout: float = 900.0,
    broker_pid: int | Sequence[int] | None = None,
    tansu: bool = False,
) -> dict[str, Any]:
    """Pace ``events`` demo events at ``rate``/s; churn_save latency quantiles in ms
    (``tansu``: as for :func:`run_throughput`).

    Also the CPU each process used while paced, as a share of one core: on a small machine
    the broker's share says how much of the latency is the broker's.
    """

    batch: list[DemoEvent] = list(generate(events, seed))
    sent_at: dict[str, float] = {}
    overrides = {"idempotent_output": False} if tansu else None
    with local_pipeline("lat", bootstrap=bootstrap, work_dir=work_dir, settings=overrides) as (
        settings,
        procs,
        _,
    ):
        topics = Topics(settings)
        # The producer scv's own connectors use (linger 20 ms): the paced events are a source's
        # traffic. Its linger is inside the measured latency (``sent_at`` is taken before
        # ``produce``); a 5 ms linger cost tansu about 0.3 of a core more, which on two cores
        # became the queue the latency measured (docs/performance.md, Latency).
        producer = Producer(producer_config(settings))
        pids = _pids(procs, broker_pid)
        cpu_before = {name: pids_cpu_seconds(p) for name, p in pids.items()}
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
        cpu = {name: (pids_cpu_seconds(p) - cpu_before[name]) / paced for name, p in pids.items()}
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
        # Near the cores' count, the processes queue for CPU and the latency is the queue's.
        "cpu_cores_busy": round(sum(cpu.values()), 2),
        "cores": os.cpu_count() or 1,
    }


def split_stages(workers: int) -> list[str]:
    """Stages per worker that keep the single-writer resolver's worker from also taking a
    share of every other stage: alternately normalise + resolve and profiles."""
    return ["normalize,resolve" if i % 2 == 0 else "profiles" for i in range(workers)]


def _label(run: dict[str, Any]) -> str:
    """A run's name in ratios: its worker count, ``_split`` when its workers split the
    stages."""
    return f"{run['workers']}{'_split' if run.get('stages') else ''}"


def scaling_ceiling(runs: Sequence[dict[str, Any]], cores: int) -> dict[str, Any]:
    """The most each multi-worker run could have scaled on this machine's cores.

    Workers, broker and producer share ``cores``: with every core busy, the rate is at most
    the cores' CPU over what all processes spent per event in that run. Over the one-worker
    rate, that is the best ratio the machine allows, whatever the code does; a measured
    ratio near it means the run was CPU-bound, not that the workers failed to scale. The CPU
    is counted until the output went quiet (a second of idle polling included), so the
    ceiling errs low by a few percent.
    """
    one = runs[0]["events_per_second"]
    ceiling: dict[str, Any] = {"cores": cores}
    for r in runs[1:]:
        spent = sum(r["cpu_us_per_event"].values())
        ceiling[f"{_label(r)}_vs_{_label(runs[0])}"] = round(cores * 1e6 / spent / one, 2)
    return ceiling


def _worker_cpu(run: dict[str, Any]) -> list[float]:
    return [us for name, us in run["cpu_us_per_event"].items() if name.startswith("worker")]


def work_split(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How far the work split across workers would let each multi-worker run scale if every
    worker had a core of its own and the broker ran elsewhere.

    On a machine where workers and broker share the cores, the measured ratio is capped by
    the CPU (:func:`scaling_ceiling`) and cannot show whether the stages divide their work.
    The worker CPU per event can: with a core per worker, the busiest worker sets the rate,
    so the bound is the one worker's CPU per event over the busiest worker's. It is a bound
    from measured CPU, not a measured rate; the broker and the single-writer resolver (on
    one of the workers) can hold a real run below it.
    """
    one = sum(_worker_cpu(runs[0]))
    split: dict[str, Any] = {}
    for r in runs[1:]:
        busiest = max(_worker_cpu(r), default=0.0)
        split[f"{_label(r)}_vs_{_label(runs[0])}"] = round(one / busiest, 2) if busiest else None
        split[f"busiest_worker_us_per_event_{_label(r)}"] = busiest
    return split


def _middle(runs: Sequence[dict[str, Any]], figure: Any) -> dict[str, Any]:
    """The run with the median ``figure(run)`` (the lower middle one of an even number)."""
    return sorted(runs, key=figure)[(len(runs) - 1) // 2]


def _median_run(runs: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run with the median ``key``, with the figures of all runs beside it."""
    return {**_middle(runs, lambda r: r[key]), f"{key}_runs": [r[key] for r in runs]}


def _paired(rounds: Sequence[dict[str, Any]], ratio: Any) -> float | None:
    """The median over rounds of a ratio taken within each round (both sides of a ratio ran
    on the same broker minutes apart, so the machine's drift cancels out)."""
    values = [v for v in (ratio(r) for r in rounds) if v is not None]
    return round(statistics.median(values), 2) if values else None


def _ran(peer: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    return peer is not None and "events_per_second" in peer


def _per_round(rnd: dict[str, Any], labels: Sequence[str]) -> dict[str, Any]:
    """One round's rates side by side, with the ratios of scv (one worker, or the first
    layout) to each naive peer taken within the round."""
    scv = {label: run["events_per_second"] for label, run in zip(labels, rnd["scv"], strict=True)}
    one = rnd["scv"][0]["events_per_second"]
    faust = rnd["naive_faust"]["one_table_write"]["events_per_second"]
    quix = rnd.get("naive_quix")
    row: dict[str, Any] = {
        "scv": scv,
        "naive_faust": faust,
        "naive_quix": quix["events_per_second"] if _ran(quix) else None,
        "scv_vs_naive_faust": round(one / faust, 2) if faust else None,
    }
    if quix is not None:
        row["scv_vs_naive_quix"] = round(one / quix["events_per_second"], 2) if _ran(quix) else None
    return row


def summarise(
    rounds: Sequence[dict[str, Any]], cores: int, broker: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One report from rounds of (scv runs per worker count, naive peers, latency).

    Each figure is the median over rounds: the machine is noisy (±15 % between runs of the
    same code here), and one run says little. Ratios are taken within a round, then the
    median of those is reported; ``per_round`` lists each round's rates and ratios. The naive
    Quix Streams peer (``naive_quix``) is summarised over the rounds it ran in; where it did
    not run, the report says why (``not_run``). ``broker`` says what the rounds ran on.
    """
    labels = [_label(r) for r in rounds[0]["scv"]]
    scv = [
        _median_run([rnd["scv"][i] for rnd in rounds], "events_per_second")
        for i in range(len(labels))
    ]
    modes = list(rounds[0]["naive_faust"])
    naive = {
        m: _median_run([rnd["naive_faust"][m] for rnd in rounds], "events_per_second")
        for m in modes
    }

    def vs_naive(rnd: dict[str, Any]) -> float | None:
        base = rnd["naive_faust"]["one_table_write"]["events_per_second"]
        return rnd["scv"][0]["events_per_second"] / base if base else None

    def vs_quix(rnd: dict[str, Any]) -> float | None:
        quix = rnd.get("naive_quix")
        if not _ran(quix) or not quix["events_per_second"]:
            return None
        return float(rnd["scv"][0]["events_per_second"] / quix["events_per_second"])

    report: dict[str, Any] = {
        **({"broker": broker} if broker else {}),
        "events": rounds[0]["scv"][0]["events"],
        "rounds": len(rounds),
        "scv": scv,
        "naive_faust": naive,
        # ``scv_vs_naive`` is the Faust agent's, the name reports had before the Quix peer
        "scv_vs_naive": _paired(rounds, vs_naive),
    }
    report["scv_vs_naive_faust"] = report["scv_vs_naive"]
    quix_rounds = [rnd["naive_quix"] for rnd in rounds if "naive_quix" in rnd]
    if quix_rounds:
        ran = [q for q in quix_rounds if _ran(q)]
        if ran:
            report["naive_quix"] = _median_run(ran, "events_per_second")
            report["scv_vs_naive_quix"] = _paired(rounds, vs_quix)
        else:
            report["naive_quix"] = {"not_run": quix_rounds[0].get("not_run")}
    report["per_round"] = [_per_round(rnd, labels) for rnd in rounds]
    if len(labels) > 1:
        report["scaling"] = {
            f"{w}_vs_{labels[0]}": _paired(
                rounds,
                lambda rnd, i=i: (
                    rnd["scv"][i]["events_per_second"] / rnd["scv"][0]["events_per_second"]
                ),
            )
            for i, w in enumerate(labels)
            if i > 0
        }
        ceilings = [scaling_ceiling(rnd["scv"], cores) for rnd in rounds]
        report["scaling_ceiling"] = {
            "cores": cores,
            **{
                k: round(statistics.median(c[k] for c in ceilings), 2)
                for k in ceilings[0]
                if k != "cores"
            },
        }
        splits = [work_split(rnd["scv"]) for rnd in rounds]
        report["scaling_by_work_split"] = {
            k: statistics.median(v)
            for k in splits[0]
            if (v := [s[k] for s in splits if s[k] is not None])
        }
    latencies = [rnd["latency"] for rnd in rounds if rnd.get("latency") is not None]
    if latencies:
        report["latency_at_half_max"] = {
            **_middle(latencies, lambda lat: lat["churn_save_latency_ms"].get("p99", 0)),
            "p99_runs": [lat["churn_save_latency_ms"].get("p99") for lat in latencies],
        }
    return report


#: Events of the discarded scv run that warms up a JVM broker before a round's measurements.
WARMUP_EVENTS = 10_000


def broker_info(broker: Broker) -> dict[str, Any]:
    """What a report ran on: the broker's kind, version and node count."""
    return {"kind": broker.kind, "version": broker.version, "nodes": len(broker.pids)}


def _naive_quix(
    bootstrap: str,
    messages: list[tuple[bytes | None, bytes]],
    *,
    python: str | QuixSetupError,
    work_dir: Path,
    broker_pids: Sequence[int],
) -> dict[str, Any]:
    """The naive Quix Streams peer's run, or why it did not run (``not_run``): a peer that
    cannot be installed or fails on this broker is reported, never the end of the bench."""
    if isinstance(python, QuixSetupError):
        return {"not_run": str(python)}
    try:
        return run_quix(
            bootstrap,
            messages,
            work_dir=work_dir,
            timeout=600,
            python=python,
            broker_pids=broker_pids,
        )
    except (RuntimeError, TimeoutError, OSError) as exc:
        reason = " ".join(str(exc).split())
        log.warning("the naive Quix Streams peer did not run: %s", reason[-2000:])
        return {"not_run": f"{type(exc).__name__}: {reason[-600:]}"}


def throughput_report(
    events: int = 50_000,
    workers: Sequence[int] = (1, 2),
    seed: int = 7,
    latency_events: int = 0,
    rounds: int = 3,
    split: bool = False,
    broker: str | None = None,
    quix: bool = True,
) -> dict[str, Any]:
    """scv with each worker count (with ``split``, each count above one again with the
    stages split between the workers: :func:`split_stages`), then the naive Faust agent
    (one table write per event, and none) and the naive Quix Streams app (one state write
    per event; ``quix=False`` leaves it out), on one broker and the same traffic, so that
    the ratios compare like with like; ``rounds`` times, each on a broker of its own,
    summarised with medians (:func:`summarise`).

    ``broker`` is ``tansu`` or ``kafka`` (one Apache Kafka KRaft node); unset, the one
    ``SCV_BROKER`` names. Each round starts it fresh, and the report says which it was; on
    Kafka a discarded scv run of :data:`WARMUP_EVENTS` first warms the JVM up.

    With ``latency_events``, each round also measures churn_save latency at half the rate
    one worker sustained in it, on a fresh broker: tansu keeps every topic in memory, and
    after the runs above (several hundred thousand messages) it answered the same paced
    traffic with about twice the tail (p99 334 against 169 ms, one run each); a real
    broker's cost does not grow with what it stores like that. The report then also has
    each stage's own cost without a broker (``scv.bench.stages``): the resolver's
    single-writer ceiling; and the same for three times the events, a graph that outgrows
    the caches.
    """
    settings = Settings() if broker is None else Settings(broker=broker)
    work = Path(tempfile.mkdtemp(prefix="scv-bench-"))
    messages = [(ev.key, ev.value) for ev in generate(events, seed)]
    layouts: list[tuple[int, list[str]]] = [(w, []) for w in workers]
    layouts += [(w, split_stages(w)) for w in workers if split and w > 1]
    python: str | QuixSetupError = QuixSetupError("left out (quix=False)")
    if quix:
        try:
            python = quix_python()  # installed once, before any round: never inside a clock
        except QuixSetupError as exc:
            python = exc
    results = []
    info: dict[str, Any] = {}
    for n in range(rounds):
        here = work / f"round{n}"
        with local_broker(settings, work / f"broker{n}") as running:
            info = broker_info(running)
            pids = running.pids
            if running.kind == "kafka":
                # A fresh JVM interprets its request paths until the JIT has compiled them:
                # the first scv run on a new Kafka node did half the rate of the next ones
                # (and cost the broker 2.5 times the CPU per event). Every side of the round
                # is measured on a warm broker.
                info["warmup_events"] = warmup = min(events, WARMUP_EVENTS)
                run_throughput(
                    warmup,
                    seed=seed + 1,
                    bootstrap=running.bootstrap,
                    work_dir=here / "warmup",
                    broker_pid=pids,
                )
            runs = [
                run_throughput(
                    events,
                    workers=w,
                    seed=seed,
                    bootstrap=running.bootstrap,
                    work_dir=here / f"scv{w}{'split' if stages else ''}",
                    broker_pid=pids,
                    stages=stages,
                    tansu=running.kind == "tansu",
                )
                for w, stages in layouts
            ]
            baseline = {
                mode: run_baseline(
                    running.bootstrap,
                    messages,
                    table_writes=writes,
                    work_dir=here,
                    timeout=600,
                    broker_pids=pids,
                )
                for mode, writes in (("one_table_write", True), ("no_table", False))
            }
            result: dict[str, Any] = {"scv": runs, "naive_faust": baseline}
            if quix:
                result["naive_quix"] = _naive_quix(
                    running.bootstrap, messages, python=python, work_dir=here, broker_pids=pids
                )
        latency = None
        if latency_events:
            half = round(runs[0]["events_per_second"] / 2)
            with local_broker(settings, work / f"broker-latency{n}") as fresh:
                latency = run_latency(
                    half,
                    latency_events,
                    bootstrap=fresh.bootstrap,
                    work_dir=here / "latency",
                    broker_pid=fresh.pids,
                    tansu=fresh.kind == "tansu",
                )
        results.append(result | {"latency": latency})
    report = summarise(results, os.cpu_count() or 1, info)
    if latency_events:
        report["stages_without_broker"] = run_stages(events, seed)
        # The demo graph of ``events`` nearly fits the decoded-state caches; three times the
        # events (and customers) do not, as in any deployment with a real customer base.
        report["stages_without_broker_3x_events"] = run_stages(3 * events, seed)
    return report
