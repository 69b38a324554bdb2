"""Integration fixtures: a real worker on the session's tansu broker, shared per module.

Starting a worker costs a few seconds (Faust start-up, group join, table recovery), so one
worker serves every test of a module; each test uses identifiers of its own (``uid``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline import Pipeline

from scv.brokers import Broker, free_port
from scv.runner import WorkerProcess
from scv.settings import Settings
from scv.topics import create_topics

_modules = itertools.count(1)

#: A short cart window so the abandoned-cart path runs within a test.
CART_WINDOW_S = 3.0


@pytest.fixture(scope="module")
def pipeline(
    broker: Broker,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Pipeline]:
    """A worker for the module; a module's ``WORKER_SETTINGS`` dict overrides settings."""
    n = next(_modules)
    work: Path = tmp_path_factory.mktemp(f"pipeline{n}")
    settings = Settings(
        bootstrap_servers=broker.bootstrap,
        topic_prefix=f"it{n}-",
        app_id=f"scv-it-{n}",
        data_dir=work / "state",
        web_port=free_port(),
        session_timeout_s=2.0,
        cart_window_s=CART_WINDOW_S,
        cart_check_interval_s=0.5,
        **getattr(request.module, "WORKER_SETTINGS", {}),
    )
    create_topics(settings)
    worker = WorkerProcess(settings, work / "worker.log").start()
    try:
        worker.wait_ready(90)
        running = Pipeline(settings, worker)
        yield running
        running.close()
    finally:
        worker.stop()
