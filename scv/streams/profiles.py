"""Profile and action stage, partitioned by profile id.

Consumes ``profiles.events.v1`` (events, merge hand-overs, splits and adoptions, cart ticks),
keeps each profile's state in a RocksDB table, publishes snapshots on ``profiles.v1`` and
actions on ``actions.v1``. A timer finds due carts and sends a tick through the same topic, so
every state change happens inside stream iteration, in order per partition.
"""

from __future__ import annotations

import logging
import time
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
from scv.streams import metrics
from scv.streams.app import (
    actions_out,
    app,
    carts_due,
    output,
    profile_events,
    profile_table,
    profiles_out,
    set_current_event,
    settings,
)
from scv.streams.dlq import send_to_dlq

log = logging.getLogger(__name__)
trigger_config = TriggerConfig(cooldown_s=settings.action_cooldown_s)

#: A profile merged away keeps a forwarding marker so late hand-overs find the survivor.
MOVED = "moved_to"


class _Writes:
    """One batch's table writes and snapshots, held until :meth:`flush`: a profile touched by
    ten messages of the batch costs one table write (one changelog message), one due-cart
    entry and one ``profiles.v1`` snapshot instead of ten. States are kept serialised, so a
    message whose step fails leaves nothing half-applied behind."""

    def __init__(self) -> None:
        self.table: dict[bytes, bytes | None] = {}  # None: delete
        self.due: dict[bytes, bytes | None] = {}
        self.snapshots: dict[bytes, bytes | None] = {}  # None: tombstone
        self.events: dict[bytes, Any] = {}  # the last event per key: its partition

    def load(self, key: bytes) -> dict[str, Any] | None:
        raw = self.table[key] if key in self.table else profile_table.get(key)
        return orjson.loads(raw) if raw is not None else None

    def put(
        self, key: bytes, event: Any, value: bytes | None, due: bytes | None, snap: bytes | None
    ) -> None:
        self.table[key], self.due[key], self.snapshots[key] = value, due, snap
        self.events[key] = event

    async def flush(self) -> None:
        for key, value in self.table.items():
            set_current_event(self.events[key])  # the changelog partition is the key's
            if value is None:
                profile_table.pop(key, None)
            else:
                profile_table[key] = value
            due = self.due[key]
            if due is None:
                carts_due.pop(key, None)
            else:
                carts_due[key] = due
        for key, snap in self.snapshots.items():
            output.send(profiles_out, key, snap)


async def _forward(msg: dict[str, Any], survivor: str) -> None:
    """Pass a message for a merged-away profile on to its survivor.

    An event's identifier list describes the merged-away profile, not the survivor: dropped.
    """
    body = msg | {"profile_id": survivor}
    if msg.get("kind") == "event":
        body.pop("identifiers", None)
        body.pop("seq", None)
    output.send(profile_events, survivor.encode(), orjson.dumps(body))


async def _adopt(adoption: Adoption) -> None:
    output.send(profile_events, adoption.profile_id.encode(), orjson.dumps(adoption.to_dict()))


async def _split(state: ProfileState, msg: dict[str, Any]) -> ProfileState | None:
    """Carry out the resolver's split: the kept part's state (None if nothing is left);
    every other part gets its partials through an ``adopt`` message."""
    kept, adoptions = split_state(
        state, msg["parts"], msg.get("removed") or [], int(msg.get("seq") or 0)
    )
    for adoption in adoptions:
        await _adopt(adoption)
    return kept


async def _hand_over(
    pid: str, state: ProfileState, survivor: str, seq: int, writes: _Writes, event: Any
) -> None:
    """The absorbed side of a merge: give the state to the survivor and leave a marker
    (and a tombstone on the compacted topic)."""
    # Serialised in _forward before anything else runs: no copy of the state needed.
    body = {"kind": "absorb", "absorbed": pid, "state": state.to_dict(copy=False), "seq": seq}
    await _forward(body, survivor)
    writes.put(pid.encode(), event, orjson.dumps({MOVED: survivor}), None, None)


async def _step(
    state: ProfileState | None, pid: str, msg: dict[str, Any], now: float
) -> tuple[ProfileState | None, list[Action]]:
    kind = msg["kind"]
    if kind == "event":
        event = NormalizedEvent.from_dict(msg["event"])
        state = state or new_state(pid, event.ts)
        accepted = [parse_ident(k) for k in msg.get("accepted", [])]
        anchor = parse_ident(msg["anchor"]) if msg.get("anchor") else None
        file_event(state, anchor, event, accepted, now, settings.cart_window_s)
        seq = int(msg.get("seq") or 0)
        if "identifiers" in msg and seq >= state.ids_seq:  # the resolver's list wins
            state.identifiers = identifiers_by_type(msg["identifiers"])
            state.ids_seq = seq
        return state, on_event(state, event, now, trigger_config)
    if kind == "absorb":
        other = ProfileState.from_dict(msg["state"], copy=False)  # msg was just parsed
        if state is not None:
            # this profile may have been split while the hand-over was in flight
            other, forwards = reroute(state, other, int(msg.get("seq") or 0))
            for adoption in forwards:
                await _adopt(adoption)
        state = state or new_state(pid, other.created_ts)
        kept_ids, kept_seq = state.identifiers, state.ids_seq
        absorb(state, other)
        if int(msg.get("seq") or 0) <= kept_seq:  # the list already counts this merge
            state.identifiers = kept_ids
        # A merge can bring a cart past its window, or a cancellation and a later visit, together.
        return state, due(state, now, trigger_config) + pending_churn(state, now, trigger_config)
    if kind == "adopt":
        state, forwards = adopt(state, Adoption.from_dict(msg))
        for adoption in forwards:
            await _adopt(adoption)
        return state, due(state, now, trigger_config) + pending_churn(state, now, trigger_config)
    if kind == "split":
        if state is None:
            return None, []
        return await _split(state, msg), []
    if kind == "tick" and state is not None:
        return state, due(state, now, trigger_config)
    raise ValueError(f"unknown message kind {kind!r}")


@app.agent(profile_events, name="profiles")
async def profiles_agent(stream: Any) -> None:
    """Profiles in batches: messages are applied in order; table writes and snapshots are
    made once per profile per batch (a snapshot may trail an action by one batch)."""
    async for batch in stream.take_events(settings.batch_max, within=settings.batch_within_s):
        writes = _Writes()
        for event in batch:
            set_current_event(event)
            await _apply(event, writes)
        await writes.flush()
        await output.flush()


async def _apply(event: Any, writes: _Writes) -> None:
    msg_meta = event.message
    metrics.EVENTS_IN.labels("profiles").inc()
    try:
        msg = orjson.loads(msg_meta.value)
        pid = msg["profile_id"]
        key = pid.encode()
        stored = writes.load(key)
        if stored is not None and MOVED in stored:
            await _forward(msg, stored[MOVED])
            return
        # ``stored`` was just parsed and is not used again: the state may own it.
        state = ProfileState.from_dict(stored, copy=False) if stored is not None else None
        if msg["kind"] == "tick" and state is None:
            return  # the profile went away (merged or erased) after the tick was sent
        if msg["kind"] == "merge":
            state = state or new_state(pid, time.time())
            await _hand_over(pid, state, msg["survivor"], int(msg.get("seq") or 0), writes, event)
            return
        state, actions = await _step(state, pid, msg, time.time())
    except Exception as exc:  # one bad message must not stop the partition
        log.exception(
            "%s[%s] offset %s: profile step failed",
            msg_meta.topic,
            msg_meta.partition,
            msg_meta.offset,
        )
        await send_to_dlq(event, f"profile_step: {type(exc).__name__}: {exc}", "profiles")
        return
    if state is None:  # split with nothing left: the profile is gone
        writes.put(key, event, None, None, None)
        return
    due_at = next_due(state)
    writes.put(
        key,
        event,
        orjson.dumps(state.to_dict(copy=False)),
        None if due_at is None else str(due_at).encode(),
        orjson.dumps(snapshot(state, copy=False)),
    )
    for action in actions:
        metrics.ACTIONS.labels(action.type).inc()
        output.send(actions_out, key, orjson.dumps(action.to_dict()))


_ticked: dict[bytes, float] = {}


@app.timer(interval=settings.cart_check_interval_s)
async def check_due_carts() -> None:
    """Send a tick for every local profile with a cart past its window.

    The timer may not write tables (that must happen in stream iteration), so it only sends a
    message; the agent re-checks. ``_ticked`` keeps one tick in flight per profile.
    """
    now = time.time()
    for key, raw in list(carts_due.items()):
        if float(raw) > now or _ticked.get(key, 0.0) > now - 5 * settings.cart_check_interval_s:
            continue
        _ticked[key] = now
        await profile_events.send(
            key=key, value=orjson.dumps({"kind": "tick", "profile_id": key.decode()})
        )
    for key in [k for k, t in _ticked.items() if t < now - 60]:
        del _ticked[key]
