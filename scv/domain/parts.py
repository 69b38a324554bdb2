"""Per-anchor history, so a split profile gives each part back its own traits and activity.

The profile stage files every event under its **anchor** (the event's highest-priority
identifier, chosen by the resolver) and keeps, besides the profile's aggregate state, one
partial state per anchor: the fold of the events filed under it. A merge unions the
partials; a split hands each partial to the part that now owns its anchor and rebuilds each
part's state as the fold of its partials. Events anchored on a value found generic belong
to nobody and are dropped: a call from a shop's shared phone cannot be attributed.

Action bookkeeping (``fired``, ``last_action_ts``) is per person, not per event, so every
part keeps all of it: an action already sent is never sent again by a part. So does an
objection: which part the objecting person is cannot be known, and every part must honour it.

Pure module: no Faust.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from scv.domain.model import Identifier, NormalizedEvent, ident_key, parse_ident
from scv.domain.profile import (
    VISIT_TYPES,
    ProfileState,
    absorb,
    apply_consent,
    apply_event,
    new_state,
    note_activity,
    settle_churn,
)


def file_event(
    state: ProfileState,
    anchor: Identifier | None,
    event: NormalizedEvent,
    accepted: list[Identifier],
    now: float,
    cart_window_s: float,
    visit_types: frozenset[str] = VISIT_TYPES,
) -> None:
    """Fold ``event`` into the aggregate state and into its anchor's partial state (which
    also keeps it in its activity list)."""
    apply_event(state, event, accepted, now, cart_window_s, visit_types)
    if anchor is None:
        return
    key = ident_key(anchor)
    part = state.parts.get(key)
    if part is None:
        part = state.parts[key] = new_state(state.profile_id, event.ts)
    apply_event(part, event, accepted, now, cart_window_s, visit_types)
    note_activity(part, event)


def file_consent(
    state: ProfileState, anchor: str | None, consent: dict[str, bool], ts: float, source: str
) -> None:
    """A consent command about the person ``anchor`` names: into the aggregate and, like an
    event, into that identifier's partial state, so a later split gives the decision to the
    part that holds the identifier it was made under. The anchor is the resolver's: an
    identifier the profile owns (one it may just have created the profile for)."""
    apply_consent(state, consent, ts, source)
    if anchor is None:
        return
    own_identifier(state, anchor)
    part = state.parts.get(anchor)
    if part is None:
        part = state.parts[anchor] = new_state(state.profile_id, ts)
    apply_consent(part, consent, ts, source)


def own_identifier(state: ProfileState, key: str) -> None:
    """List identifier ``key`` on the profile (the resolver says it owns it)."""
    kind, value = parse_ident(key)
    values = state.identifiers.setdefault(kind, [])
    if value not in values:
        values.append(value)


@dataclass(slots=True)
class Adoption:
    """What a new part's owner receives: its identifiers and the partials filed under them."""

    profile_id: str
    origin: str
    identifiers: list[str]
    partials: dict[str, ProfileState]
    fired: list[str]
    last_action_ts: dict[str, float]
    seq: int = 0
    objection: dict[str, Any] | None = None
    actions: list[list[Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "adopt",
            "seq": self.seq,
            "profile_id": self.profile_id,
            "origin": self.origin,
            "identifiers": list(self.identifiers),
            "partials": {a: p.to_dict() for a, p in self.partials.items()},
            "fired": list(self.fired),
            "last_action_ts": dict(self.last_action_ts),
            "objection": dict(self.objection) if self.objection is not None else None,
            "actions": [list(a) for a in self.actions],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Adoption:
        return cls(
            profile_id=d["profile_id"],
            origin=d.get("origin", ""),
            identifiers=list(d.get("identifiers") or []),
            partials={a: ProfileState.from_dict(p) for a, p in d["partials"].items()},
            fired=list(d.get("fired") or []),
            last_action_ts={k: float(v) for k, v in (d.get("last_action_ts") or {}).items()},
            seq=int(d.get("seq") or 0),
            objection=d.get("objection"),
            actions=[list(a) for a in d.get("actions") or ()],
        )


def rebuild(
    pid: str,
    partials: dict[str, ProfileState],
    identifiers: list[str],
    like: ProfileState | None = None,
) -> ProfileState:
    """A part's state: the fold of its partials, with the resolver's identifier list.

    ``like`` (the profile being split, or the part's current state) contributes the action
    bookkeeping and, for the part that keeps the id, the merge history.
    """
    created = min((p.created_ts for p in partials.values()), default=None)
    if created is None:
        created = like.created_ts if like is not None else 0.0
    state = new_state(pid, created)
    for anchor in sorted(partials):
        absorb(state, partials[anchor])
        state.parts[anchor] = ProfileState.from_dict(partials[anchor].to_dict())  # no aliasing
    state.activity = []  # the parts keep it
    # One person's own history: their latest statement per purpose wins, as when the events
    # were applied one by one (absorb's "a denial wins" is for two profiles being merged).
    state.consent = _latest_consent(partials.values())
    state.merged_from = []
    if like is not None:
        state.fired = list(like.fired)
        state.last_action_ts = dict(like.last_action_ts)
        state.objection = dict(like.objection) if like.objection is not None else None
        state.actions = [list(a) for a in like.actions]
        if like.profile_id == pid:
            state.merged_from = list(like.merged_from)
            state.moved = {k: list(v) for k, v in like.moved.items()}
        settle_churn(state)
    state.identifiers = identifiers_by_type(identifiers)
    return state


def split_state(
    state: ProfileState, parts: dict[str, list[str]], removed: list[str], seq: int = 0
) -> tuple[ProfileState | None, list[Adoption]]:
    """Split ``state`` as the resolver decided (decision number ``seq``): the kept part's
    new state (None if the profile is gone) and an :class:`Adoption` for every other part."""
    pid = state.profile_id
    owner_of = {key: part for part, keys in parts.items() for key in keys}
    gone = set(removed)
    grouped: dict[str, dict[str, ProfileState]] = {part: {} for part in parts}
    for anchor, partial in state.parts.items():
        if anchor in gone:
            continue
        target = owner_of.get(anchor, pid if pid in parts else None)
        if target is not None:
            grouped[target][anchor] = partial
    moved = {key: [part, seq] for part, keys in parts.items() if part != pid for key in keys}
    moved.update({key: ["", seq] for key in removed})
    kept: ProfileState | None = None
    if pid in parts:
        kept = rebuild(pid, grouped[pid], parts[pid], like=state)
        kept.moved.update(moved)
        kept.ids_seq = seq
    adoptions = [
        Adoption(
            part,
            pid,
            keys,
            grouped[part],
            list(state.fired),
            dict(state.last_action_ts),
            seq,
            state.objection,
            [list(a) for a in state.actions],
        )
        for part, keys in parts.items()
        if part != pid
    ]
    return kept, adoptions


def adopt(current: ProfileState | None, adoption: Adoption) -> tuple[ProfileState, list[Adoption]]:
    """A new part's state: its partials folded into whatever already arrived for it.

    An adoption can reach a profile that has meanwhile been split itself (it was forwarded
    here because its own target was merged in): identifiers and partials that left with a
    later split go on, as for a hand-over (:func:`reroute`).
    """
    forwards: list[Adoption] = []
    if current is not None and current.moved:
        incoming = rebuild(adoption.profile_id, adoption.partials, adoption.identifiers)
        incoming, forwards = reroute(current, incoming, adoption.seq)
        adoption = Adoption(
            adoption.profile_id,
            adoption.origin,
            [ident_key(i) for i in _identifiers(incoming)],
            incoming.parts,
            adoption.fired,
            adoption.last_action_ts,
            adoption.seq,
            adoption.objection,
            adoption.actions,
        )
    state = rebuild(adoption.profile_id, adoption.partials, adoption.identifiers)
    state.fired = list(adoption.fired)
    state.last_action_ts = dict(adoption.last_action_ts)
    state.objection = dict(adoption.objection) if adoption.objection is not None else None
    state.actions = [list(a) for a in adoption.actions]
    settle_churn(state)
    if current is not None:
        absorb(state, current)
        state.merged_from = list(current.merged_from)
        # what the resolver said of this part's household before its adoption arrived
        state.household_id = current.household_id
    state.ids_seq = max(adoption.seq, current.ids_seq if current is not None else 0)
    return state, forwards


def reroute(
    state: ProfileState, incoming: ProfileState, seq: int = 0
) -> tuple[ProfileState, list[Adoption]]:
    """A hand-over from the resolver's merge decision number ``seq``.

    If this profile was split by a decision at or after that merge (the hand-over was still
    in flight), identifiers and partials that left go on to their new owner (or nowhere, if
    generic) and the rest stays. If the split came before the merge, the merge brings them
    back: their ``moved`` entries are dropped.

    What goes on carries the decision that sent it there (one forward per new owner and
    split), never an older one: hand-overs terminate because a decision number only grows
    along their way (docs/identity-graph.md, *Hand-overs terminate*).
    """
    keys = [ident_key(i) for i in _identifiers(incoming)]
    touched = (set(keys) | incoming.parts.keys()) & state.moved.keys()
    active: dict[str, tuple[str, int]] = {}
    for key in touched:
        target, split_seq = state.moved[key]
        if split_seq >= seq:
            active[key] = (target, int(split_seq))
        else:
            del state.moved[key]
    if not active:
        return incoming, []
    staying: dict[str, ProfileState] = {}
    # per (new owner, the split that sent it there): each forward carries its own decision
    leaving: dict[tuple[str, int], dict[str, ProfileState]] = {}
    for anchor, partial in incoming.parts.items():
        route = active.get(anchor)
        if route is None:
            staying[anchor] = partial
        elif route[0]:
            leaving.setdefault(route, {})[anchor] = partial
    remaining = [k for k in keys if k not in active]
    if len(staying) == len(incoming.parts):
        kept = ProfileState.from_dict(incoming.to_dict())
        kept.identifiers = identifiers_by_type(remaining)
    else:
        kept = rebuild(incoming.profile_id, staying, remaining, incoming)
        if not staying:  # no event stays: no time either (0.0 is "not known" to absorb)
            kept.created_ts = kept.updated_ts = 0.0
    forwards = [
        Adoption(
            target,
            state.profile_id,
            [k for k in keys if active.get(k) == (target, split_seq)],
            partials,
            list(incoming.fired),
            dict(incoming.last_action_ts),
            split_seq,
            incoming.objection,
            [list(a) for a in incoming.actions],
        )
        for (target, split_seq), partials in sorted(leaving.items())
    ]
    return kept, forwards


def _latest_consent(partials: Iterable[ProfileState]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for partial in partials:
        for purpose, record in partial.consent.items():
            mine = latest.get(purpose)
            # later wins; at the same instant a denial wins
            if mine is None or (record["ts"], not record["granted"]) > (
                mine["ts"],
                not mine["granted"],
            ):
                latest[purpose] = dict(record)
    return latest


def _identifiers(state: ProfileState) -> list[Identifier]:
    return [(kind, v) for kind, values in state.identifiers.items() for v in values]


def identifiers_by_type(keys: list[str]) -> dict[str, list[str]]:
    """``type:value`` keys -> the ``{type: [values]}`` shape of a profile's identifiers."""
    out: dict[str, list[str]] = {}
    for key in keys:
        kind, value = parse_ident(key)
        out.setdefault(kind, []).append(value)
    return out
