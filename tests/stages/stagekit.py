"""Helpers for tier-2 stage tests: feed the real stages test messages and record what they send.

In the style of bytewax's testing sources and sinks: :class:`Msg` stands in for a consumed
``confluent_kafka.Message`` and :class:`Outbox` for the producer, so a test drives
``Pipeline.process`` exactly as the worker loop does, without a broker.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from scv.streams.dlq import LocalMsg
from scv.streams.worker import Pipeline


def load_examples() -> Any:
    """``tests/unit/examples.py`` (hand-written valid raw events), importable from any cwd."""
    path = Path(__file__).resolve().parents[1] / "unit" / "examples.py"
    spec = importlib.util.spec_from_file_location("scv_unit_examples", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def Msg(
    topic_: str,
    value_: bytes | None,
    key_: bytes | None = None,
    partition_: int = 0,
    offset_: int = 0,
) -> LocalMsg:
    """A consumed message, with the accessor methods of ``confluent_kafka.Message``."""
    return LocalMsg(topic_, value_, key_, partition_, offset_)


@dataclass(frozen=True)
class Sent:
    """One message a stage handed to the output."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int | None = None

    def json(self) -> Any:
        assert self.value is not None, f"tombstone on {self.topic}"
        return orjson.loads(self.value)

    @property
    def header_map(self) -> dict[str, bytes]:
        return dict(self.headers)


class Outbox(list[Sent]):
    """A sink for the stages: every message sent, in send order across topics."""

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        on_offset: Any = None,
    ) -> None:
        self.append(Sent(topic, key, value, list(headers or []), partition))
        if on_offset is not None:
            on_offset(len(self) - 1)

    def to(self, topic_name: str) -> list[Sent]:
        return [m for m in self if m.topic == topic_name]

    @property
    def topics(self) -> list[str]:
        return [m.topic for m in self]


def feed(
    pipeline: Pipeline, topic: str, *values: bytes, key: bytes | None = None, partition: int = 0
) -> None:
    """One batch of ``values`` from ``topic`` through the pipeline (each its own offset)."""
    batch: Sequence[LocalMsg] = [
        Msg(topic, value, key, partition, offset) for offset, value in enumerate(values)
    ]
    pipeline.process(batch)


def report(result: dict[str, Any], path: Path | None) -> None:
    """A long run's result (``make fuzz``, ``make households``): JSON on stdout, and in
    ``path`` if given."""
    text = json.dumps(result, indent=2)
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
