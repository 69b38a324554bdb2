"""Profile and action stage, partitioned by profile id.

Consumes ``profiles.events.v1`` (events, merge hand-overs, splits and adoptions), keeps each
profile's state in a table partition, publishes snapshots on ``profiles.v1`` and actions on
``actions.v1``. Due carts are checked by the same loop between batches (:meth:`check_due`),
so every state change of a partition happens in one thread, in order. Consent and objection
commands change the state like events; an erase replaces it with a marker
(``scv.streams.privacy``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from scv.domain.handovers import HandoverWatch, Storm
from scv.domain.model import Action, NormalizedEvent, parse_ident
from scv.domain.parts import (
    Adoption,
    adopt,
    file_consent,
    file_event,
    identifiers_by_type,
    own_identifier,
    reroute,
    split_state,
)
from scv.domain.profile import (
    ProfileState,
    absorb,
    new_state,
    next_due,
    note_actions,
    set_objection,
    snapshot,
)
from scv.domain.triggers import Suppressed, TriggerConfig, due, on_event, pending_churn
from scv.settings import Settings
from scv.streams import metrics
from scv.streams.commit import ActionLedger
from scv.streams.dlq import LocalMsg, Msg, failure_reason, log_failure, send_to_dlq
from scv.streams.due import DueIndex
from scv.streams.origin import OriginSink
from scv.streams.output import Sink
from scv.streams.privacy import ERASED, Erased, ProfileEraser
from scv.streams.state import LruCache, Table
from scv.topics import Topics

log = logging.getLogger(__name__)

#: A profile merged away keeps a forwarding marker so late hand-overs find the survivor.
MOVED = "moved_to"


#: What a profile key holds: a live state, the id it was merged into, an erasure marker, or
#: nothing.
Slot = ProfileState | str | Erased | None


class _Batch:
    """One batch's profile states, written back once per profile at :meth:`flush`.

    A profile touched by ten messages of the batch costs one table write (one changelog
    message), one due-cart entry and one ``profiles.v1`` snapshot instead of ten. Decoded
    states stay in the partition's bounded cache between batches (``Partition.cache``; the
    stage is the partition's only writer), so a busy profile is not parsed per message.

    A step that fails half-way must leave nothing behind: the stage then rebuilds that
    profile from its last written state and the batch's earlier messages for it
    (:attr:`applied`), with output suppressed, before the failing message goes to the DLQ.
    """

    def __init__(self, table: Table, dues: Callable[[int], DueIndex], cache_size: int) -> None:
        self._table, self._dues = table, dues
        self._cache_size = cache_size
        self.slots: dict[bytes, Slot] = {}
        self.partitions: dict[bytes, int] = {}
        self.applied: dict[bytes, list[Msg]] = {}
        self.dirty: set[bytes] = set()
        #: reads of the partitions' caches (a miss reads and decodes the stored record)
        self.hits = self.misses = 0

    def load(self, key: bytes, partition: int) -> Slot:
        if key in self.slots:
            return self.slots[key]
        cache = self._table[partition].cache
        if key in cache:
            self.hits += 1
            slot: Slot = cache.pop(key)
        else:
            self.misses += 1
            raw = self._table[partition].get(key)
            slot = None
            if raw is not None:
                stored = orjson.loads(raw)
                if MOVED in stored:
                    slot = stored[MOVED]
                elif ERASED in stored:
                    slot = Erased(stored[ERASED])
                else:  # just parsed and not used again: the state may own it
                    slot = ProfileState.from_dict(stored, False)
        self.slots[key], self.partitions[key] = slot, partition
        return slot

    def put(self, key: bytes, slot: Slot) -> None:
        self.slots[key] = slot
        self.dirty.add(key)

    def forget(self, key: bytes) -> None:
        """Drop what this batch holds for ``key`` (its last written state is reloaded)."""
        self.slots.pop(key, None)
        self.dirty.discard(key)
        self._table[self.partitions[key]].cache.pop(key, None)

    def flush(self, out: Sink, profiles_topic: str, purge: set[bytes]) -> None:
        """Write back every changed profile; ``purge``: keys whose old values must also
        leave the disk (their state held an erased person's identifiers)."""
        for key, slot in self.slots.items():
            p = self.partitions[key]
            table, dues, cache = self._table[p], self._dues(p), self._table[p].cache
            if key in purge:
                table.purge.add(key)
            if key not in self.dirty:  # only read (forwarded, or a tick for nobody)
                if slot is not None:
                    self._keep(cache, key, slot)
                continue
            if slot is None:
                table.pop(key, None)
                dues.set(key, None)
                out.send(profiles_topic, key, None)  # tombstone: the profile is gone
                continue
            if isinstance(slot, str):
                table[key] = orjson.dumps({MOVED: slot})
                dues.set(key, None)
                out.send(profiles_topic, key, None)
            elif isinstance(slot, Erased):
                table[key] = slot.encode()
                table.purge.add(key)  # the old state's bytes leave the disk as well
                dues.set(key, None)
                out.send(profiles_topic, key, None)
            else:
                table[key] = orjson.dumps(slot.to_dict(copy=False))
                dues.set(key, next_due(slot))
                out.send(profiles_topic, key, orjson.dumps(snapshot(slot, copy=False)))
            self._keep(cache, key, slot)

    def _keep(self, cache: LruCache, key: bytes, slot: Slot) -> None:
        cache[key] = slot  # ``load`` took it out: now the most recently used
        if len(cache) > self._cache_size:
            cache.popitem(last=False)  # the least recently used


class _Muted:
    """A sink that drops everything: replaying a profile's messages must not send twice."""

    def send(self, *args: Any, **kwargs: Any) -> None:
        return None


def trigger_config(settings: Settings) -> TriggerConfig:
    """The action rules of ``settings`` for the pure triggers (0 there means no bound)."""
    return TriggerConfig(
        cooldown_s=settings.action_cooldown_s,
        churn_max_age_s=settings.churn_max_age_s or None,
        churn_visit_grace_s=settings.churn_visit_grace_s,
        churn_visit_max_lag_s=settings.churn_visit_max_lag_s or None,
        cart_max_lag_s=settings.cart_max_lag_s or None,
        visit_types=settings.visit_types(),
    )


def _tick(key: bytes) -> bytes:
    """A due-cart check, as the message a profile's partition would get."""
    return orjson.dumps({"kind": "tick", "profile_id": key.decode()})


class ProfilesStage:
    """Profiles in batches: messages are applied in order; table writes and snapshots are
    made once per profile per batch (a snapshot may trail an action by one batch)."""

    name = "profiles"

    def __init__(self, settings: Settings, out: Sink, table: Table, carts_due: Table) -> None:
        self.table, self.carts_due = table, carts_due
        self.topics = Topics(settings)
        self.origin = OriginSink(out, [self.topics.profile_events])
        self.out: Sink = self.origin
        self.inputs = [self.topics.profile_events]
        self.trigger_config = trigger_config(settings)
        self.cart_window_s = settings.cart_window_s
        self._events = self.topics.profile_events
        self._profiles = self.topics.profiles
        self._actions = self.topics.actions
        secret = settings.suppression_key.get_secret_value().encode()
        self.eraser = ProfileEraser(self._events, self.topics.audit, secret)
        self._in = metrics.EVENTS_IN.labels(self.name)
        #: the batch's actions and suppressed actions, counted once per label at its end
        self._fired: list[tuple[str]] = []
        self._suppressed: list[Suppressed] = []
        #: hand-overs received per profile, to report a loop (scv.domain.handovers)
        self.handovers = HandoverWatch(
            settings.handover_storm_count, settings.handover_storm_window_s
        )
        self._storms = 0  # the batch's storms, counted once at its end
        self._dues: dict[int, DueIndex] = {}
        self._purge: set[bytes] = set()
        #: per partition: what it sent to its actions.v1 partition (scv.streams.commit)
        self.ledgers: dict[int, ActionLedger] = {}
        #: decoded states kept per partition between batches
        self.cache_size = max(1, settings.profile_cache_size // max(1, settings.stage_partitions))

    def process(self, batch: Sequence[Msg], now: float | None = None) -> None:
        work = _Batch(self.table, self._due_index, self.cache_size)
        now = time.time() if now is None else now
        self._purge = set()
        for msg in batch:
            self.origin.at(msg)
            self._apply(msg, work, now)
        self._in.inc(len(batch))
        work.flush(self.out, self._profiles, self._purge)
        metrics.count_lookups("profiles", work.hits, work.misses)
        self._count()

    def _count(self) -> None:
        if self._fired:
            metrics.count_labels(metrics.ACTIONS, self._fired)
            self._fired.clear()
        if self._suppressed:
            pairs = [(s.type, s.reason) for s in self._suppressed]
            metrics.count_labels(metrics.SUPPRESSED, pairs)
            self._suppressed.clear()
        if self._storms:
            metrics.HANDOVER_STORMS.inc(self._storms)
            self._storms = 0

    def check_due(self, now: float | None = None) -> int:
        """Apply a tick to every local profile whose cart is past its window; how many."""
        now = time.time() if now is None else now
        ticks = [
            LocalMsg(self._events, _tick(key), key, p)
            for p in list(self.carts_due.open_partitions)
            for key in self._due_index(p).due(now)
        ]
        if ticks:
            self.process(ticks, now)
        return len(ticks)

    def ledger(self, partition: int) -> ActionLedger:
        ledger = self.ledgers.get(partition)
        if ledger is None:  # not setdefault: a ledger per message was most of this call's cost
            ledger = self.ledgers[partition] = ActionLedger()
        return ledger

    def _due_index(self, partition: int) -> DueIndex:
        """The partition's due-time index, (re)built when the partition was (re)opened."""
        part = self.carts_due[partition]
        index = self._dues.get(partition)
        if index is None or index.part is not part:
            index = self._dues[partition] = DueIndex(part)
        return index

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
        config, held = self.trigger_config, self._suppressed
        if kind == "event":
            event = NormalizedEvent.from_dict(msg["event"])
            state = state or new_state(pid, event.ts)
            accepted = [parse_ident(k) for k in msg.get("accepted", [])]
            anchor = parse_ident(msg["anchor"]) if msg.get("anchor") else None
            visits = config.visit_types
            file_event(state, anchor, event, accepted, now, self.cart_window_s, visits)
            seq = int(msg.get("seq") or 0)
            if "identifiers" in msg and seq >= state.ids_seq:  # the resolver's list wins
                state.identifiers = identifiers_by_type(msg["identifiers"])
                state.ids_seq = seq
            return state, on_event(state, event, now, config, held)
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
            return state, due(state, now, config, held) + pending_churn(state, now, config, held)
        if kind == "adopt":
            state, forwards = adopt(state, Adoption.from_dict(msg))
            self._adopt(forwards)
            return state, due(state, now, config, held) + pending_churn(state, now, config, held)
        if kind == "split":
            # The kept part's state (None if nothing is left); every other part gets its
            # partials through an ``adopt`` message. A profile whose state has not arrived
            # yet (its own adoption or hand-over is still in flight) is split all the same:
            # the split's ``moved`` pointers must be there to send on what arrives later.
            kept, adoptions = split_state(
                state or new_state(pid, 0.0),
                msg["parts"],
                msg.get("removed") or [],
                int(msg.get("seq") or 0),
            )
            self._adopt(adoptions)
            return kept, []
        if kind in ("consent", "object"):
            ts = float(msg["ts"])
            state = state or new_state(pid, ts)
            anchor = msg.get("anchor")
            source = str(msg.get("source") or "command")
            if kind == "consent":
                file_consent(state, anchor, msg["consent"], ts, source)
            else:
                if anchor:
                    own_identifier(state, anchor)
                active = not msg.get("withdraw", False)
                set_objection(state, active, ts, str(msg["command_id"]), source)
            # A grant (or a withdrawn objection) may free a churn offer waiting for it.
            return state, pending_churn(state, now, config, held)
        if kind == "household":  # the resolver (re)filed the person in a household
            state = state or new_state(pid, 0.0)
            state.household_id = msg.get("household_id") or None
            return state, []
        if kind == "scrub":  # another person was erased: forget what named them
            if state is not None and self.eraser.scrub(state, msg):
                self._purge.add(pid.encode())
            return state, []
        if kind == "tick" and state is not None:
            return state, due(state, now, config, held)
        raise ValueError(f"unknown message kind {kind!r}")

    def _apply(self, meta: Msg, work: _Batch, now: float) -> None:
        partition = meta.partition() or 0
        key = b""
        try:
            msg = orjson.loads(meta.value() or b"")
            pid = msg["profile_id"]
            key = pid.encode()
            slot = work.load(key, partition)
            kind = msg.get("kind")
            if kind == "absorb" or kind == "adopt":  # not in _step_message: _rebuild replays it
                self._handover(pid, msg, slot, now)
            self._step_message(key, pid, msg, slot, work, now)
        except Exception as exc:  # one bad message must not stop the partition
            log_failure(log, meta, "profile step", exc)
            if key in work.partitions:
                self._rebuild(key, work, now)
            send_to_dlq(self.out, meta, failure_reason("profile_step", exc), self.name)
            return
        work.applied.setdefault(key, []).append(meta)

    def _handover(self, pid: str, msg: dict[str, Any], slot: Slot, now: float) -> None:
        """Count a hand-over ``pid`` received (applied, or forwarded to its survivor).

        A storm is logged, counted and audited; the message is applied all the same: a
        false alarm must not cost data, and a loop is a bug to find, not traffic to drop.
        """
        peer = msg.get("absorbed") if msg["kind"] == "absorb" else msg.get("origin")
        storm = self.handovers.note(pid, (peer, slot if isinstance(slot, str) else None), now)
        if storm is not None:
            self._storm(storm, msg["kind"])

    def _storm(self, storm: Storm, kind: str) -> None:
        """Report a hand-over storm: profile ids and counts only, never identifiers."""
        self._storms += 1
        log.warning(
            "hand-over storm: profile %s received %d hand-overs in %.1f s (more than %d within "
            "%.0f s; last: %s), peers %s; still applied. A hand-over loop? (docs/operations.md)",
            storm.profile_id,
            storm.count,
            storm.at - storm.since,
            storm.bound,
            storm.window_s,
            kind,
            ", ".join(storm.peers) or "none",
        )
        record = {
            "kind": "handover_storm",
            "stage": self.name,
            "processed_at": time.time(),
            "profile_id": storm.profile_id,
            "message_kind": kind,
            "peers": list(storm.peers),
            "counts": {"handovers": storm.count},
            "since": storm.since,
            "bound": storm.bound,
            "window_s": storm.window_s,
        }
        self.out.send(self.topics.audit, storm.profile_id.encode(), orjson.dumps(record))

    def _rebuild(self, key: bytes, work: _Batch, now: float) -> None:
        """Undo a failed step: the last written state plus the batch's earlier messages."""
        work.forget(key)
        out, self.out = self.out, _Muted()
        fired, held = len(self._fired), len(self._suppressed)  # counted once already
        try:
            for earlier in work.applied.get(key, []):
                msg = orjson.loads(earlier.value() or b"")
                slot = work.load(key, earlier.partition() or 0)
                self._step_message(key, msg["profile_id"], msg, slot, work, now)
        finally:
            self.out = out
            del self._fired[fired:], self._suppressed[held:]

    def _step_message(
        self, key: bytes, pid: str, msg: dict[str, Any], slot: Slot, work: _Batch, now: float
    ) -> None:
        if isinstance(slot, Erased):  # late for an erased profile: dropped
            self.eraser.late(self.out, pid, msg, slot)
            return
        if msg["kind"] == "erase":
            work.put(key, self.eraser.erase(self.out, pid, msg, slot, now))
            return
        if isinstance(slot, str):  # merged away: the survivor takes it
            if msg["kind"] == "merge":
                # The resolver retires an absorbed id, so a second merge of it is a repeat
                # (a redo of a hand-over already made); forwarding it would make the
                # survivor hand itself over to itself, again and again.
                log.info("profile %s: repeated merge into %s ignored", pid, msg["survivor"])
                return
            if slot == pid:
                raise ValueError(f"profile {pid} is marked as merged into itself")
            self._forward(msg, slot)
            return
        state = slot
        if msg["kind"] == "tick" and state is None:
            return  # the profile went away (merged or erased) after the tick was made
        if msg["kind"] == "merge":
            # The absorbed side of a merge: give the state to the survivor and leave a
            # marker (and a tombstone on the compacted topic). Serialised right away, so
            # the state needs no copy. A state that has not arrived yet (its adoption is
            # still in flight) hands over nothing: 0.0 is "no time known", never the
            # processing time, which would become the survivor's updated_ts.
            state = state or new_state(pid, 0.0)
            body = {
                "kind": "absorb",
                "absorbed": pid,
                "state": state.to_dict(copy=False),
                "seq": int(msg.get("seq") or 0),
            }
            self._forward(body, msg["survivor"])
            work.put(key, msg["survivor"])
            return
        state, actions = self._step(state, pid, msg, now)
        if state is not None:
            note_actions(state, actions)  # what the profile API shows as sent
        work.put(key, state)  # None: a split left nothing, the profile is gone
        if not actions:
            return
        partition = work.partitions[key]
        ledger = self.ledger(partition)
        for action in actions:
            if ledger.already_sent(action.action_id):  # sent before a crash, now redone
                metrics.SUPPRESSED.labels(action.type, "already_sent").inc()
                continue
            self._fired.append((action.type,))
            value = orjson.dumps(action.to_dict())
            # to the partition recovery reads back (the same one the key hashes to)
            self.out.send(
                self._actions, key, value, partition=partition, on_offset=ledger.delivered
            )
