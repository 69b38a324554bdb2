"""Broker faults for ``scv bench chaos``: Apache Kafka nodes killed, restarted one by one, or
all stopped and started again, with their data, while the pipeline runs.

On a three-node cluster (replication factor 3, ``min.insync.replicas`` 2) the pipeline should
not notice one node going: its partitions' leadership moves to another replica, the
clients follow, and the node catches up when it is back. A rolling restart (each node
stopped cleanly, started, and its replicas back in sync before the next) is what an
upgrade does; a full stop and start is a data-centre power cut, after which every
committed write must still be there. Workers are left alone: they must recover by
themselves. Each fault records how long it took until every node was listed again, until
every partition of the run's topics had its full in-sync replica set again, and until the
consumer group's committed offsets moved again.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from scv.brokers import ApacheKafka
from scv.kafka import admin_config
from scv.runner import committed_total, group_lag
from scv.settings import Settings
from scv.topics import Topics

#: Faults a schedule may hold (``kill``: one node, kill -9; ``rolling``: every node in
#: turn, stopped cleanly; ``cluster``: every node stopped, then all started).
KINDS = ("kill", "rolling", "cluster")


@dataclass(slots=True)
class BrokerFault:
    kind: str
    nodes: list[int]
    leader: bool  # a node stopped led the resolver's input partition
    at_s: float  # since the faulty run's start
    downtime_s: float  # how long a node (or the cluster) was down
    back_s: float | None  # from the fault until every node was listed again
    isr_full_s: float | None  # ... until every partition had its full in-sync replicas
    resumed_s: float | None  # ... until the group's committed offsets moved after it


class BrokerChaos:
    """Applies a seeded schedule of broker faults to ``kafka`` during one run."""

    def __init__(self, kafka: ApacheKafka, settings: Settings, rng: random.Random) -> None:
        self.kafka = kafka
        self.settings = settings
        self.rng = rng
        self.started = time.monotonic()
        self.faults: list[BrokerFault] = []
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self, kills: int, rolling: bool, cluster: bool, window_s: float) -> None:
        """Run the schedule in a thread: ``kills`` single-node kills (the first hits the
        leader of the resolver's partition), and a rolling restart and a full stop if asked,
        at seeded moments within ``window_s``."""
        plan = ["kill"] * kills + ["rolling"] * rolling + ["cluster"] * cluster
        self.rng.shuffle(plan)
        if "kill" in plan:  # the leader kill first: it is the one that matters most
            plan.remove("kill")
            plan.insert(0, "kill")
        slots = [window_s * (i + 0.5) / max(1, len(plan)) for i in range(len(plan))]

        def run() -> None:
            try:
                for n, (kind, at) in enumerate(zip(plan, slots, strict=True)):
                    time.sleep(max(0.0, self.started + at - time.monotonic()))
                    self.faults.append(self._apply(kind, leader=n == 0))
            except BaseException as exc:  # reported by join()
                self.error = exc

        self._thread = threading.Thread(target=run, name="broker-chaos", daemon=True)
        self._thread.start()

    def join(self, timeout: float = 900.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError("broker faults still running")
        if self.error is not None:
            raise RuntimeError(f"broker fault failed: {self.error}") from self.error

    # --- one fault -----------------------------------------------------------------------
    def _apply(self, kind: str, leader: bool) -> BrokerFault:
        kafka = self.kafka
        resolver = Topics(self.settings).identity_events
        lead = kafka.leader(resolver, 0)
        committed = committed_total(self.settings)
        at = time.monotonic()
        if kind == "kill":
            victim = lead if leader else self.rng.choice([n.node_id for n in kafka.nodes])
            downtime = round(self.rng.uniform(1.0, 5.0), 2)
            kafka.kill_node(victim)
            time.sleep(downtime)
            kafka.start_node(victim)
            nodes = [victim]
        elif kind == "rolling":
            nodes = [n.node_id for n in kafka.nodes]
            downtime = 0.0
            for node in nodes:
                began = time.monotonic()
                kafka.stop_node(node)
                kafka.start_node(node)
                downtime = max(downtime, round(time.monotonic() - began, 2))
                self._wait_isr(300)  # as an upgrade does: in sync before the next node
        else:
            nodes = [n.node_id for n in kafka.nodes]
            downtime = round(self.rng.uniform(2.0, 6.0), 2)
            kafka.stop_nodes(nodes)
            time.sleep(downtime)
            kafka.start(180)  # every stopped node, with its data
        back = round(time.monotonic() - at, 2)
        isr = self._wait_isr(300)
        resumed = self._wait_progress(committed, 300)
        return BrokerFault(
            kind,
            nodes,
            lead in nodes,
            round(at - self.started, 2),
            downtime,
            back,
            None if isr is None else round(isr - at, 2),
            None if resumed is None else round(resumed - at, 2),
        )

    def _wait_isr(self, timeout: float) -> float | None:
        """Until every partition of the run's topics has all its replicas in sync."""
        admin = AdminClient(admin_config(self.settings))
        prefix = self.settings.topic_prefix
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                meta = admin.list_topics(timeout=5)
            except Exception:  # a node still starting
                time.sleep(0.2)
                continue
            parts = [
                p
                for name, t in meta.topics.items()
                if name.startswith(prefix)
                for p in t.partitions.values()
            ]
            if parts and all(len(p.isrs) == len(p.replicas) for p in parts):
                return time.monotonic()
            time.sleep(0.2)
        return None

    def _wait_progress(self, before: int | None, timeout: float) -> float | None:
        """Until the group's committed offsets moved past ``before`` (their sum), or there
        is nothing left to consume (a fault after the last event)."""
        inputs = Topics(self.settings).dead_lettered
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = committed_total(self.settings)
            if before is None or (now is not None and now > before):
                return time.monotonic()
            with contextlib.suppress(KafkaException):
                if group_lag(self.settings, inputs) == 0:
                    return time.monotonic()
            time.sleep(0.2)
        return None


def summary(faults: list[BrokerFault]) -> dict[str, Any]:
    """Recovery times per kind of fault (the longest), for the report."""
    out: dict[str, Any] = {}
    for kind in KINDS:
        mine = [f for f in faults if f.kind == kind]
        if mine:
            out[kind] = {
                "count": len(mine),
                "leader_hit": sum(f.leader for f in mine),
                "max_back_s": max((f.back_s or 0.0) for f in mine),
                "max_isr_full_s": max((f.isr_full_s or 0.0) for f in mine),
                "max_resumed_s": max((f.resumed_s or 0.0) for f in mine),
            }
    return out
