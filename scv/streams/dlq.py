"""Dead-letter routing shared by every stage.

A message a stage cannot process costs only itself: it goes to ``<input topic>.dlq`` with its
original key and bytes plus headers saying why and where it came from, and the agent goes on.
Raw topics get bad input from source systems; the internal topics
(``identity.events.v1``, ``profiles.events.v1``) only get bad messages from a bug or a
foreign producer, which is exactly when keeping the bytes matters.
"""

from __future__ import annotations

import logging
from typing import Any

from scv.streams import metrics
from scv.streams.app import dlq_topics

log = logging.getLogger(__name__)


def dlq_headers(reason: str, stage: str, topic: str, partition: int, offset: int) -> list[Any]:
    """Error headers on a dead-lettered message; values are bytes as Kafka headers are."""
    return [
        ("scv.error.reason", reason.encode()[:1000]),
        ("scv.error.stage", stage.encode()),
        ("scv.error.topic", topic.encode()),
        ("scv.error.partition", str(partition).encode()),
        ("scv.error.offset", str(offset).encode()),
    ]


async def send_to_dlq(event: Any, reason: str, stage: str) -> None:
    """Forward ``event``'s message to its topic's DLQ; logs ``topic[partition] offset``."""
    msg = event.message
    log.warning("%s[%s] offset %s -> dlq: %s", msg.topic, msg.partition, msg.offset, reason)
    metrics.DLQ.labels(msg.topic, reason.split(":")[0]).inc()
    await dlq_topics[msg.topic].send(
        key=msg.key,
        value=msg.value,
        headers=dlq_headers(reason, stage, msg.topic, msg.partition, msg.offset),
    )
