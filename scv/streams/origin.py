"""Where a message between stages came from, so the next stage can drop a repeat.

At least once means a crashed stage redoes what it had not committed, and sends again what
it had already sent. Every message a stage sends to another stateful stage
(``identity.events.v1``, ``profiles.events.v1``) therefore carries a header naming the input
it follows from: the input partition (its *stream*), the input offset, and its index among
the messages that input produced. From one stream, messages reach a partition in that
order (one producer, one request in flight), and a redo repeats a suffix of them; the
receiving stage keeps the last position it applied per stream, in its committed state
(``scv.streams.commit.Progress``), and skips anything at or below it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from scv.streams.dlq import Msg
from scv.streams.output import Headers, OnOffset, Sink

#: The header: ``<topic>/<partition>@<offset>.<index>`` of the input a message follows from.
ORIGIN = "scv.origin"

#: A decoded origin: (stream, input offset, index).
Origin = tuple[str, int, int]


def stream(topic: str, partition: int) -> str:
    """The name of an input partition (topic names cannot contain ``/`` or ``@``)."""
    return f"{topic}/{partition}"


def parse_stream(name: str) -> tuple[str, int]:
    topic, _, partition = name.rpartition("/")
    return topic, int(partition)


def decode(raw: bytes | str) -> Origin | None:
    text = raw.decode() if isinstance(raw, bytes) else raw
    name, _, position = text.rpartition("@")
    offset, _, index = position.partition(".")
    try:
        return name, int(offset), int(index)
    except ValueError:
        return None  # not ours: treated as a new message


def origin_of(msg: Msg) -> Origin | None:
    """The origin header of a consumed message, if it has one."""
    headers: Iterable[tuple[str, Any]] | None = getattr(msg, "headers", lambda: None)()
    for name, value in headers or ():
        if name == ORIGIN and value is not None:
            return decode(value)
    return None


class OriginSink:
    """A stage's sink: stamps what it sends to ``stamped`` topics with the current input.

    The stage calls :meth:`at` before handling each input message; messages made outside
    any input (due-cart ticks) are not stamped and are never taken for repeats.
    """

    def __init__(self, out: Sink, stamped: Iterable[str]) -> None:
        self.out = out
        self.stamped = frozenset(stamped)
        self._stream: str | None = None
        self._offset = 0
        self._index = 0
        #: the last input partition seen and its stream name (a batch comes from a few)
        self._last: tuple[str, int, str] = ("", -1, "")

    def at(self, msg: Msg | None) -> None:
        offset = msg.offset() if msg is not None else None
        if msg is None or offset is None or offset < 0:
            self._stream = None
            return
        topic, partition = msg.topic() or "", msg.partition() or 0
        last = self._last
        if last[1] != partition or last[0] != topic:
            last = self._last = (topic, partition, stream(topic, partition))
        self._stream = last[2]
        self._offset, self._index = offset, 0

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
        on_offset: OnOffset | None = None,
    ) -> None:
        if self._stream is not None and topic in self.stamped:
            stamp = f"{self._stream}@{self._offset}.{self._index}".encode()
            headers = [*(headers or []), (ORIGIN, stamp)]
            self._index += 1
        self.out.send(topic, key, value, headers, partition, on_offset)
