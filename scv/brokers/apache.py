"""A real Apache Kafka (KRaft) cluster on this machine: one node, or three.

The broker scv is proven on. Each node is a combined broker and controller, a JVM started
from the jars :func:`scv.brokers.fetch.kafka_libs` provides, with its data on disk under the
cluster's folder, so a node (or the whole cluster) can be killed and started again with its
data, as in production. Nothing is installed: ``kafka.tools.StorageTool format`` prepares
each node's storage once (the cluster id is kept), and ``kafka.Kafka server.properties``
runs it. Ready means a metadata round trip listed every node, not an open port.

The settings below are for a cluster that starts fast and behaves predictably under test
(see :meth:`ApacheKafka.properties`); production brokers keep Kafka's defaults.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scv.brokers.fetch import KAFKA_VERSION, KafkaSetupError, java_binary, kafka_libs
from scv.brokers.process import ChildProcess, StartStop, free_port, port_open

log = logging.getLogger(__name__)

#: Heap per node: three nodes, a worker and the tests fit on two cores and a few GB.
HEAP = "512m"

_LOG4J2 = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.controller
        level: WARN
      - name: kafka.log.LogCleaner
        level: INFO
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
"""


@dataclass
class Node:
    """One KRaft node: its id, ports, data folder and process."""

    node_id: int
    port: int
    controller_port: int
    folder: Path
    child: ChildProcess = field(repr=False)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def config(self) -> Path:
        return self.folder / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.folder / "kafka.log"

    @property
    def running(self) -> bool:
        return self.child.running


class ApacheKafka(StartStop):
    """``nodes`` KRaft nodes (broker + controller each) on free ports of ``host``.

    >>> with ApacheKafka(nodes=3) as kafka:  # doctest: +SKIP
    ...     settings = Settings(bootstrap_servers=kafka.bootstrap, replication_factor=3)

    ``config`` adds to or overrides the node properties (e.g. SASL listeners); its values
    may name ``{host}``, ``{port}``, ``{controller_port}`` and ``{node_id}``, filled in per
    node. ``format_args`` go to ``StorageTool format`` (e.g. ``--add-scram``);
    ``client_config`` is what a client needs on the listener ``bootstrap`` points at
    (security settings, for the readiness probe); ``work_dir`` keeps the data (a temporary
    folder, removed by :meth:`stop`, if not given).
    """

    kind = "kafka"

    def __init__(
        self,
        nodes: int = 1,
        *,
        host: str = "127.0.0.1",
        work_dir: Path | None = None,
        config: dict[str, Any] | None = None,
        format_args: list[str] | None = None,
        client_config: dict[str, Any] | None = None,
        version: str = KAFKA_VERSION,
        home: Path | None = None,
        heap: str = HEAP,
    ) -> None:
        if nodes not in (1, 3):
            raise ValueError("a cluster of 1 or 3 nodes")
        self.host = host
        self.version, self.home, self.heap = version, home, heap
        self.extra = {k: str(v) for k, v in (config or {}).items()}
        self.format_args = list(format_args or [])
        self.client_config = dict(client_config or {})
        self._own_dir = work_dir is None
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="scv-kafka-"))
        self.cluster_id: str | None = None
        self.nodes = [
            Node(
                i,
                0,
                0,
                self.work_dir / f"node{i}",
                ChildProcess(f"kafka node {i}", self.work_dir / f"node{i}" / "kafka.log"),
            )
            for i in range(1, nodes + 1)
        ]
        self._java: str | None = None
        self._libs: Path | None = None

    # ------------------------------------------------------------------ properties
    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.host}:{n.port}" for n in self.nodes)

    @property
    def running(self) -> bool:
        return any(n.running for n in self.nodes)

    @property
    def pids(self) -> list[int]:
        """The process id of each node's JVM that runs: what a benchmark reads CPU time from
        (a JVM's ``/proc/<pid>/stat`` counts all its threads)."""
        return [pid for n in self.nodes if n.running and (pid := n.child.pid) is not None]

    @property
    def log_path(self) -> Path:
        return self.nodes[0].log_path

    def node(self, node_id: int) -> Node:
        return self.nodes[node_id - 1]

    def properties(self, node: Node) -> dict[str, str]:
        """A node's ``server.properties``: KRaft combined mode plus what tests need."""
        n = len(self.nodes)
        voters = ",".join(f"{m.node_id}@{self.host}:{m.controller_port}" for m in self.nodes)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "listeners": f"PLAINTEXT://{self.host}:{node.port},"
            f"CONTROLLER://{self.host}:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(node.data),
            "num.partitions": "1",
            # The internal topics are replicated over the whole (test) cluster.
            "offsets.topic.replication.factor": str(n),
            "transaction.state.log.replication.factor": str(n),
            "transaction.state.log.min.isr": str(min(n, 2)),
            # Fewer partitions than the default 50: created on first use, and every test
            # session is a new cluster.
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.num.partitions": "5",
            # Tests: a group's first join is not delayed 3 s waiting for more members ...
            "group.initial.rebalance.delay.ms": "0",
            # ... workers run with 2-4 s session timeouts, below the 6 s default minimum ...
            "group.min.session.timeout.ms": "1000",
            # ... and compaction tests see the cleaner act within seconds.
            "log.cleaner.backoff.ms": "500",
            # A controlled shutdown of a 3-node cluster moves leaders first; a stopped
            # cluster (all nodes) must not wait for that for long.
            "controlled.shutdown.max.retries": "1",
            "controlled.shutdown.retry.backoff.ms": "500",
        }
        if n == 1:
            props["controller.quorum.bootstrap.servers"] = f"{self.host}:{node.controller_port}"
        else:
            props["controller.quorum.voters"] = voters
        where = {
            "host": self.host,
            "port": node.port,
            "controller_port": node.controller_port,
            "node_id": node.node_id,
        }
        return props | {k: v.format(**where) for k, v in self.extra.items()}

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 120.0) -> ApacheKafka:
        """Fetch the jars if needed, format new storage, start every node, and return once a
        metadata request lists them all. Raises :class:`KafkaSetupError` (Java or Maven
        missing, a fetch that failed) or RuntimeError with a node's log tail."""
        self._java = java_binary()
        self._libs = kafka_libs(self.version, self.home)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        (self.work_dir / "log4j2.yaml").write_text(_LOG4J2)
        if self.cluster_id is None:
            self._assign_ports()
            self._format()
        for node in self.nodes:
            if not node.running:
                self._spawn(node)
        self.wait_ready(timeout)
        log.info("Apache Kafka %s ready on %s", self.version, self.bootstrap)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node (SIGTERM, SIGKILL after ``timeout``); a temporary folder goes
        too. Idempotent."""
        self.stop_nodes([n.node_id for n in self.nodes], timeout)
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def stop_nodes(self, node_ids: list[int], timeout: float = 30.0) -> None:
        """A clean shutdown of these nodes at once (their data stays). At once: a node
        stopped after the others would wait for a controller quorum that has gone."""
        nodes = [self.node(i) for i in node_ids]
        for node in nodes:
            node.child.signal(signal.SIGCONT)
            node.child.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for node in nodes:
            node.child.stop(max(1.0, deadline - time.monotonic()))

    def stop_node(self, node_id: int, timeout: float = 30.0) -> None:
        """A clean shutdown of one node (its data stays)."""
        self.stop_nodes([node_id], timeout)

    def kill_node(self, node_id: int) -> None:
        """``kill -9`` one node: no controlled shutdown, its data stays on disk."""
        self.node(node_id).child.kill()

    def start_node(self, node_id: int, timeout: float = 120.0) -> None:
        """Start a stopped or killed node again on its ports, with its data."""
        node = self.node(node_id)
        if not node.running:
            self._spawn(node)
        self.wait_ready(timeout, nodes=[node_id])

    def wait_ready(self, timeout: float = 120.0, nodes: list[int] | None = None) -> None:
        """Until a metadata request lists every node of ``nodes`` (all by default)."""
        from confluent_kafka.admin import AdminClient

        want = set(nodes or [n.node_id for n in self.nodes])
        deadline = time.monotonic() + timeout
        admin: AdminClient | None = None
        while True:
            for node in self.nodes:
                if node.node_id in want and not node.running:
                    raise RuntimeError(
                        f"Apache Kafka node {node.node_id} exited during start-up (exit code "
                        f"{node.child.returncode}); log {node.log_path}:\n{node.child.log_tail()}"
                    )
            if time.monotonic() > deadline:
                tail = self.node(min(want)).child.log_tail()
                raise RuntimeError(
                    f"Apache Kafka on {self.bootstrap} did not list nodes {sorted(want)} within "
                    f"{timeout:.0f}s; log of node {min(want)}:\n{tail}"
                )
            ports = [self.node(i).port for i in want]
            if all(port_open(self.host, p) for p in ports):
                if admin is None:
                    admin = AdminClient(self._client_config())
                with contextlib.suppress(Exception):  # KafkaException while starting
                    if want <= set(admin.list_topics(timeout=2.0).brokers):
                        return
            time.sleep(0.2)

    def leader(self, topic: str, partition: int = 0) -> int:
        """The node that leads ``topic``'s ``partition`` now."""
        from confluent_kafka.admin import AdminClient

        meta = AdminClient(self._client_config()).list_topics(topic, timeout=10)
        return int(meta.topics[topic].partitions[partition].leader)

    def __repr__(self) -> str:
        up = sum(n.running for n in self.nodes)
        return f"ApacheKafka({self.version}, {up}/{len(self.nodes)} nodes up, {self.bootstrap})"

    # ------------------------------------------------------------------ internals
    def _client_config(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap, "log_level": 2} | self.client_config

    def _assign_ports(self) -> None:
        taken: set[int] = set()
        for node in self.nodes:
            for name in ("port", "controller_port"):
                port = free_port(self.host)
                while port in taken:
                    port = free_port(self.host)
                taken.add(port)
                setattr(node, name, port)

    def _write_config(self, node: Node) -> None:
        node.folder.mkdir(parents=True, exist_ok=True)
        lines = [f"{k}={v}" for k, v in self.properties(node).items()]
        node.config.write_text("\n".join(lines) + "\n")

    def _format(self) -> None:
        """Format every node's storage with one new cluster id (3 nodes: the voters are
        listed in the properties; 1 node: ``--standalone``)."""
        assert self._java is not None and self._libs is not None
        self.cluster_id = _cluster_id()
        for node in self.nodes:
            self._write_config(node)
            cmd = [self._java, "-cp", f"{self._libs}/*", "kafka.tools.StorageTool", "format"]
            cmd += ["-t", self.cluster_id, "-c", str(node.config), *self.format_args]
            if len(self.nodes) == 1:
                cmd.append("--standalone")
            done = _run(cmd, self.work_dir)
            if done.returncode != 0:
                said = (done.stdout + done.stderr).strip()[-400:]
                raise KafkaSetupError(f"formatting node {node.node_id} failed: {said}")

    def _spawn(self, node: Node) -> None:
        assert self._java is not None and self._libs is not None
        if port_open(self.host, node.port):
            raise RuntimeError(f"cannot start Kafka node {node.node_id}: port {node.port} is taken")
        cmd = [
            self._java,
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.work_dir / 'log4j2.yaml'}",
            "-cp",
            f"{self._libs}/*",
            "kafka.Kafka",
            str(node.config),
        ]
        node.child.spawn(cmd)


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (what
    ``StorageTool random-uuid`` prints), without starting a JVM for it. Not one that starts
    with ``-``: the format command would read it as an option."""
    import base64

    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _run(cmd: list[str], cwd: Path) -> Any:
    import subprocess

    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
