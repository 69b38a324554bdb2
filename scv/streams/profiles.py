"""Profile and action stage, partitioned by profile id.

Consumes ``profiles.events.v1`` (events, merge hand-overs, splits and adoptions), keeps each
profile's state in a table partition, publishes snapshots on ``profiles.v1`` and actions on
``actions.v1``. Due carts are checked by the same loop between batches (:meth:`check_due`),
so every state change of a partition happens in one thread, in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson

from scv.domain.model import Action, NormalizedEvent, parse_ident
from scv.domain.parts import (
    Adoption,
    adopt,
    file_event,
    identifiers_by_type,
    reroute,
    split_state,
)
from scv.domain.profile import ProfileState, absorb, new_state, next_due, snapshot
from scv.domain.triggers import TriggerConfig, due, on_event, pending_churn
from scv.settings import Settings
from scv.streams import metrics
from scv.streams.dlq import Msg, send_to_dlq
from scv.streams.output import Sink
from scv.streams.state import Table
from scv.topics import Topics

log = logging.getLogger(__name__)

#: A profile merged away keeps a forwarding marker so late hand-overs find the survivor.
MOVED = "moved_to"


class _Writes:
    """One batch's table writes and snapshots, held until :meth:`flush`: a profile touched by
    ten messages of the batch costs one table write (one changelog message), one due-cart
    entry and one ``profiles.v1`` snapshot instead of ten. States are kept serialised, so a
    message whose step fails leaves nothing half-applied behind."""

    def __init__(self, table: Table, carts_due: Table) -> None:
        self._table, self._due = table, carts_due
        self.table: dict[bytes, bytes | None] = {}  # None: delete
        self.due: dict[bytes, bytes | None] = {}
        self.snapshots: dict[bytes, bytes | None] = {}  # None: tombstone
        self.partitions: dict[bytes, int] = {}

    def load(self, key: bytes, partition: int) -> dict[str, Any] | None:
        raw = self.table[key] if key in self.table else self._table[partition].get(key)
        return orjson.loads(raw) if raw is not None else None

    def put(
        self,
        key: bytes,
        partition: int,
        value: bytes | None,
        due: bytes | None,
        snap: bytes | None,
    ) -> None:
        self.table[key], self.due[key], self.snapshots[key] = value, due, snap
        self.partitions[key] = partition

    def flush(self, out: Sink, profiles_topic: str) -> None:
        for key, value in self.table.items():
            p = self.partitions[key]
            table, carts = self._table[p], self._due[p]
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
            due = self.due[key]
            if due is None:
                carts.pop(key, None)
            else:
                carts[key] = due
        for key, snap in self.snapshots.items():
            out.send(profiles_topic, key, snap)


class _Tick:
    """A due-cart check as a message of the profile's partition (for logs and the DLQ)."""

    def __init__(self, key: bytes, partition: int, topic: str) -> None:
        self._key, self._partition, self._topic = key, partition, topic
        self._value = orjson.dumps({"kind": "tick", "profile_id": key.decode()})

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return -1

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value


class ProfilesStage:
    """Profiles in batches: messages are applied in order; table writes and snapshots are
    made once per profile per batch (a snapshot may trail an action by one batch)."""

    name = "profiles"

    def __init__(self, settings: Settings, out: Sink, table: Table, carts_due: Table) -> None:
        self.out = out
        self.table, self.carts_due = table, carts_due
        self.topics = Topics(settings)
        self.inputs = [self.topics.profile_events]
        self.trigger_config = TriggerConfig(cooldown_s=settings.action_cooldown_s)
        self.cart_window_s = settings.cart_window_s
        self._events = self.topics.profile_events
        self._profiles = self.topics.profiles
        self._actions = self.topics.actions
        self._in = metrics.EVENTS_IN.labels(self.name)

    def process(self, batch: Sequence[Msg], now: float | None = None) -> None:
        writes = _Writes(self.table, self.carts_due)
        now = time.time() if now is None else now
        for msg in batch:
            self._apply(msg, writes, now)
        self._in.inc(len(batch))
        writes.flush(self.out, self._profiles)

    def check_due(self, now: float | None = None) -> int:
        """Apply a tick to every local profile whose cart is past its window; how many."""
        now = time.time() if now is None else now
        ticks = [
            _Tick(key, p, self._events)
            for p, part in self.carts_due.open_partitions.items()
            for key, raw in part.items()
            if float(raw) <= now
        ]
        if ticks:
            self.process(ticks, now)
        return len(ticks)

    # --- one message ---------------------------------------------------------------------
    def _forward(self, msg: dict[str, Any], survivor: str) -> None:
        """Pass a message for a merged-away profile on to its survivor.

        An event's identifier list describes the merged-away profile, not the survivor:
        dropped.
        """
        body = msg | {"profile_id": survivor}
        if msg.get("kind") == "event":
            body.pop("identifiers", None)
            body.pop("seq", None)
        self.out.send(self._events, survivor.encode(), orjson.dumps(body))

    def _adopt(self, adoptions: list[Adoption]) -> None:
        for adoption in adoptions:
            key = adoption.profile_id.encode()
            self.out.send(self._events, key, orjson.dumps(adoption.to_dict()))

    def _step(
        self, state: ProfileState | None, pid: str, msg: dict[str, Any], now: float
    ) -> tuple[ProfileState | None, list[Action]]:
        kind = msg["kind"]
        config = self.trigger_config
        if kind == "event":
            event = NormalizedEvent.from_dict(msg["event"])
            state = state or new_state(pid, event.ts)
            accepted = [parse_ident(k) for k in msg.get("accepted", [])]
            anchor = parse_ident(msg["anchor"]) if msg.get("anchor") else None
            file_event(state, anchor, event, accepted, now, self.cart_window_s)
            seq = int(msg.get("seq") or 0)
            if "identifiers" in msg and seq >= state.ids_seq:  # the resolver's list wins
                state.identifiers = identifiers_by_type(msg["identifiers"])
                state.ids_seq = seq
            return state, on_event(state, event, now, config)
        if kind == "absorb":
            other = ProfileState.from_dict(msg["state"], copy=False)  # msg was just parsed
            if state is not None:
                # this profile may have been split while the hand-over was in flight
                other, forwards = reroute(state, other, int(msg.get("seq") or 0))
                self._adopt(forwards)
            state = state or new_state(pid, other.created_ts)
            kept_ids, kept_seq = state.identifiers, state.ids_seq
            absorb(state, other)
            if int(msg.get("seq") or 0) <= kept_seq:  # the list already counts this merge
                state.identifiers = kept_ids
            # A merge can bring a cart past its window, or a cancellation and a later visit,
            # together.
            return state, due(state, now, config) + pending_churn(state, now, config)
        if kind == "adopt":
            state, forwards = adopt(state, Adoption.from_dict(msg))
            self._adopt(forwards)
            return state, due(state, now, config) + pending_churn(state, now, config)
        if kind == "split":
            if state is None:
                return None, []
            # The kept part's state (None if nothing is left); every other part gets its
            # partials through an ``adopt`` message.
            kept, adoptions = split_state(
                state, msg["parts"], msg.get("removed") or [], int(msg.get("seq") or 0)
            )
            self._adopt(adoptions)
            return kept, []
        if kind == "tick" and state is not None:
            return state, due(state, now, config)
        raise ValueError(f"unknown message kind {kind!r}")

    def _apply(self, meta: Msg, writes: _Writes, now: float) -> None:
        partition = meta.partition() or 0
        try:
            msg = orjson.loads(meta.value() or b"")
            pid = msg["profile_id"]
            key = pid.encode()
            stored = writes.load(key, partition)
            if stored is not None and MOVED in stored:
                self._forward(msg, stored[MOVED])
                return
            # ``stored`` was just parsed and is not used again: the state may own it.
            state = ProfileState.from_dict(stored, copy=False) if stored is not None else None
            if msg["kind"] == "tick" and state is None:
                return  # the profile went away (merged or erased) after the tick was made
            if msg["kind"] == "merge":
                # The absorbed side of a merge: give the state to the survivor and leave a
                # marker (and a tombstone on the compacted topic). Serialised right away, so
                # the state needs no copy.
                state = state or new_state(pid, now)
                body = {
                    "kind": "absorb",
                    "absorbed": pid,
                    "state": state.to_dict(copy=False),
                    "seq": int(msg.get("seq") or 0),
                }
                self._forward(body, msg["survivor"])
                writes.put(key, partition, orjson.dumps({MOVED: msg["survivor"]}), None, None)
                return
            state, actions = self._step(state, pid, msg, now)
        except Exception as exc:  # one bad message must not stop the partition
            log.exception(
                "%s[%s] offset %s: profile step failed", meta.topic(), partition, meta.offset()
            )
            send_to_dlq(self.out, meta, f"profile_step: {type(exc).__name__}: {exc}", self.name)
            return
        if state is None:  # split with nothing left: the profile is gone
            writes.put(key, partition, None, None, None)
            return
        due_at = next_due(state)
        writes.put(
            key,
            partition,
            orjson.dumps(state.to_dict(copy=False)),
            None if due_at is None else str(due_at).encode(),
            orjson.dumps(snapshot(state, copy=False)),
        )
        for action in actions:
            metrics.ACTIONS.labels(action.type).inc()
            self.out.send(self._actions, key, orjson.dumps(action.to_dict()))
