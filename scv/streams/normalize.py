"""Normalise stage: raw source events → ``identity.events.v1``, bad input → ``<raw>.dlq``.

Partitioned like the raw topics, so it scales with workers. A bad event costs only itself:
it is forwarded with its original key and bytes plus headers saying why, and the stage goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import orjson

from scv.domain.normalize import InvalidEvent, NormalizeConfig, normalize
from scv.settings import Settings
from scv.streams import metrics
from scv.streams.dlq import Msg, failure_reason, log_failure, send_to_dlq
from scv.streams.origin import OriginSink
from scv.streams.output import Sink
from scv.topics import Topics

log = logging.getLogger(__name__)


class NormalizeStage:
    name = "normalize"

    def __init__(self, settings: Settings, out: Sink) -> None:
        self.topics = Topics(settings)
        self.out = OriginSink(out, [self.topics.identity_events])
        self.inputs = self.topics.raw_topics
        self._sources = {topic: self.topics.source_of(topic) for topic in self.inputs}
        self._config = NormalizeConfig(default_region=settings.default_region)
        self._target = self.topics.identity_events
        self._in = metrics.EVENTS_IN.labels(self.name)

    def process(self, batch: Sequence[Msg]) -> None:
        for msg in batch:
            self.out.at(msg)
            try:
                normalized = normalize(
                    self._sources[msg.topic() or ""], msg.value() or b"", self._config
                )
            except InvalidEvent as exc:
                send_to_dlq(self.out, msg, exc.reason, self.name)
                continue
            except Exception as exc:  # a bug must not stop the stream; the event is kept
                log_failure(log, msg, "normaliser", exc)
                send_to_dlq(self.out, msg, failure_reason("internal", exc), self.name)
                continue
            value = orjson.dumps(normalized.to_dict())
            self.out.send(self._target, normalized.event_id.encode(), value)
        self._in.inc(len(batch))
