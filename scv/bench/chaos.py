"""``scv bench chaos``: the processing guarantee, tested by killing workers with SIGKILL.

Two runs of the same deterministic demo workload on one embedded broker, each with fresh
topics, consumer group and state directories:

1. the reference: ``workers`` workers, no faults;
2. the faulty run: the same events produced at a steady pace while a seeded schedule
   SIGKILLs a worker at random moments, sometimes again while it is restoring its tables,
   and restarts it on the same state directory (a pod restart on its volume).

Both runs are drained (every input consumed, lag zero for a while); then ``profiles.v1`` and
``actions.v1`` of the faulty run are compared with the reference (``scv.bench.outcome``)
and the faulty run's snapshots with its own final states. Every count in the report's
``failures`` must be 0; ``scv bench chaos`` exits non-zero otherwise.
"""

from __future__ import annotations

import os
import random
import re
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from scv.bench.broker_faults import BrokerChaos, summary
from scv.bench.broker_faults import BrokerFault as BrokerFaultRecord
from scv.bench.outcome import Outcome, compare, repeated, stale_snapshots
from scv.brokers import ApacheKafka, local_broker
from scv.connectors.demo import DemoEvent, generate
from scv.demo import local_pipeline
from scv.kafka import source_producer_config
from scv.runner import WorkerProcess, latest_by_key, read_topic, wait_drained
from scv.settings import Settings
from scv.topics import Topics

#: Log lines the worker writes when a (re)assignment starts and when its tables are
#: restored (scv.streams.worker): a kill between the two hits a worker in recovery.
RESTORING, RESTORED = "restoring", "restored in"
_RESTORED_IN = re.compile(r"restored in ([0-9.]+)s")


def readyz(url: str) -> int | None:
    """The worker's ``/readyz`` status; None while nothing answers."""
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=1) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


@dataclass(slots=True)
class Restart:
    """One SIGKILL and the restart after it."""

    worker: int
    at_s: float  # since the faulty run's first event
    was_ready: bool  # False: killed while joining or restoring its tables
    downtime_s: float
    time_to_ready_s: float | None  # None: killed again before it was ready
    restore_s: list[float]  # what the worker logged for each restore of that life
    not_ready_answers: int  # /readyz 503s seen while it joined and restored
    ready_before_restore: bool  # /readyz said 200 before the log said "restored": a bug


def produce_paced(
    settings: Settings, events: Sequence[DemoEvent], rate: float, done: threading.Event
) -> None:
    """Produce ``events`` at ``rate`` per second (in slices of 50 ms), then set ``done``."""
    topics = Topics(settings)
    producer = Producer(source_producer_config(settings))
    started = time.monotonic()
    try:
        for i, ev in enumerate(events):
            if i % 50 == 0:
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                producer.poll(0)
            producer.produce(topics.raw(ev.source), value=ev.value, key=ev.key)
        # Every event delivered, even across a broker outage (a full cluster restart takes
        # tens of seconds): the source must not be what loses data.
        deadline = time.monotonic() + 600
        while producer.flush(10) and time.monotonic() < deadline:
            pass
        left = len(producer)
        if left:
            raise RuntimeError(f"{left} demo events undelivered after 600 s")
    finally:
        done.set()


class Killer:
    """SIGKILLs and restarts the workers of one run, on a seeded schedule."""

    def __init__(self, procs: list[WorkerProcess], rng: random.Random) -> None:
        self.procs = procs
        self.rng = rng
        self.started = time.monotonic()
        self.restarts: list[Restart] = []
        self._log_from = [0] * len(procs)  # where each worker's current life starts in its log
        #: workers that exited without being killed (restarted, as a supervisor would):
        #: (worker, seconds since start, the end of its log)
        self.self_exits: list[tuple[int, float, str]] = []
        self._lock = threading.Lock()
        self._watching = threading.Event()

    def supervise(self) -> None:
        """Until :meth:`stop_supervising`: restart any worker that exited by itself (a
        pod's restart policy). Each is a finding: workers should ride out broker faults."""
        self._watching.set()

        def watch() -> None:
            while self._watching.is_set():
                with self._lock:
                    for i, proc in enumerate(self.procs):
                        if proc.proc is not None and proc.proc.poll() is not None:
                            at = round(time.monotonic() - self.started, 2)
                            self.self_exits.append((i, at, proc.tail(5)))
                            log_ = self.procs[i].log_path
                            self._log_from[i] = log_.stat().st_size if log_.exists() else 0
                            proc.start()
                time.sleep(0.5)

        threading.Thread(target=watch, name="supervisor", daemon=True).start()

    def stop_supervising(self) -> None:
        self._watching.clear()

    def kill(self, i: int) -> bool:
        """SIGKILL worker ``i``'s process group; whether it was ready just before."""
        proc = self.procs[i]
        self._lock.acquire()  # the supervisor must not restart it: restart() releases
        was_ready = self._ready_in_log(i)
        assert proc.proc is not None
        os.killpg(proc.proc.pid, signal.SIGKILL)
        proc.proc.wait()
        if proc._log is not None:
            proc._log.close()
            proc._log = None
        return was_ready

    def restart(self, i: int, downtime: float) -> float:
        try:
            time.sleep(downtime)
            log = self.procs[i].log_path
            self._log_from[i] = log.stat().st_size if log.exists() else 0
            self.procs[i].start()
        finally:
            self._lock.release()
        return time.monotonic()

    def wait_ready(self, i: int, since: float, timeout: float = 180.0) -> tuple[float, int, bool]:
        """Poll ``/readyz`` until 200: (seconds since start, 503s seen, whether the 200
        came before the worker had logged its restore as done)."""
        proc = self.procs[i]
        refused = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.proc is not None and proc.proc.poll() is not None:
                raise RuntimeError(f"worker {i} exited: {proc.tail()}")
            status = readyz(proc.url)
            if status == 200:
                early = not self._ready_in_log(i)
                return round(time.monotonic() - since, 2), refused, early
            refused += status == 503
            time.sleep(0.02)
        raise TimeoutError(f"worker {i} not ready after {timeout}s: {proc.tail()}")

    def restores(self, i: int) -> list[float]:
        """The restore times worker ``i`` logged in its current life."""
        return [float(m) for m in _RESTORED_IN.findall(self._since_start(i))]

    def wait_restoring(self, i: int, timeout: float = 180.0) -> None:
        """Until worker ``i``'s log says a restore has started since its last start.

        As long as :meth:`wait_ready` allows: while brokers are being killed too, the
        restarted worker may first wait 20 s for its ACL check and then for the group's
        coordinator to move (measured: more than 60 s on a 3-node Apache Kafka)."""
        proc = self.procs[i]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if RESTORING in self._since_start(i):
                return
            time.sleep(0.005)
        raise TimeoutError(f"worker {i} never started restoring: {proc.tail()}")

    def run(self, kills: int, window_s: float, in_recovery: set[int]) -> None:
        """``kills`` kills at seeded moments over ``window_s``; those in ``in_recovery``
        hit the worker restarted just before, once its restore has begun."""
        moments = sorted(self.rng.uniform(0.05, 0.95) * window_s for _ in range(kills))
        victim = 0
        for n in range(kills):
            if n in in_recovery and n > 0:
                self.wait_restoring(victim)
            else:
                time.sleep(max(0.0, self.started + moments[n] - time.monotonic()))
                victim = self.rng.randrange(len(self.procs))
            at = round(time.monotonic() - self.started, 2)
            was_ready = self.kill(victim)
            downtime = round(self.rng.uniform(0.0, 1.5), 2)
            since = self.restart(victim, downtime)
            ready, refused, early = None, 0, False
            if n + 1 not in in_recovery:
                ready, refused, early = self.wait_ready(victim, since)
            restores = self.restores(victim)
            self.restarts.append(
                Restart(victim, at, was_ready, downtime, ready, restores, refused, early)
            )

    def _since_start(self, i: int) -> str:
        """Worker ``i``'s log since its current process started (each start appends)."""
        with open(self.procs[i].log_path, "rb") as f:
            f.seek(self._log_from[i])
            return f.read().decode(errors="replace")

    def _ready_in_log(self, i: int) -> bool:
        log = self._since_start(i)
        return log.rfind(RESTORED) > log.rfind(RESTORING) >= 0


def drain(settings: Settings, timeout: float) -> None:
    """Until every stage input is consumed and committed (lag 0 for 3 s). A lag request the
    group coordinator times out while the group rebalances is asked again (wait_drained).
    :class:`~scv.runner.DrainTimeout` when the lag gets no lower for 2 minutes (a late
    rebalance restores tables meanwhile) or ``timeout`` passes."""
    wait_drained(settings, Topics(settings).dead_lettered, timeout, settle=3.0, stall=120.0)


def collect(settings: Settings) -> Outcome:
    """What the run left on ``profiles.v1`` and ``actions.v1`` (and the profiles table)."""
    topics = Topics(settings)
    profiles = {
        k.decode(): orjson.loads(v)
        for k, v in latest_by_key(read_topic(settings, topics.profiles, 120)).items()
    }
    actions = [orjson.loads(r.value or b"{}") for r in read_topic(settings, topics.actions, 120)]
    merges = Counter(r.value for r in read_topic(settings, topics.merges, 120))
    states = {
        k.decode(): orjson.loads(v)
        for k, v in latest_by_key(read_topic(settings, topics.changelog("profiles"), 120)).items()
        if not k.startswith(b"\xff")  # bookkeeping keys (checkpoints, commits)
    }
    audited = [topics.merges, topics.audit, topics.review]
    audited += [topics.dlq(t) for t in topics.dead_lettered]
    duplicates = {}
    for t in audited:
        records = read_topic(settings, t, 120)
        duplicates[t] = repeated([r.value for r in records], [r.headers for r in records])
    return Outcome(profiles, actions, states, sum(n - 1 for n in merges.values()), duplicates)


def _run(
    name: str,
    events: Sequence[DemoEvent],
    *,
    workers: int,
    bootstrap: str,
    work_dir: Path,
    rate: float | None,
    overrides: dict[str, Any],
    kills: int = 0,
    kill_seed: int = 0,
    timeout: float = 900.0,
    kafka: ApacheKafka | None = None,
    broker_faults: tuple[int, bool, bool] = (0, False, False),
) -> tuple[Outcome, dict[str, Any]]:
    """One run: produce (paced when ``rate``), kill workers (and with ``kafka``, break
    brokers: ``broker_faults`` = (node kills, a rolling restart, a full stop)) on schedule,
    drain, collect."""
    with ExitStack() as stack:
        settings, procs, _ = stack.enter_context(
            local_pipeline(
                name, workers=workers, bootstrap=bootstrap, settings=overrides, work_dir=work_dir
            )
        )
        started = time.monotonic()
        done = threading.Event()
        producer = threading.Thread(
            target=produce_paced,
            args=(settings, events, rate or 1e9, done),
            daemon=True,
        )
        producer.start()
        killer = Killer(procs, random.Random(kill_seed))
        killer.supervise()
        stack.callback(killer.stop_supervising)  # before the workers stop, whatever happens
        produce_s = len(events) / rate if rate else 1.0
        brokers = None
        if kafka is not None and any(broker_faults):
            brokers = BrokerChaos(kafka, settings, random.Random(kill_seed + 2))
            brokers.start(*broker_faults, window_s=produce_s)
        if kills:
            rng = random.Random(kill_seed + 1)
            in_recovery = (
                set(rng.sample(range(1, kills), max(1, kills // 4))) if kills > 1 else set()
            )
            killer.run(kills, produce_s, in_recovery)
        producer.join()
        if brokers is not None:
            brokers.join()
        for proc in procs:
            proc.wait_ready(180)
        drain(settings, timeout)
        killer.stop_supervising()
        seconds = round(time.monotonic() - started, 2)
        outcome = collect(settings)
    info = {
        "seconds": seconds,
        "kills": len(killer.restarts),
        "restarts": [asdict(r) for r in killer.restarts],
        "self_exits": [{"worker": i, "at_s": at, "log": tail} for i, at, tail in killer.self_exits],
        "broker_faults": [asdict(f) for f in brokers.faults] if brokers else [],
    }
    return outcome, info


def run_chaos(
    events: int = 20_000,
    *,
    seed: int = 7,
    workers: int = 2,
    kills: int = 6,
    kill_seed: int = 1,
    rate: float | None = None,
    bootstrap: str | None = None,
    work_dir: Path | None = None,
    brokers: int = 1,
    broker_kills: int = 0,
    rolling_restart: bool = False,
    cluster_restart: bool = False,
) -> dict[str, Any]:
    """The reference run, the faulty run, and their comparison (see the module docstring).

    With ``brokers=3`` (Apache Kafka, ``SCV_BROKER=kafka``) both runs use a three-node
    cluster, topics with replication factor 3 and ``min.insync.replicas`` 2, and the faulty
    run also kills brokers (:mod:`scv.bench.broker_faults`).
    """
    faults = (broker_kills, rolling_restart, cluster_restart)
    if any(faults) and brokers != 3:
        raise ValueError("broker faults need a cluster: --brokers 3 (with SCV_BROKER=kafka)")
    work = work_dir or Path(tempfile.mkdtemp(prefix="scv-chaos-"))
    # Events from the past, as real traffic is: a profile whose first message is a merge
    # hand-over starts with processing time as created_ts, which a later event corrects
    # only if it is older than now.
    span = events * 0.01
    batch = list(generate(events, seed, start_ts=time.time() - span - 3600, seconds_span=span))
    pace = rate or max(50.0, events / max(20.0, 7.0 * kills))
    # The staleness bounds (docs/actions.md) judge event time against the processing clock:
    # on traffic an hour old every offer would be stale, and an action near a bound could
    # fire in one run and not in the other. This compares faults, so they are off.
    overrides: dict[str, Any] = {
        "session_timeout_s": 3.0,
        "churn_visit_max_lag_s": 0,
        "cart_max_lag_s": 0,
    }
    kafka: ApacheKafka | None = None
    with ExitStack() as stack:
        if bootstrap is None:
            broker = stack.enter_context(local_broker(Settings(), work, nodes=brokers))
            bootstrap = broker.bootstrap
            kafka = broker if isinstance(broker, ApacheKafka) else None
        if brokers == 3:
            overrides |= {"replication_factor": 3, "min_insync_replicas": 2}
        common: dict[str, Any] = {
            "workers": workers,
            "bootstrap": bootstrap,
            "overrides": overrides,
        }
        # As fast as it goes: the comparison allows for arrival order (scv.bench.outcome;
        # a fast and a paced fault-free run of 20k events compare equal).
        ref, ref_info = _run("chaosref", batch, work_dir=work / "ref", rate=None, **common)
        got, info = _run(
            "chaos",
            batch,
            work_dir=work / "faulty",
            rate=pace,
            kills=kills,
            kill_seed=kill_seed,
            kafka=kafka,
            broker_faults=faults,
            **common,
        )
    for name, outcome in (("reference", ref), ("faulty", got)):  # for a post-mortem
        (work / f"{name}-outcome.json").write_bytes(orjson.dumps(asdict(outcome)))
    profiles, actions = compare(ref, got)
    exactly_once = Settings().processing_guarantee == "exactly_once"
    failures = {
        "lost_profile_updates": profiles["lost_events"] + stale_snapshots(got),
        "duplicate_actions": actions["duplicate_actions"],
        "differing_profiles": profiles["differing_profiles"]
        + profiles["missing_profiles"]
        + profiles["extra_profiles"],
        "missing_actions": actions["missing_actions"],
        "extra_actions": actions["extra_actions"],
        "differing_actions": actions["differing_actions"],
        "double_counted_events": profiles["double_counted_events"],
        "ready_before_restore": sum(1 for r in info["restarts"] if r["ready_before_restore"]),
        # nothing to compare would compare equal: a broken setup must not pass
        "reference_empty": int(not ref.profiles),
        # exactly once: not even the audit trail repeats (at least once allows it)
        "duplicate_records": sum(got.duplicates.values()) if exactly_once else 0,
        # workers must ride out broker faults by themselves
        "worker_self_exits": len(info["self_exits"]),
    }
    ready = [r["time_to_ready_s"] for r in info["restarts"] if r["time_to_ready_s"] is not None]
    return {
        "events": events,
        "seed": seed,
        "workers": workers,
        "rate": round(pace, 1),
        "kills": info["kills"],
        "restarts": info["restarts"],
        "killed_in_recovery": sum(1 for r in info["restarts"] if not r["was_ready"]),
        "time_to_ready_s": {"max": max(ready, default=None), "all": ready},
        **failures,
        "stale_snapshots": stale_snapshots(got),
        "order_sensitive": {
            "consent": profiles["order_sensitive_consent"],
            "action_visit": actions["order_sensitive_visit"],
            "action_consent": actions["order_sensitive_consent"],
        },
        "duplicate_merge_records": got.duplicate_merges,
        "duplicates_by_topic": got.duplicates,
        "processing_guarantee": "exactly_once" if exactly_once else "at_least_once",
        "broker": {
            "kind": kafka.kind if kafka else Settings().broker,
            "nodes": brokers,
            "version": kafka.version if kafka else None,
        },
        "broker_faults": info["broker_faults"],
        "broker_recovery": summary([BrokerFaultRecord(**f) for f in info["broker_faults"]]),
        "self_exits": info["self_exits"],
        "profiles": profiles,
        "actions": actions,
        "work_dir": str(work),
        "reference_seconds": ref_info["seconds"],
        "faulty_seconds": info["seconds"],
        "ok": not any(failures.values()),
    }
