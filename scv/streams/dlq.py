"""Dead-letter routing shared by every stage.

A message a stage cannot process costs only itself: it goes to ``<input topic>.dlq`` with its
original key and bytes plus headers saying why and where it came from, and the stage goes on.
Raw topics get bad input from source systems; the internal topics
(``identity.events.v1``, ``profiles.events.v1``) only get bad messages from a bug or a
foreign producer, which is exactly when keeping the bytes matters.
"""

from __future__ import annotations

import logging
import traceback
from typing import Protocol

from scv.streams import metrics
from scv.streams.output import Headers, Sink
from scv.topics import Topics

log = logging.getLogger(__name__)


class Msg(Protocol):
    """What the stages read of a consumed message (``confluent_kafka.Message`` has it)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...


class LocalMsg:
    """A message made in process, with the accessors of a consumed one: due-cart ticks,
    benchmarks and tests feed the stages with it."""

    __slots__ = ("_key", "_offset", "_partition", "_topic", "_value")

    def __init__(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        partition: int = 0,
        offset: int = -1,
    ) -> None:
        self._topic, self._value, self._key = topic, value, key
        self._partition, self._offset = partition, offset

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value


def dlq_headers(reason: str, stage: str, topic: str, partition: int, offset: int) -> Headers:
    """Error headers on a dead-lettered message; values are bytes as Kafka headers are."""
    return [
        ("scv.error.reason", reason.encode()[:1000]),
        ("scv.error.stage", stage.encode()),
        ("scv.error.topic", topic.encode()),
        ("scv.error.partition", str(partition).encode()),
        ("scv.error.offset", str(offset).encode()),
    ]


def send_to_dlq(out: Sink, msg: Msg, reason: str, stage: str) -> None:
    """Forward ``msg`` to its topic's DLQ; logs ``topic[partition] offset``."""
    topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
    log.warning("%s[%s] offset %s -> dlq: %s", topic, partition, offset, reason)
    metrics.DLQ.labels(topic, metrics.reason_class(reason)).inc()
    headers = dlq_headers(reason, stage, topic, partition, offset)
    out.send(Topics.dlq(topic), msg.key(), msg.value(), headers=headers)


def failure_reason(prefix: str, exc: BaseException) -> str:
    """``prefix: ExceptionType`` for a message a stage failed on.

    Never the exception's message: messages quote the data they choke on (``could not
    convert string to float: 'jane@…'``, ``unknown message kind '…'``), and reasons end up
    in DLQ headers and logs.
    """
    return f"{prefix}: {type(exc).__name__}"


def log_failure(logger: logging.Logger, msg: Msg, what: str, exc: BaseException) -> None:
    """An ERROR line saying where a stage failed, with the traceback's frames (code, for the
    bug report) but not the exception's message (data, see :func:`failure_reason`)."""
    logger.error(
        "%s[%s] offset %s: %s failed with %s\n%s",
        msg.topic(),
        msg.partition(),
        msg.offset(),
        what,
        type(exc).__name__,
        "".join(traceback.format_tb(exc.__traceback__)).rstrip(),
    )
