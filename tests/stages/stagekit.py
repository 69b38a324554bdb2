"""Helpers for tier-2 agent tests: feed an agent through Faust's ``test_context()`` and record
what it sends.

Nothing here imports ``scv.streams``: that module builds the Faust app from the environment at
import, so only the session fixture in ``conftest.py`` may import it (after setting the env).
"""

from __future__ import annotations

import asyncio
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from faust.types import TP, EventT

#: Longest wait for an agent to finish one message; a healthy one needs microseconds.
SETTLE_TIMEOUT_S = 5.0


def load_examples() -> Any:
    """``tests/unit/examples.py`` (hand-written valid raw events), importable from any cwd."""
    path = Path(__file__).resolve().parents[1] / "unit" / "examples.py"
    spec = importlib.util.spec_from_file_location("scv_unit_examples", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Sent:
    """One message an agent handed to ``Topic.send``."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    def json(self) -> Any:
        assert self.value is not None, f"tombstone on {self.topic}"
        return orjson.loads(self.value)

    @property
    def header_map(self) -> dict[str, bytes]:
        return dict(self.headers)


class Outbox(list[Sent]):
    """Every message sent on the patched topics, in send order across topics."""

    def recorder(self, topic_name: str) -> Any:
        """A stand-in for ``Topic.send`` (all our agents call it with keywords only)."""

        async def send(
            *,
            key: bytes | None = None,
            value: bytes | None = None,
            headers: Any = None,
            **_options: Any,
        ) -> None:
            self.append(Sent(topic_name, key, value, list(headers or [])))

        return send

    def to(self, topic_name: str) -> list[Sent]:
        return [m for m in self if m.topic == topic_name]

    @property
    def topics(self) -> list[str]:
        return [m.topic for m in self]


async def settle(agent: Any, event: EventT) -> EventT:
    """Wait until the agent has finished ``event``.

    ``AgentTestWrapper.put`` returns once the stream has *taken* the value (its recorder is a
    stream processor, which runs before the agent body), so with an agent body that awaits
    anything the caller could look too early. The stream acks an event only when the body
    asks for the next one, so an acked message means its processing is done.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT_S
    while not event.message.acked:
        if agent.crash_reason is not None:
            raise agent.crash_reason
        if loop.time() > deadline:
            raise TimeoutError(f"agent did not finish {event.message!r}")
        await asyncio.sleep(0)
    if agent.crash_reason is not None:
        raise agent.crash_reason
    return event


async def feed(agent: Any, value: bytes, *, key: bytes | None = None) -> EventT:
    """``agent.put`` (the message is named after the agent's single input topic) + settle."""
    return await settle(agent, await agent.put(value, key=key))


async def feed_from(
    agent: Any,
    topic: str,
    value: bytes,
    *,
    key: bytes | None = None,
    partition: int = 0,
) -> EventT:
    """Like :func:`feed`, but as if consumed from ``topic``.

    For agents subscribed to several topics: ``test_context`` cannot name the source topic of
    a put (it uses ``"<internal>"``), and the normalise agent decides the source from it.
    This is ``AgentTestWrapper.put`` with the message's topic set.
    """
    message = agent.to_message(key, value, partition=partition, offset=agent.sent_offset)
    message.topic = topic
    message.tp = TP(topic, partition)
    channel = agent.stream().channel
    event: EventT = await channel.decode(message)
    await channel.put(event)
    agent.sent_offset += 1
    return await settle(agent, event)
