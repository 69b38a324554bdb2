"""Resolve stage: the single writer of the identity graph.

``identity.events.v1`` has one partition, so this agent sees every event in one order and
every decision sees whole components. It publishes merges on ``profiles.merges.v1`` and routes
each event, and each hand-over of an absorbed profile, to ``profiles.events.v1`` keyed by
profile id. The decisions themselves are ``scv.domain.resolver.resolve``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import MutableMapping
from typing import Any

import orjson

from scv.domain.governance import load_rules
from scv.domain.model import NormalizedEvent, Resolution, ident_key
from scv.domain.resolver import ProfileNode, resolve
from scv.streams import metrics
from scv.streams.app import app, identity_events, merges_out, nodes, owners, profile_events
from scv.streams.app import settings as _settings
from scv.streams.dlq import send_to_dlq

log = logging.getLogger(__name__)
rules = load_rules(_settings.rules_path)


class TableStore:
    """``GraphStore`` over two Faust tables (RocksDB locally, changelogged to Kafka)."""

    def __init__(
        self, owner_table: MutableMapping[bytes, bytes], node_table: MutableMapping[bytes, bytes]
    ) -> None:
        self._owners = owner_table
        self._nodes = node_table

    def get_owner(self, key: str) -> str | None:
        value = self._owners.get(key.encode())
        return value.decode() if value is not None else None

    def set_owner(self, key: str, profile_id: str) -> None:
        self._owners[key.encode()] = profile_id.encode()

    def del_owner(self, key: str) -> None:
        self._owners.pop(key.encode(), None)

    def get_node(self, profile_id: str) -> ProfileNode | None:
        value = self._nodes.get(profile_id.encode())
        return ProfileNode.from_dict(orjson.loads(value)) if value is not None else None

    def put_node(self, node: ProfileNode) -> None:
        self._nodes[node.profile_id.encode()] = orjson.dumps(node.to_dict())

    def del_node(self, profile_id: str) -> None:
        self._nodes.pop(profile_id.encode(), None)


store = TableStore(owners, nodes)


def outgoing(event: NormalizedEvent, res: Resolution) -> list[tuple[Any, bytes, bytes]]:
    """What one decision publishes, in order: merges first, then the event itself.

    Merge hand-overs go to the absorbed profile's partition (its owner holds the state);
    the event goes to the survivor's.
    """
    out: list[tuple[Any, bytes, bytes]] = []
    for merge in res.merges:
        out.append((merges_out, merge.survivor.encode(), orjson.dumps(merge.to_dict())))
        handover = {
            "kind": "merge",
            "profile_id": merge.absorbed,
            "survivor": merge.survivor,
            "reason": merge.reason.to_dict(),
        }
        out.append((profile_events, merge.absorbed.encode(), orjson.dumps(handover)))
    if res.profile_id is not None:
        body = {
            "kind": "event",
            "profile_id": res.profile_id,
            "event": event.to_dict(),
            "accepted": [ident_key(i) for i in res.accepted],
            "dropped": [d.to_dict() for d in res.dropped],
        }
        out.append((profile_events, res.profile_id.encode(), orjson.dumps(body)))
    return out


@app.agent(identity_events, name="resolve")
async def resolve_agent(stream: Any) -> None:
    async for event in stream.events():
        msg = event.message
        metrics.EVENTS_IN.labels("resolve").inc()
        try:
            normalized = NormalizedEvent.from_dict(orjson.loads(msg.value))
        except Exception as exc:  # only scv writes this topic: a bad message is a bug
            await send_to_dlq(event, f"unreadable: {type(exc).__name__}: {exc}", "resolve")
            continue
        started = time.perf_counter()
        res = resolve(normalized, store, rules)
        metrics.RESOLVE_SECONDS.observe(time.perf_counter() - started)
        for merge in res.merges:
            metrics.MERGES.labels(merge.reason.rule).inc()
        for dropped in res.dropped:
            metrics.DROPPED.labels(dropped.reason.split(":")[0]).inc()
        if res.profile_id is None:
            metrics.UNRESOLVED.inc()
        for topic, key, value in outgoing(normalized, res):
            await topic.send(key=key, value=value)
