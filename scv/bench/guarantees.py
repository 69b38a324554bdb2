"""``scv bench guarantees``: what exactly once costs against at least once, on Apache Kafka.

Each round starts a fresh Apache Kafka node (warmed up with a discarded run), then runs
the same demo events through one worker at least once and exactly once with each commit
interval asked for, in that order, and reports each run's rate, the worker's CPU per event
and, for exactly once, its transactions (how many, the mean commit time). Ratios are taken
within a round: on a shared two-core machine the rounds differ more than the modes do.

Why the interval matters: exactly once makes a hop's output visible to the next stage only
when its transaction commits, so each of the three hops to an action waits up to the
commit interval, while every commit costs a round trip to the transaction coordinator.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from statistics import median
from typing import Any

from scv.bench.throughput import WARMUP_EVENTS, broker_info, run_throughput
from scv.brokers import local_broker
from scv.settings import Settings


def run_guarantees(
    events: int = 30_000,
    *,
    rounds: int = 3,
    intervals: tuple[float, ...] = (0.1, 0.5),
    seed: int = 7,
) -> dict[str, Any]:
    settings = Settings()
    if settings.broker != "kafka":
        raise ValueError("exactly once needs Apache Kafka: run it with SCV_BROKER=kafka")
    work = Path(tempfile.mkdtemp(prefix="scv-guarantees-"))
    modes: dict[str, dict[str, Any]] = {"at_least_once": {}}
    for interval in intervals:
        modes[f"exactly_once@{interval:g}s"] = {
            "processing_guarantee": "exactly_once",
            "commit_interval_s": interval,
        }
    per_round: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    for n in range(rounds):
        here = work / f"round{n}"
        with local_broker(settings, work / f"broker{n}") as running:
            info = broker_info(running)
            run_throughput(
                min(events, WARMUP_EVENTS),
                seed=seed + 1,
                bootstrap=running.bootstrap,
                work_dir=here / "warmup",
            )
            per_round.append(
                {
                    name: run_throughput(
                        events,
                        seed=seed,
                        bootstrap=running.bootstrap,
                        work_dir=here / name.replace("@", "-"),
                        broker_pid=running.pids,
                        overrides=overrides,
                    )
                    for name, overrides in modes.items()
                }
            )
    base = "at_least_once"
    summary: dict[str, Any] = {}
    for name in modes:
        runs = [r[name] for r in per_round]
        summary[name] = {
            "events_per_second": median(r["events_per_second"] for r in runs),
            "events_per_second_runs": [r["events_per_second"] for r in runs],
            "worker_cpu_us_per_event": median(r["cpu_us_per_event"]["worker0"] for r in runs),
            **(
                {
                    "transactions": median(r["transactions"]["commits"] for r in runs),
                    "mean_commit_ms": median(r["transactions"]["mean_commit_ms"] for r in runs),
                }
                if name != base
                else {}
            ),
            "vs_at_least_once": round(
                median(
                    r[name]["events_per_second"] / r[base]["events_per_second"] for r in per_round
                ),
                3,
            ),
        }
    return {
        "broker": info,
        "events": events,
        "rounds": rounds,
        "seed": seed,
        "modes": summary,
    }
