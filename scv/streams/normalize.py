"""Normalise stage: raw source events → ``identity.events.v1``, bad input → ``<raw>.dlq``.

Partitioned like the raw topics, so it scales with workers. A bad event costs only itself:
it is forwarded with its original key and bytes plus headers saying why, and the agent goes on.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from scv.domain.normalize import InvalidEvent, NormalizeConfig, normalize
from scv.streams import metrics
from scv.streams.app import app, identity_events, output, raw_stream_topic, settings, topics
from scv.streams.dlq import send_to_dlq

log = logging.getLogger(__name__)
_config = NormalizeConfig(default_region=settings.default_region)
_IN = metrics.EVENTS_IN.labels("normalize")
_OUT = metrics.EVENTS_OUT.labels("normalize", identity_events.get_topic_name())


@app.agent(raw_stream_topic, name="normalize")
async def normalize_agent(stream: Any) -> None:
    async for batch in stream.take_events(settings.batch_max, within=settings.batch_within_s):
        for event in batch:
            await _normalize(event)
        await output.flush()


async def _normalize(event: Any) -> None:
    msg = event.message
    _IN.inc()
    source = topics.source_of(msg.topic)
    try:
        normalized = normalize(source, msg.value or b"", _config)
    except InvalidEvent as exc:
        await send_to_dlq(event, exc.reason, "normalize")
        return
    except Exception as exc:  # a bug must not stop the stream; the event is kept
        log.exception("%s[%s] offset %s: normaliser failed", msg.topic, msg.partition, msg.offset)
        await send_to_dlq(event, f"internal: {type(exc).__name__}", "normalize")
        return
    output.send(identity_events, normalized.event_id.encode(), orjson.dumps(normalized.to_dict()))
    _OUT.inc()
