"""Resolve stage: the single writer of the identity graph.

``identity.events.v1`` and ``identity.commands.v1`` have one partition each, so this agent
sees every event and command in one order and every decision sees whole components. It
publishes merges, splits, refusals and generic values on ``profiles.merges.v1`` and routes
each event, each hand-over of an absorbed profile and each split to ``profiles.events.v1``
keyed by profile id. The decisions themselves are ``scv.domain.resolver.resolve`` and
``scv.domain.commands.apply_command``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from prometheus_client import REGISTRY

from scv.domain.commands import CommandResult, apply_command, parse_command
from scv.domain.governance import load_rules
from scv.domain.graph import MappingStore
from scv.domain.matching.linker import Linker
from scv.domain.model import LinkReason, MergeEvent, NormalizedEvent, Resolution, Split, ident_key
from scv.domain.normalize import InvalidEvent, NormalizeConfig
from scv.domain.resolver import resolve
from scv.streams import metrics
from scv.streams.app import (
    app,
    commands,
    merges_out,
    nodes,
    output,
    owners,
    profile_events,
    resolver_input,
    review_out,
    set_current_event,
)
from scv.streams.app import settings as _settings
from scv.streams.dlq import send_to_dlq

log = logging.getLogger(__name__)
rules = load_rules(_settings.rules_path)
matcher = (
    (Linker.load(_settings.matching_model_path) if _settings.matching_model_path else Linker.load())
    if _settings.matching
    else None
)
if matcher is not None:
    REGISTRY.register(metrics.MatcherCollector(matcher))
normalize_config = NormalizeConfig(default_region=_settings.default_region)


store = MappingStore(owners, nodes)
#: Where the resolver keeps its decision counter (no profile id starts with a NUL byte).
DECISION_KEY = b"\x00decision"


#: (topic, key, value) to send, in order; a refusal on an event with no profile has no key.
Outgoing = tuple[Any, bytes | None, bytes]


def _graph_event(
    kind: str,
    survivor: str | None,
    absorbed: str | None,
    reason: dict[str, Any],
    identifiers: list[str] | None = None,
) -> bytes:
    body: dict[str, Any] = {"kind": kind, "survivor": survivor, "absorbed": absorbed}
    if identifiers is not None:
        body["identifiers"] = identifiers
    return orjson.dumps(body | {"reason": reason})


def next_decision() -> int:
    """A number that grows with every merge or split the resolver decides.

    Profile owners compare them: a merge hand-over still in flight when a later split
    arrives must be rerouted; one decided after the split must not (see
    ``scv.domain.parts.reroute``). Kept in the graph table, so it survives fail-over.
    """
    seq = int(nodes.get(DECISION_KEY) or b"0") + 1
    nodes[DECISION_KEY] = str(seq).encode()
    return seq


def merge_messages(merge: MergeEvent, seq: int) -> list[Outgoing]:
    """A merge: the record on ``profiles.merges.v1``, and the hand-over instruction to the
    absorbed profile's owner (it forwards the state to the survivor's owner)."""
    handover = {
        "kind": "merge",
        "profile_id": merge.absorbed,
        "survivor": merge.survivor,
        "reason": merge.reason.to_dict(),
        "seq": seq,
    }
    return [
        (merges_out, merge.survivor.encode(), orjson.dumps(merge.to_dict())),
        (profile_events, merge.absorbed.encode(), orjson.dumps(handover)),
    ]


def split_messages(split: Split, seq: int) -> list[Outgoing]:
    """A split: one ``split`` record per new part on ``profiles.merges.v1``, and the
    instruction to the profile owner, which rebuilds each part's state from its history."""
    key = split.profile_id.encode()
    out: list[Outgoing] = [(merges_out, key, orjson.dumps(record)) for record in split.events()]
    body = {"kind": "split", "seq": seq, **split.to_dict()}
    out.append((profile_events, key, orjson.dumps(body)))
    return out


def outgoing(
    event: NormalizedEvent,
    res: Resolution,
    seq: int = 0,
    identifiers: list[str] | None = None,
    raw: bytes | None = None,
) -> list[Outgoing]:
    """What one decision publishes, in order: merges, refusals, generic values and splits,
    then the event itself.

    Merge hand-overs go to the absorbed profile's partition (its owner holds the state);
    the event goes to the (post-split) profile that owns its anchor. ``raw`` is the event's
    ``identity.events.v1`` value, which ``event`` was decoded from: it is embedded as is
    instead of encoding the event again (the normalise stage wrote exactly
    ``orjson.dumps(event.to_dict())``, so the bytes are the same).
    """
    out: list[Outgoing] = []
    for merge in res.merges:
        out += merge_messages(merge, seq)
    target = (res.profile_id or "").encode() or None
    for dropped in res.dropped:
        if dropped.reason in ("blocked", "generic", "split"):
            continue  # configuration or already announced; not a refused link
        refused = LinkReason(
            dropped.reason, [ident_key(dropped.identifier)], event.event_id, event.ts
        )
        body = _graph_event("refused", res.profile_id, dropped.owner, refused.to_dict())
        out.append((merges_out, target, body))
    for split in res.splits:
        if split.removed:
            why = split.reason.to_dict()
            generic = _graph_event("generic", split.profile_id, None, why, split.removed)
            out.append((merges_out, split.profile_id.encode(), generic))
        out += split_messages(split, seq)
    if res.profile_id is not None:
        routed: dict[str, Any] = {
            "kind": "event",
            "profile_id": res.profile_id,
            "event": orjson.Fragment(raw) if raw is not None else event.to_dict(),
            "accepted": [ident_key(i) for i in res.accepted],
            "anchor": ident_key(res.anchor) if res.anchor is not None else None,
            "dropped": [d.to_dict() for d in res.dropped],
        }
        if identifiers is not None:  # after a merge or split: the profile's whole list
            routed |= {"seq": seq, "identifiers": identifiers}
        if res.review is not None:  # a possible match: a person decides (command "link")
            request = {
                "event_id": event.event_id,
                "ts": event.ts,
                "profile_id": res.profile_id,
                "identifiers": routed["accepted"],
                **res.review,
            }
            out.append((review_out, res.profile_id.encode(), orjson.dumps(request)))
        out.append((profile_events, res.profile_id.encode(), orjson.dumps(routed)))
    return out


def command_outgoing(result: CommandResult, seq: int = 0) -> list[Outgoing]:
    out: list[Outgoing] = []
    for merge in result.merges:
        out += merge_messages(merge, seq)
    for split in result.splits:
        out += split_messages(split, seq)
    return out


@app.agent(resolver_input, name="resolve")
async def resolve_agent(stream: Any) -> None:
    """Decide events in batches: the graph is written once per changed key per batch
    (``MappingStore.flush``), then the batch's messages are sent in decision order."""
    async for batch in stream.take_events(_settings.batch_max, within=_settings.batch_within_s):
        out: list[Outgoing] = []
        for event in batch:
            set_current_event(event)
            out += await _decide(event)
        store.flush()
        for topic, key, value in out:
            output.send(topic, key, value)
        await output.flush()


async def _decide(event: Any) -> list[Outgoing]:
    """One event or command: what to publish (bad input goes to its DLQ right away)."""
    msg = event.message
    if msg.topic == commands.get_topic_name():
        return await _command(event)
    metrics.EVENTS_IN.labels("resolve").inc()
    try:
        normalized = NormalizedEvent.from_dict(orjson.loads(msg.value))
    except Exception as exc:  # only scv writes this topic: a bad message is a bug
        await send_to_dlq(event, f"unreadable: {type(exc).__name__}: {exc}", "resolve")
        return []
    started = time.perf_counter()
    res = resolve(normalized, store, rules, matcher)
    metrics.RESOLVE_SECONDS.observe(time.perf_counter() - started)
    for merge in res.merges:
        metrics.MERGES.labels(merge.reason.rule).inc()
    for dropped in res.dropped:
        metrics.DROPPED.labels(dropped.reason.split(":")[0]).inc()
    for split in res.splits:
        metrics.SPLITS.labels(split.reason.rule).inc()
    if res.profile_id is None:
        metrics.UNRESOLVED.inc()
    seq, idents = 0, None
    if res.merges or res.splits:
        seq = next_decision()
        node = store.get_node(res.profile_id) if res.profile_id else None
        idents = node.keys() if node is not None else None
    return outgoing(normalized, res, seq, idents, msg.value)


async def _command(event: Any) -> list[Outgoing]:
    """A steward's command: carried out, or dead-lettered with the reason."""
    metrics.EVENTS_IN.labels("commands").inc()
    try:
        command = parse_command(event.message.value or b"", normalize_config)
    except InvalidEvent as exc:
        await send_to_dlq(event, exc.reason, "resolve")
        return []
    result = apply_command(command, store, rules)
    if result.error is not None:
        await send_to_dlq(event, f"command: {result.error}", "resolve")
        return []
    log.info("command %s (%s): %d split(s)", command.command_id, command.type, len(result.splits))
    for split in result.splits:
        metrics.SPLITS.labels(split.reason.rule).inc()
    seq = next_decision() if result.splits or result.merges else 0
    return command_outgoing(result, seq)
