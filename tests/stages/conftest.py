"""Tier 2: the real stages of ``scv.streams`` wired as the worker wires them, tables in
memory, no broker.

``pipeline`` is a :class:`scv.streams.worker.Pipeline` over an :class:`Outbox` with every
table partition open; ``feed`` hands it one batch the way the worker loop does (stage
work, then the table flush). ``make_pipeline(**settings)`` builds one with other settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from stagekit import Outbox

from scv.settings import Settings
from scv.streams.access import WRITE, worker_needs
from scv.streams.worker import Pipeline
from scv.topics import Topics

MakePipeline = Callable[..., Pipeline]


@pytest.fixture
def sent() -> Outbox:
    return Outbox()


@pytest.fixture
def make_pipeline(tmp_path: Path, sent: Outbox) -> Iterator[MakePipeline]:
    """Builds pipelines; afterwards checks that they wrote only to topics the worker's ACL
    check asks WRITE on (``scv.streams.access``), so that a new output cannot be missing
    from it."""
    writable: set[str] = set()

    def make(**overrides: Any) -> Pipeline:
        settings = Settings(
            store="memory://", topic_prefix="", data_dir=tmp_path / "state", **overrides
        )
        pipeline = Pipeline(settings, sent, changelogs=False)
        for topic in pipeline.tables_of:
            for p in range(pipeline.tables_of[topic][0].partitions):
                pipeline.open(topic, p)
        writable.update(t for t, ops in worker_needs(settings).topics.items() if WRITE in ops)
        return pipeline

    yield make
    unchecked = sorted(set(sent.topics) - writable)
    assert not unchecked, f"written, but not in scv.streams.access.worker_needs: {unchecked}"


@pytest.fixture
def pipeline(make_pipeline: MakePipeline) -> Pipeline:
    return make_pipeline()


@pytest.fixture
def topics(pipeline: Pipeline) -> Topics:
    return Topics(pipeline.settings)
