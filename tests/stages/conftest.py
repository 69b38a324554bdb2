"""Tier 2: the real agents of ``scv.streams`` under Faust's ``test_context()``, tables in the
``memory://`` store, no broker.

``scv.streams.app`` builds its ``faust.App`` at import from ``get_settings()`` (``SCV_*`` env,
``lru_cache``d). The ``stages`` fixture therefore sets the env, clears the cache, imports the
stages, and then restores the env and clears the cache again: other tests in the same pytest
process (unit tests build ``Settings()`` from the env) see exactly what they would without
this directory. Test modules here must not import ``scv.streams`` at module level (that would
happen at collection, before the env is set); they get the modules from ``stages``.

Async tests run on one session event loop (the app is a module-level singleton whose services
bind to a loop); ``pytest_pyfunc_call`` below runs ``async def`` tests on it, so no
pytest-asyncio is needed.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import socket
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from agentkit import Outbox, Sent
from faust.stores.memory import Store as MemoryStore

from scv.settings import get_settings

#: Whole-test limit; the agent tests take milliseconds each.
TEST_TIMEOUT_S = 15.0

_loop: asyncio.AbstractEventLoop | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def stages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The wired app and its stage modules, set up for ``test_context()`` as Faust's docs do."""
    global _loop
    env = {
        "SCV_STORE": "memory://",
        "SCV_DATA_DIR": str(tmp_path_factory.mktemp("faust-state")),
        # The worker web server is not started by test_context; a free port all the same.
        "SCV_WEB_PORT": str(_free_port()),
        "SCV_TOPIC_PREFIX": "",
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        get_settings.cache_clear()
        try:
            wiring = importlib.import_module("scv.streams.app")
            wiring.load_stages()
        finally:
            get_settings.cache_clear()  # the env is restored on leaving the block

    loop = asyncio.new_event_loop()
    _loop = loop
    app = wiring.app
    app.loop = loop
    app.finalize()
    app.conf.store = "memory://"
    app.flow_control.resume()
    tables = [wiring.owners, wiring.nodes, wiring.profile_table, wiring.carts_due]
    for table in tables:
        # Real Faust tables; a stale import with another store would make this a RocksDB test.
        assert isinstance(table.data, MemoryStore), table
    ns = SimpleNamespace(
        app=app,
        wiring=wiring,
        topics=wiring.topics,
        settings=wiring.settings,
        tables=tables,
        normalize=importlib.import_module("scv.streams.normalize"),
        resolve=importlib.import_module("scv.streams.resolve"),
        profiles=importlib.import_module("scv.streams.profiles"),
    )
    try:
        yield ns
    finally:
        _loop = None
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.fixture(autouse=True)
def _fresh_state(stages: SimpleNamespace) -> None:
    """Empty tables per test. Cleared on the store: ``Table.clear()`` would write changelog
    records, which Faust allows only inside stream iteration."""
    for table in stages.tables:
        table.data.clear()
    stages.profiles._ticked.clear()


@pytest.fixture
def sent(stages: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> Outbox:
    """Record every message the agents send, instead of producing to Kafka.

    The idiom of Faust's testing guide (mock the topic an agent sends to), applied to the
    ``send`` of each output topic object, keeping ``(topic, key, value, headers)`` in order.
    """
    w = stages.wiring
    outbox = Outbox()
    outputs = [
        w.identity_events,
        *w.dlq_topics.values(),
        w.profile_events,
        w.profiles_out,
        w.merges_out,
        w.actions_out,
    ]
    for topic in outputs:
        monkeypatch.setattr(topic, "send", outbox.recorder(topic.get_topic_name()))

    # The stages' own librdkafka output (scv.streams.output): recorded in the same order.
    def send(topic: Any, key: bytes | None, value: bytes | None) -> None:
        name = topic if isinstance(topic, str) else topic.get_topic_name()
        outbox.append(Sent(name, key, value, []))

    async def flush(timeout: float = 60.0) -> None:
        return None

    monkeypatch.setattr(w.output, "send", send)
    monkeypatch.setattr(w.output, "flush", flush)
    return outbox


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Any:
    """Run ``async def`` tests in this directory on the session loop of ``stages``."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    assert _loop is not None, "async agent tests need the `stages` fixture"
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    _loop.run_until_complete(asyncio.wait_for(pyfuncitem.obj(**kwargs), TEST_TIMEOUT_S))
    return True
