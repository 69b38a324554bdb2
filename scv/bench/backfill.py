"""``scv bench backfill``: a backfill as an integrator runs one, until it drains.

Demo traffic (with ``households``: people sharing a family email, a landline and a tablet)
is written to one JSON-lines file per source, and four ``scv replay`` processes produce the
four files at once, at full speed, while a worker takes them in: the arrival order at the
stages is whatever parallel consumption makes of it, different in every run. A run counts as
drained when every stage input's committed lag stays at 0 (:func:`scv.runner.wait_drained`,
which gives up, naming the topic, when the lag stops going down). Issue 22 was a run like
this that never drained: two profiles handed state to each other for ever.

Each run reports the time to drain, the internal messages per event (``profiles.events.v1``
and ``identity.events.v1``, by kind), hand-over storms the worker counted, and the scores
against the generator's truth.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from statistics import median
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from scv.connectors.demo import DemoEvent, generate
from scv.demo import local_pipeline, summarize
from scv.runner import DrainTimeout, read_topic, settings_env, wait_drained
from scv.settings import Settings
from scv.topics import RAW, SOURCES, Topics


def write_sources(events: list[DemoEvent], folder: Path) -> dict[str, Path]:
    """One JSON-lines file per source, as an export would give them (malformed lines too)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {source: folder / f"{source}.jsonl" for source in SOURCES}
    handles = {source: path.open("wb") for source, path in paths.items()}
    try:
        for ev in events:
            handles[ev.source].write(ev.value.replace(b"\n", b" ") + b"\n")
    finally:
        for handle in handles.values():
            handle.close()
    return paths


def replay_at_once(settings: Settings, files: dict[str, Path], logs: Path) -> float:
    """``scv replay`` of each source's file into its raw topic, all processes started
    together; seconds until the last one finished. Raises if one failed."""
    env = settings_env(settings) | {"PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    procs = []
    for source, path in files.items():
        log = (logs / f"replay-{source}.log").open("wb")
        cmd = [sys.executable, "-m", "scv.cli", "replay", "--quiet"]
        cmd += ["--topic", RAW.format(source=source), str(path)]
        procs.append((source, subprocess.Popen(cmd, env=env, stdout=log, stderr=log), log))
    failed = []
    for source, proc, log in procs:
        if proc.wait(timeout=600) != 0:
            failed.append(source)
        log.close()
    if failed:
        raise RuntimeError(f"scv replay failed for {', '.join(failed)} (logs in {logs})")
    return time.monotonic() - started


def internal_messages(settings: Settings) -> dict[str, int]:
    """Messages on the internal topics: identity events, and profile messages by kind."""
    topics = Topics(settings)
    kinds: Counter[str] = Counter()
    for rec in read_topic(settings, topics.profile_events, 120):
        kinds[str(orjson.loads(rec.value or b"{}").get("kind"))] += 1
    out = {"identity_events": len(read_topic(settings, topics.identity_events, 120))}
    return out | {f"profiles_events_{k}": n for k, n in sorted(kinds.items())}


def storms(metrics_text: str) -> int:
    return int(
        sum(
            s.value
            for family in text_string_to_metric_families(metrics_text)
            for s in family.samples
            if s.name == "scv_handover_storms_total"
        )
    )


def run_once(events: list[DemoEvent], run: int, stall: float) -> dict[str, Any]:
    truth = {
        e.event_id: e.person_id
        for e in events
        if e.event_id is not None and e.person_id is not None and not e.malformed
    }
    with local_pipeline(f"backfill{run}") as (settings, procs, work):
        files = write_sources(events, work / "files")
        began = time.time()
        produced_s = replay_at_once(settings, files, work)
        try:
            drained_at = wait_drained(settings, Topics(settings).dead_lettered, 900, stall=stall)
        except DrainTimeout as exc:
            storm_count = sum(storms(proc.metrics()) for proc in procs)
            return {"run": run, "drained": False, "why": str(exc), "handover_storms": storm_count}
        counts = internal_messages(settings)
        internal = sum(counts.values())
        summary = summarize(settings, truth, len(events))
        storm_count = sum(storms(proc.metrics()) for proc in procs)
    keep = ("profiles", "merges", "splits", "generic_values", "pairwise_precision")
    return {
        "run": run,
        "drained": True,
        "replay_seconds": round(produced_s, 2),
        "drain_seconds": round(drained_at - began, 2),
        "internal_messages": counts,
        "internal_messages_per_event": round(internal / len(events), 3),
        "handover_storms": storm_count,
        **{k: summary[k] for k in keep},
        "pairwise_recall": summary["pairwise_recall"],
    }


def run_backfill(
    events: int = 35_000, seed: int = 7, households: float = 0.5, runs: int = 5, stall: float = 60
) -> dict[str, Any]:
    """``runs`` backfills of the same traffic, each on a fresh broker and worker."""
    batch = list(generate(events, seed, households=households))
    results = [run_once(batch, i + 1, stall) for i in range(runs)]
    done = [r for r in results if r["drained"]]
    return {
        "events": events,
        "seed": seed,
        "households": households,
        "runs": results,
        "drained": f"{len(done)}/{runs}",
        "median_drain_seconds": median(r["drain_seconds"] for r in done) if done else None,
        "max_internal_messages_per_event": max(
            (r["internal_messages_per_event"] for r in done), default=None
        ),
        "handover_storms": sum(r["handover_storms"] for r in results),
    }
