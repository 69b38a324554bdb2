"""A broker process the project starts itself: in its own process group, logging to a file,
stopped in order, and never left behind.

Both brokers scv runs locally (tansu, and the nodes of an Apache Kafka cluster) are child
processes. Each leads its own session, so a Ctrl-C in the terminal reaches the parent first
(which then stops the brokers in order) and ``stop()`` can signal the whole group (a JVM's
helper threads or a wrapper script included). An ``atexit`` hook kills any child still
running when the interpreter exits, so a crashed test session leaves no orphan behind.
Output goes to a file: a pipe that nobody reads would eventually block the broker.
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
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

log = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

_running: set[ChildProcess] = set()
_running_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that is free right now.

    The port is released before it is returned, so another process can take it before the
    broker binds it; the brokers' ``start`` retries with a new port in that case.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def _stop_all_at_exit() -> None:
    """Safety net: stop every child this interpreter started and did not stop."""
    with _running_lock:
        children = list(_running)
    for child in children:
        with contextlib.suppress(Exception):
            child.stop(timeout=2.0)


atexit.register(_stop_all_at_exit)


class ChildProcess:
    """One command run in its own session with its output appended to ``log_path``."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def spawn(self, cmd: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
        with _running_lock:
            _running.add(self)

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the child's process group (SIGSTOP/SIGCONT/SIGKILL for faults)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            # The child leads its own session, so its pgid is its pid.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the group, SIGKILL after ``timeout``. Idempotent; always reaps the
        child, so no zombie is left behind."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            self.signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            self.signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s (pid %s) ignored SIGTERM for %.1fs; killing", self.name, proc.pid, timeout
                )
                self.signal(signal.SIGKILL)
                proc.wait()
        # No group kill after the child is reaped: its pid (= pgid) could be reused by then.
        self.reap()

    def kill(self) -> None:
        """SIGKILL now (a crash, for fault tests) and reap."""
        self.signal(signal.SIGKILL)
        self.reap()

    def reap(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self.signal(signal.SIGKILL)
            proc.wait()
        self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        with _running_lock:
            _running.discard(self)

    def log_tail(self, lines: int = 30) -> str:
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                self._log_file.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(_ANSI.sub("", text).splitlines()[-lines:])


class StartStop(ABC):
    """``with broker:`` starts it and stops it (both brokers are used this way)."""

    @abstractmethod
    def start(self, timeout: float = 120.0) -> Any: ...

    @abstractmethod
    def stop(self, timeout: float = 30.0) -> None: ...

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
