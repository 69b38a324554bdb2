"""``scv demo``: broker, workers and the demo source, run to completion and scored.

The summary reads only what activation services would read (``profiles.v1``,
``profiles.merges.v1``, ``actions.v1``, the DLQs) plus ``profiles.events.v1`` to learn which
profile each event landed on; the generator's ground truth never enters the pipeline.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from scv.bench.offline import household_figures
from scv.brokers import free_port, local_broker
from scv.connectors.demo import DemoEvent, generate, linkability
from scv.connectors.truth import pairwise_scores
from scv.kafka import source_producer_config
from scv.runner import (
    ActivationProcess,
    DrainTimeout,
    WorkerProcess,
    latest_by_key,
    read_topic,
    wait_drained,
)
from scv.settings import Settings
from scv.topics import Topics, create_topics

log = logging.getLogger(__name__)

#: The pipeline's ``SCV_DEFAULT_REGION`` for each traffic profile: the demo's shop is British,
#: the realistic profile's German.
REGIONS = {"demo": "GB", "realistic": "DE"}


def produce_events(
    settings: Settings,
    events: Iterator[DemoEvent],
    on_event: Callable[[DemoEvent], None],
    rate: float | None = None,
) -> int:
    """Produce ``events``: as fast as possible, or ``rate`` per second."""
    topics = Topics(settings)
    producer = Producer(source_producer_config(settings))
    count = 0
    started = time.monotonic()
    for ev in events:
        if rate is not None and count % 50 == 0:
            delay = started + count / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            producer.poll(0)
        producer.produce(topics.raw(ev.source), value=ev.value, key=ev.key)
        on_event(ev)
        count += 1
        if count % 5000 == 0:
            producer.poll(0)
    producer.flush(30)
    return count


def final_assignment(settings: Settings, live: dict[bytes, Any]) -> dict[str, str]:
    """event id → the live profile it belongs to now.

    Each routed event names its anchor identifier; the event belongs to whichever live
    profile (``profiles.v1``) owns that identifier now, which stays right through merges
    and splits alike.
    """
    owner: dict[str, str] = {}
    for pid, value in live.items():
        for kind, values in orjson.loads(value)["identifiers"].items():
            for v in values:
                owner[f"{kind}:{v}"] = pid.decode()
    assigned: dict[str, str] = {}
    for rec in read_topic(settings, Topics(settings).profile_events):
        msg = orjson.loads(rec.value or b"{}")
        if msg.get("kind") == "event" and msg.get("anchor") in owner:
            assigned[msg["event"]["event_id"]] = owner[msg["anchor"]]
    return assigned


def processing_end(settings: Settings) -> float | None:
    """When the last event's effect reached ``profiles.v1`` (epoch seconds).

    Per partition of ``profiles.events.v1``, the last routed event and the first snapshot of
    its profile written after it; the latest of those. Waiting for the consumer lag to settle
    instead would also count the cart ticks, which keep coming for a whole cart window.
    """
    topics = Topics(settings)
    last: dict[int, tuple[int, bytes | None, int]] = {}  # partition -> (offset, key, ts)
    for rec in read_topic(settings, topics.profile_events):
        newer = rec.partition not in last or rec.offset > last[rec.partition][0]
        if newer and orjson.loads(rec.value or b"{}").get("kind") == "event":
            last[rec.partition] = (rec.offset, rec.key, rec.timestamp_ms)
    if not last:
        return None
    snapshots = read_topic(settings, topics.profiles)
    ends = []
    for _, key, routed in last.values():
        after = [r.timestamp_ms for r in snapshots if r.key == key and r.timestamp_ms >= routed]
        ends.append(min(after, default=routed))
    return max(ends) / 1000


def summarize(
    settings: Settings,
    truth: dict[str, str],
    events_in: int,
    homes: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    topics = Topics(settings)
    live = latest_by_key(read_topic(settings, topics.profiles))
    graph = Counter(
        orjson.loads(r.value or b"{}")["kind"] for r in read_topic(settings, topics.merges)
    )
    actions = [orjson.loads(r.value or b"{}") for r in read_topic(settings, topics.actions)]
    by_type: Counter[str] = Counter()
    seen: set[str] = set()
    duplicates = 0
    for action in actions:
        if action["action_id"] in seen:
            duplicates += 1
            continue
        seen.add(action["action_id"])
        by_type[action["type"]] += 1
    dlq = {name: len(read_topic(settings, topics.dlq(name))) for name in topics.dead_lettered}
    audiences = audience_figures(read_topic(settings, topics.audiences))
    assignment = final_assignment(settings, live)
    scores: dict[str, float | None] = dict(pairwise_scores(truth, assignment))
    households = latest_by_key(read_topic(settings, topics.households))
    if homes is not None:
        profiles = {k: orjson.loads(v) for k, v in live.items()}
        scores |= household_figures(truth, homes, assignment, profiles)
    return {
        "events_in": events_in,
        "events_resolved": len(assignment),
        "profiles": len(live),
        "merges": graph["merge"],
        "splits": graph["split"],
        "refused_links": graph["refused"],
        "generic_values": graph["generic"],
        "household_values": graph["household"],
        "households_found": len(households),
        "actions": dict(sorted(by_type.items())),
        "duplicate_actions": duplicates,
        **({"audiences": audiences} if audiences else {}),
        "dlq": sum(dlq.values()),
        "dlq_by_topic": dlq,
        **{k: round(v, 6) if isinstance(v, float) else v for k, v in scores.items()},
    }


def audience_figures(records: Iterable[Any]) -> dict[str, dict[str, int]]:
    """Per audience on ``audiences.v1``: entries, leavings, and members at the end (each
    profile's last change, as a syncing tool would hold it)."""
    figures: dict[str, dict[str, int]] = {}
    last: dict[tuple[str, str], str] = {}
    for record in records:
        change = orjson.loads(record.value or b"{}")
        name = change["audience"]
        counts = figures.setdefault(name, {"entered": 0, "left": 0, "members": 0})
        counts[change["change"]] += 1
        last[(name, change["profile_id"])] = change["change"]
    for (name, _), change in last.items():
        figures[name]["members"] += change == "entered"
    return dict(sorted(figures.items()))


@contextlib.contextmanager
def local_pipeline(
    name: str,
    *,
    workers: int = 1,
    bootstrap: str | None = None,
    settings: dict[str, Any] | None = None,
    work_dir: Path | None = None,
    per_worker: Sequence[dict[str, Any]] = (),
    activation: bool = False,
) -> Iterator[tuple[Settings, list[WorkerProcess], Path]]:
    """Broker (unless ``bootstrap``), fresh topics and ``workers`` ready ``scv worker``
    processes; yields (settings, workers, work dir) and stops them all on exit.

    ``settings`` overrides worker settings; each worker gets its own state dir and web port,
    and worker ``i`` the overrides ``per_worker[i]`` (e.g. the stages it runs). With
    ``activation`` an ``scv activation`` worker runs too, last in the list. A drain that
    gives up inside (:class:`~scv.runner.DrainTimeout`) names the workers' log files.
    """
    started = time.time()
    work = work_dir or Path(tempfile.mkdtemp(prefix=f"scv-{name}-"))
    with contextlib.ExitStack() as stack:
        tansu = False
        if bootstrap is None:
            broker = stack.enter_context(local_broker(Settings(), work))
            bootstrap, tansu = broker.bootstrap, broker.kind == "tansu"
        overrides: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            # in memory, on this machine: no failover to guard against (SCV_IDEMPOTENT_OUTPUT)
            **({"idempotent_output": False} if tansu else {}),
            "app_id": f"scv-{name}-{int(started)}",
            "topic_prefix": f"{name}{int(started)}-",
            "session_timeout_s": 4.0,
            **(settings or {}),
        }
        base = Settings(**overrides)
        create_topics(base)
        procs: list[WorkerProcess] = []
        for i in range(workers):
            own = per_worker[i] if i < len(per_worker) else {}
            s = base.model_copy(
                update={"data_dir": work / f"worker{i}", "web_port": free_port(), **own}
            )
            procs.append(WorkerProcess(s, work / f"worker{i}.log").start())
            stack.callback(procs[-1].stop)
        if activation:
            s = base.model_copy(
                update={"data_dir": work / "activation", "activation_web_port": free_port()}
            )
            procs.append(ActivationProcess(s, work / "activation.log").start())
            stack.callback(procs[-1].stop)
        for proc in procs:
            proc.wait_ready(120)
        try:
            yield base, procs, work
        except DrainTimeout as exc:
            exc.logs = [proc.log_path for proc in procs]
            raise


def run_pipeline(
    events: Iterable[DemoEvent],
    *,
    name: str,
    workers: int = 1,
    bootstrap: str | None = None,
    cart_window_s: float | None = 8.0,
    settings: dict[str, Any] | None = None,
    work_dir: Path | None = None,
    timeout: float = 600.0,
    activation: bool = False,
    rate: float | None = None,
) -> dict[str, Any]:
    """Run ``events`` through a :func:`local_pipeline` to completion and return the summary
    scored against the events' ``person_id`` (produced as fast as possible, or ``rate`` per
    second).

    With a ``cart_window_s``, open carts are waited out so that their actions are counted
    (None: the default window, not waited for). Each worker's matcher figures, read from its
    ``/metrics`` before it stops, are under ``matcher``. With ``activation`` the activation
    layer runs too and is drained as well; its programmes' actions are counted with the
    core's under ``actions`` (by type) and ``duplicate_actions``.
    """
    started = time.time()
    overrides = {**({"cart_window_s": cart_window_s} if cart_window_s else {}), **(settings or {})}
    with local_pipeline(
        name,
        workers=workers,
        bootstrap=bootstrap,
        settings=overrides,
        work_dir=work_dir,
        activation=activation,
    ) as (base, procs, _):
        ready_at = time.time()
        truth: dict[str, str] = {}
        homes: dict[str, str | None] = {}
        malformed = 0

        def keep_truth(ev: DemoEvent) -> None:
            nonlocal malformed
            malformed += ev.malformed
            if ev.event_id is not None and ev.person_id is not None and not ev.malformed:
                truth[ev.event_id] = ev.person_id
                homes[ev.person_id] = ev.household_id

        count = produce_events(base, iter(events), keep_truth, rate)
        inputs = Topics(base).dead_lettered  # every topic a stage consumes
        wait_drained(base, inputs, timeout)
        drained_at = processing_end(base) or time.time()
        if cart_window_s:
            # Carts still open fire after their window: wait it out, then drain the ticks.
            time.sleep(max(0.0, cart_window_s + 2 * base.cart_check_interval_s))
            wait_drained(base, inputs, timeout)
        if activation:
            drain_activation(base, timeout)
        summary = summarize(base, truth, count, homes)
        if base.matching:
            summary["matcher"] = [
                matcher_figures(proc.metrics())
                for proc in procs
                if not isinstance(proc, ActivationProcess)
            ]
    return summary | {
        "malformed_in": malformed,
        "seconds": round(time.time() - started, 2),
        "processing_seconds": round(drained_at - ready_at, 2),
        "events_per_second": round(count / max(drained_at - ready_at, 1e-9), 1),
        "workers": workers,
    }


def drain_activation(settings: Settings, timeout: float) -> None:
    """Until the activation layer's group has committed everything on ``profiles.v1`` and
    on its own decisions topic (both its agents are done)."""
    from scv.activation.app import DECISIONS

    group = settings.model_copy(update={"app_id": f"{settings.app_id}-activation"})
    topics = [Topics(settings).profiles, settings.topic(DECISIONS)]
    wait_drained(group, topics, timeout, settle=3.0)


def matcher_figures(metrics_text: str) -> dict[str, Any]:
    """The matcher's decisions and candidate-scoring quantiles (µs) from a ``/metrics`` page."""
    decisions: dict[str, int] = {}
    scoring: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "scv_match_decisions_total":
                decisions[sample.labels["decision"]] = int(sample.value)
            elif sample.name == "scv_match_candidate_seconds":
                scoring[f"p{round(float(sample.labels['quantile']) * 100)}"] = round(
                    sample.value * 1e6, 2
                )
    return {"decisions": dict(sorted(decisions.items())), "candidate_scoring_us": scoring}


def _profile_settings(profile: str, households: float, matching: bool) -> dict[str, Any]:
    """The workers' settings for a demo ``profile`` (checked before anything starts): the
    realistic profile's workers read national phones as German (``SCV_DEFAULT_REGION=DE``),
    as its operators would configure them; the demo profile keeps whatever region the
    environment sets, as it always did."""
    if profile not in REGIONS:  # before a broker starts (generate() checks only when read)
        raise ValueError(f"unknown profile {profile!r}; expected one of {sorted(REGIONS)}")
    if profile != "demo" and households:
        raise ValueError(f"--households is for the demo profile; {profile} has its own")
    return {
        "matching": matching,
        **({"default_region": REGIONS[profile]} if profile != "demo" else {}),
    }


def _with_ceiling(
    summary: dict[str, Any], events: Iterable[DemoEvent], seed: int, **run: Any
) -> dict[str, Any]:
    """``summary`` with what the run was asked (``run``: matching, households, profile) and
    the traffic's ceilings (:func:`~scv.connectors.demo.linkability`) under ``linkability``."""
    ceiling = linkability(events, region=REGIONS[run["profile"]])
    return summary | {
        "seed": seed,
        **run,
        "linkability": {k: round(v, 6) if isinstance(v, float) else v for k, v in ceiling.items()},
    }


def run_demo(
    events: int,
    seed: int,
    *,
    workers: int = 1,
    bootstrap: str | None = None,
    cart_window_s: float = 8.0,
    matching: bool = False,
    work_dir: Path | None = None,
    timeout: float = 600.0,
    households: float = 0.0,
    profile: str = "demo",
) -> dict[str, Any]:
    """Run the whole pipeline on ``events`` generated events and return the summary
    (``households``: the share of people living in households, ``profile``: the customer
    base, see ``generate``).

    The realistic profile is a German retailer's: its workers read national phone numbers as
    German (``SCV_DEFAULT_REGION=DE``), as its operators would configure them. The summary
    carries the traffic's ceilings (:func:`~scv.connectors.demo.linkability`) under
    ``linkability`` so that the recall can be read against them; they are computed after the
    run from the same seed again (the stream does not depend on the start time), so the run's
    timings and memory are not touched.
    """
    settings = _profile_settings(profile, households, matching)
    summary = run_pipeline(
        generate(events, seed, households=households, profile=profile),
        name="demo",
        workers=workers,
        bootstrap=bootstrap,
        cart_window_s=cart_window_s,
        settings=settings,
        work_dir=work_dir,
        timeout=timeout,
        activation=True,
    )
    again = generate(events, seed, households=households, profile=profile)
    return _with_ceiling(
        summary, again, seed, matching=matching, households=households, profile=profile
    )


def run_demo_offline(
    events: int,
    seed: int,
    *,
    matching: bool = False,
    households: float = 0.0,
    profile: str = "demo",
) -> dict[str, Any]:
    """``scv demo --offline``: the same generated traffic through the same stages without
    a broker (:func:`scv.bench.offline.score`, RocksDB in a temporary directory that is
    removed), scored the same way; seconds instead of a minute, for tuning identity rules.

    The summary has the broker demo's keys that mean something without one (no actions,
    no delivery, no worker timings) and ``"mode": "offline"``; the broker demo stays the
    proof that the pipeline delivers this.
    """
    from scv.bench import offline  # (looked up when called: tests replace the scorer)

    started = time.time()
    stream = list(generate(events, seed, households=households, profile=profile))
    scores = offline.score(stream, Settings(**_profile_settings(profile, households, matching)))
    summary = {"mode": "offline", "events_in": scores.pop("events")} | {
        k: round(v, 6) if isinstance(v, float) else v
        for k, v in scores.items()
        if not k.startswith("_")
    }
    summary["seconds"] = round(time.time() - started, 2)
    return _with_ceiling(
        summary, stream, seed, matching=matching, households=households, profile=profile
    )
