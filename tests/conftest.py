"""Shared fixtures.

``broker`` is session-scoped and lazy: pytest only builds it when a test (directly or via
``settings``) asks for it, so unit tests never start tansu. Each test that uses ``settings``
gets its own topic prefix and app id, so tests share one broker without seeing each
other's topics, offsets or consumer groups.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from scv.brokers import Broker, local_broker
from scv.settings import Settings

_counter = itertools.count(1)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker on free ports for the whole test session: tansu (in memory), or with
    ``SCV_BROKER=kafka`` (``make test-kafka``) a one-node Apache Kafka with data on disk."""
    settings = Settings()
    work: Path = tmp_path_factory.mktemp(settings.broker)
    running = local_broker(settings, work).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def settings(broker: Broker, tmp_path: Path) -> Settings:
    """Settings pointing at the test broker, isolated per test.

    ``session_timeout_s=2`` because tansu delays a group join by about half the session
    timeout; the default would cost seconds per consumer in every test.
    """
    n = next(_counter)
    return Settings(
        bootstrap_servers=broker.bootstrap,
        topic_prefix=f"t{n}-",
        app_id=f"scv-test-{n}",
        data_dir=tmp_path / "state",
        session_timeout_s=2.0,
    )


@pytest.fixture(scope="session")
def kafka(broker: Broker) -> Broker:
    """The session broker, which tests marked ``kafka`` need to be Apache Kafka
    (``make test-kafka`` starts it; ``make test`` leaves those tests out)."""
    if broker.kind != "kafka":
        pytest.fail("this test needs Apache Kafka: run it with SCV_BROKER=kafka (make test-kafka)")
    return broker
