"""Resolve stage: the single writer of the identity graph.

``identity.events.v1`` and ``identity.commands.v1`` have one partition each, so this stage
sees every event and command in one order and every decision sees whole components. It
publishes merges, splits, refusals and generic values on ``profiles.merges.v1`` and routes
each event, each hand-over of an absorbed profile and each split to ``profiles.events.v1``
keyed by profile id. The decisions themselves are ``scv.domain.resolver.resolve`` and
``scv.domain.commands.apply_command``; consent, objection, erasure and the suppression list
are ``scv.streams.privacy``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from time import perf_counter
from typing import Any

import orjson

from scv.domain.commands import (
    PRIVACY_COMMANDS,
    Command,
    CommandError,
    CommandResult,
    apply_command,
    parse_command,
)
from scv.domain.governance import load_rules
from scv.domain.graph import MappingStore
from scv.domain.matching.linker import Linker
from scv.domain.model import LinkReason, MergeEvent, NormalizedEvent, Resolution, Split, ident_key
from scv.domain.normalize import InvalidEvent, NormalizeConfig
from scv.domain.resolver import resolve
from scv.settings import Settings
from scv.streams import metrics
from scv.streams.dlq import Msg, failure_reason, send_to_dlq
from scv.streams.households import HOUSEHOLDS, household_messages
from scv.streams.origin import OriginSink
from scv.streams.output import Sink
from scv.streams.privacy import AUDIT, ResolverPrivacy
from scv.streams.state import Table
from scv.topics import Topics

log = logging.getLogger(__name__)

#: Where the resolver keeps its decision counter (no profile id starts with a NUL byte).
DECISION_KEY = b"\x00decision"


#: Where a decision's messages go: names of :class:`~scv.topics.Topics` properties.
MERGES, EVENTS, REVIEW = "merges", "profile_events", "review"

#: (topic, key, value) to send, in order; a refusal on an event with no profile has no key,
#: a household merged away a tombstone (no value).
Outgoing = tuple[str, bytes | None, bytes | None]


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
        (MERGES, merge.survivor.encode(), orjson.dumps(merge.to_dict())),
        (EVENTS, merge.absorbed.encode(), orjson.dumps(handover)),
    ]


def split_messages(split: Split, seq: int) -> list[Outgoing]:
    """A split: one ``split`` record per new part on ``profiles.merges.v1``, and the
    instruction to the profile owner, which rebuilds each part's state from its history."""
    key = split.profile_id.encode()
    out: list[Outgoing] = [(MERGES, key, orjson.dumps(record)) for record in split.events()]
    body = {"kind": "split", "seq": seq, **split.to_dict()}
    out.append((EVENTS, key, orjson.dumps(body)))
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
    target = (res.profile_id or "").encode() or None if res.dropped else None
    for dropped in res.dropped:
        if dropped.reason in ("blocked", "generic", "household", "split"):
            continue  # configuration or already announced; not a refused link
        refused = LinkReason(
            dropped.reason, [ident_key(dropped.identifier)], event.event_id, event.ts
        )
        body = _graph_event("refused", res.profile_id, dropped.owner, refused.to_dict())
        out.append((MERGES, target, body))
    for split in res.splits:
        if split.removed:
            why = split.reason.to_dict()
            generic = [k for k in split.removed if k not in split.households]
            for kind, keys in (("generic", generic), ("household", split.households)):
                if keys:
                    body = _graph_event(kind, split.profile_id, None, why, keys)
                    out.append((MERGES, split.profile_id.encode(), body))
        out += split_messages(split, seq)
    if res.profile_id is not None:
        anchor = res.anchor
        routed: dict[str, Any] = {
            "kind": "event",
            "profile_id": res.profile_id,
            "event": orjson.Fragment(raw) if raw is not None else event.to_dict(),
            # ``ident_key`` inlined: this runs once per event
            "accepted": [f"{kind}:{value}" for kind, value in res.accepted],
            "anchor": f"{anchor[0]}:{anchor[1]}" if anchor is not None else None,
            "dropped": [d.to_dict() for d in res.dropped] if res.dropped else [],
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
            out.append((REVIEW, res.profile_id.encode(), orjson.dumps(request)))
        out.append((EVENTS, res.profile_id.encode(), orjson.dumps(routed)))
    return out


def command_outgoing(result: CommandResult, seq: int = 0) -> list[Outgoing]:
    out: list[Outgoing] = []
    for merge in result.merges:
        out += merge_messages(merge, seq)
    for split in result.splits:
        out += split_messages(split, seq)
    return out


class ResolveStage:
    """Decides events in batches: the graph is written once per changed key per batch
    (``MappingStore.flush`` into the write-back tables), then the batch's messages are sent
    in decision order."""

    name = "resolve"

    def __init__(
        self, settings: Settings, out: Sink, owners: Table, nodes: Table, suppressed: Table
    ) -> None:
        self.owners, self.nodes = owners, nodes
        self.topics = Topics(settings)
        self.out = OriginSink(out, [self.topics.profile_events])
        self.inputs = [self.topics.identity_events, self.topics.commands]
        #: the commands topic's name (``Topics.commands`` builds it anew on every call)
        self._commands_topic = self.inputs[1]
        names = (MERGES, EVENTS, REVIEW, HOUSEHOLDS, AUDIT)
        self._names = {name: str(getattr(self.topics, name)) for name in names}
        self.privacy = ResolverPrivacy(settings, owners, nodes, suppressed)
        self.rules = load_rules(settings.rules_path)
        self.matcher: Linker | None = None
        if settings.matching:
            path = settings.matching_model_path
            self.matcher = Linker.load(path) if path else Linker.load()
        self.normalize_config = NormalizeConfig(default_region=settings.default_region)
        self._store: MappingStore | None = None
        self._in = metrics.EVENTS_IN.labels(self.name)
        self._observe = metrics.RESOLVE_SECONDS.observe
        self._commands_in = metrics.EVENTS_IN.labels("commands")
        #: the batch's decisions, counted into Prometheus once per label at its end
        self._merges: list[tuple[str]] = []
        self._dropped: list[tuple[str]] = []
        self._splits: list[tuple[str]] = []

    @property
    def store(self) -> MappingStore:
        """The graph over partition 0 of both tables (open once this worker owns it).

        Made anew whenever the partition is (re)assigned: the store may cache what it read.
        """
        if self._store is None:
            self._store = MappingStore(self.owners[0], self.nodes[0])
        return self._store

    def reset(self) -> None:
        """The partition moved: forget anything read from it."""
        self._store = None
        self.privacy.reset()

    def next_decision(self) -> int:
        """A number that grows with every merge or split the resolver decides.

        Profile owners compare them: a merge hand-over still in flight when a later split
        arrives must be rerouted; one decided after the split must not (see
        ``scv.domain.parts.reroute``). Kept in the graph table, so it survives fail-over.
        """
        nodes = self.nodes[0]
        seq = int(nodes.get(DECISION_KEY) or b"0") + 1
        nodes[DECISION_KEY] = str(seq).encode()
        return seq

    def process(self, batch: Sequence[Msg]) -> None:
        decided: list[tuple[Msg, Sequence[Outgoing]]] = []
        commands = 0
        at, commands_topic = self.out.at, self._commands_topic
        for msg in batch:
            at(msg)  # a dead letter goes out at once
            if msg.topic() == commands_topic:
                decided.append((msg, self._command(msg)))
                commands += 1
            else:
                decided.append((msg, self._decide(msg)))
        self.store.flush()
        self._count(len(batch) - commands, commands)
        names, send = self._names, self.out.send
        for msg, out in decided:
            at(msg)  # stamps what it sends on with the input it follows from
            for topic, key, value in out:
                send(names[topic], key, value)

    def _count(self, events: int, commands: int) -> None:
        """The batch's counters, one Prometheus increment per label value."""
        self._in.inc(events)
        if commands:
            self._commands_in.inc(commands)
        for counter, values in (
            (metrics.MERGES, self._merges),
            (metrics.DROPPED, self._dropped),
            (metrics.SPLITS, self._splits),
        ):
            if values:
                metrics.count_labels(counter, values)
                values.clear()
        if self._store is not None:
            store = self._store
            for table, lookups in (
                ("identity-nodes", store.node_lookups),
                ("identity-owners", store.owner_lookups),
            ):
                metrics.count_lookups(table, lookups.hits, lookups.misses)
                lookups.hits = lookups.misses = 0

    def _decide(self, msg: Msg) -> Sequence[Outgoing]:
        """One event: what to publish (bad input goes to its DLQ right away)."""
        value = msg.value() or b""
        try:
            normalized = NormalizedEvent.from_dict(orjson.loads(value))
        except Exception as exc:  # only scv writes this topic: a bad message is a bug
            send_to_dlq(self.out, msg, failure_reason("unreadable", exc), self.name)
            return []
        suppressed = self.privacy.screen_event(normalized)
        if suppressed is not None:  # names an erased person: never re-created
            return suppressed
        store = self._store if self._store is not None else self.store
        started = perf_counter()
        res = resolve(normalized, store, self.rules, self.matcher)
        self._observe(perf_counter() - started)
        if res.dropped:  # most events drop nothing, merge nothing and split nothing
            self._dropped += [(d.reason.split(":")[0],) for d in res.dropped]
        if res.profile_id is None:
            metrics.UNRESOLVED.inc()
        seq, idents = 0, None
        if res.merges or res.splits:
            self._merges += [(merge.reason.rule,) for merge in res.merges]
            self._splits += [(split.reason.rule,) for split in res.splits]
            seq = self.next_decision()
            node = store.get_node(res.profile_id) if res.profile_id else None
            idents = node.keys() if node is not None else None
        out = outgoing(normalized, res, seq, idents, value)
        if res.household_change is not None or res.merges or res.splits:
            moved = [split.parts for split in res.splits]
            if res.merges and res.profile_id:
                moved.append({res.profile_id: []})
            out += household_messages(res.household_change, moved, store, seq)
        return out

    def _command(self, msg: Msg) -> Sequence[Outgoing]:
        """A steward's command: carried out, or dead-lettered with the reason."""
        try:
            command = parse_command(msg.value() or b"", self.normalize_config)
        except InvalidEvent as exc:
            send_to_dlq(self.out, msg, exc.reason, self.name)
            return []
        suppressed = self.privacy.screen_command(command)
        if suppressed is not None:  # names an erased person: dropped, not dead-lettered
            return suppressed
        if command.type in PRIVACY_COMMANDS:
            return self._privacy_command(msg, command)
        result = apply_command(command, self.store, self.rules)
        if result.error is not None:
            send_to_dlq(self.out, msg, f"command: {result.error}", self.name)
            return []
        log.info(  # %r: the id is the sender's text, and must not forge log lines
            "command %r (%s): %d split(s)", command.command_id, command.type, len(result.splits)
        )
        self._splits += [(split.reason.rule,) for split in result.splits]
        seq = self.next_decision() if result.splits or result.merges else 0
        return command_outgoing(result, seq)

    def _privacy_command(self, msg: Msg, command: Command) -> Sequence[Outgoing]:
        try:
            return self.privacy.command(command, self.store, self.rules)
        except CommandError as exc:
            send_to_dlq(self.out, msg, f"command: {exc}", self.name)
            return []
