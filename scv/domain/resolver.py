"""The deterministic resolver: one event's identifiers + the identity graph -> a Resolution.

The graph is two maps behind :class:`GraphStore`: *owners* (``type:value`` -> profile id)
and *nodes* (profile id -> :class:`ProfileNode`, the profile's identifiers). The resolver is
the single writer of both (see DESIGN.md, "Resolver topology"), so :func:`resolve` is a pure
function of (event, store state, rules): the same input sequence always yields the same
store and the same profile ids, which is what makes replay and recovery safe.

Hot-path notes: per event the resolver does one ``get_owner`` per identifier, at most one
``get_node`` per involved profile, and writes only what changed (an event whose identifiers
all already sit on one profile writes nothing). Nodes returned by ``get_node`` may be
mutated in place and are always handed back through ``put_node``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from scv.domain.governance import Rules
from scv.domain.model import (
    Dropped,
    Identifier,
    LinkReason,
    MergeEvent,
    NormalizedEvent,
    Resolution,
    ident_key,
)


@dataclass(slots=True)
class ProfileNode:
    """A profile as the identity graph sees it: the identifiers it owns, nothing else.

    ``identifiers`` maps type -> values in attach order (order matters only for
    determinism). ``absorbed`` counts every profile merged into this one over its life,
    including those its absorbed profiles had absorbed, and is what ``merge_cap`` bounds.
    """

    profile_id: str
    first_seen: float
    identifiers: dict[str, list[str]] = field(default_factory=dict)
    absorbed: int = 0

    def count(self, ident_type: str) -> int:
        """How many values of ``ident_type`` the profile owns."""
        values = self.identifiers.get(ident_type)
        return len(values) if values else 0

    def keys(self) -> list[str]:
        """Every owned identifier as a ``type:value`` key."""
        return [f"{kind}:{v}" for kind, values in self.identifiers.items() for v in values]

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile_id": self.profile_id,
            "first_seen": self.first_seen,
            "identifiers": {k: list(v) for k, v in self.identifiers.items()},
            "absorbed": self.absorbed,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProfileNode:
        return cls(
            profile_id=str(d["profile_id"]),
            first_seen=float(d["first_seen"]),
            identifiers={str(k): [str(x) for x in v] for k, v in d["identifiers"].items()},
            absorbed=int(d.get("absorbed", 0)),
        )


class GraphStore(Protocol):
    """What the resolver needs from storage: two key-value maps.

    Implementations: :class:`DictStore` (tests, replay) and the Faust/RocksDB tables of
    the resolve stage. Keeping the interface this small is what lets a sharded resolver
    replace the single-writer topology later without touching the rules.
    """

    def get_owner(self, key: str) -> str | None: ...
    def set_owner(self, key: str, profile_id: str) -> None: ...
    def del_owner(self, key: str) -> None: ...
    def get_node(self, profile_id: str) -> ProfileNode | None: ...
    def put_node(self, node: ProfileNode) -> None: ...
    def del_node(self, profile_id: str) -> None: ...


class DictStore:
    """In-memory :class:`GraphStore`. Nodes are kept by reference (no copies): cheap for
    replaying large inputs; callers that snapshot it should use ``to_dict``."""

    __slots__ = ("nodes", "owners")

    def __init__(self) -> None:
        self.owners: dict[str, str] = {}
        self.nodes: dict[str, ProfileNode] = {}

    def get_owner(self, key: str) -> str | None:
        return self.owners.get(key)

    def set_owner(self, key: str, profile_id: str) -> None:
        self.owners[key] = profile_id

    def del_owner(self, key: str) -> None:
        self.owners.pop(key, None)

    def get_node(self, profile_id: str) -> ProfileNode | None:
        return self.nodes.get(profile_id)

    def put_node(self, node: ProfileNode) -> None:
        self.nodes[node.profile_id] = node

    def del_node(self, profile_id: str) -> None:
        self.nodes.pop(profile_id, None)

    def to_dict(self) -> dict[str, Any]:
        """A plain, comparable snapshot (used by replay-determinism tests)."""
        return {
            "owners": dict(sorted(self.owners.items())),
            "nodes": {pid: self.nodes[pid].to_dict() for pid in sorted(self.nodes)},
        }


def new_profile_id(event_id: str) -> str:
    """The id of a profile created by ``event_id``: derived from the event, not random or a
    counter, so replaying the input (or re-delivery after a crash) yields the same ids."""
    return "p_" + hashlib.blake2b(event_id.encode("utf-8"), digest_size=10).hexdigest()


def resolve(event: NormalizedEvent, store: GraphStore, rules: Rules) -> Resolution:
    """Attach ``event``'s identifiers to one profile, merging the profiles they tie together.

    Governance is applied greedily in priority order (the design's "drop the
    lowest-priority identifier and retry"): each identifier is accepted only if joining it
    - and the profile that owns it - keeps every type within its ``max_per_profile`` and the
    survivor within ``merge_cap``; otherwise it is dropped and its owner is *not* merged.
    Limits only guard growth: a profile already over a limit (rules tightened later) can
    still be reached through its own identifiers, it just cannot grow further.

    The oldest involved profile (``first_seen``, then id) survives; the others are absorbed
    and reported as :class:`MergeEvent` s ordered by the same key.
    """
    drop_reason: dict[Identifier, str] = {}

    # De-duplicate (the normaliser should have, but a replayed raw file might not) and block.
    seen = list(dict.fromkeys(event.identifiers))  # distinct, first occurrence wins
    candidates: list[Identifier] = []
    for ident in seen:
        if rules.is_blocked(ident):
            drop_reason[ident] = "blocked"
        else:
            candidates.append(ident)

    # Greedy walk, highest priority first, over a growing "joined" view.
    nodes: dict[str, ProfileNode] = {}  # involved profiles, fetched once each
    owner_of: dict[Identifier, str] = {}  # accepted identifiers that already had an owner
    new_idents: list[Identifier] = []  # accepted identifiers nobody owned
    counts: dict[str, int] = {}  # per-type distinct identifiers in the joined view
    absorbed_total = 0  # sum of the involved profiles' own ``absorbed`` counts
    for ident in rules.priority_order(candidates):
        kind = ident[0]
        key = ident_key(ident)
        owner = store.get_owner(key)
        node: ProfileNode | None = None
        if owner is not None and owner not in nodes:
            node = store.get_node(owner)
            if node is None:
                # Dangling owner entry (a crash between writes, or an erased profile): treat
                # the identifier as unowned rather than resurrecting a profile that is gone.
                store.del_owner(key)
                owner = None
        if owner is None:
            have = counts.get(kind, 0)
            if have + 1 > rules.rule(kind).max_per_profile:
                drop_reason[ident] = f"limit:{kind}"
                continue
            counts[kind] = have + 1
            new_idents.append(ident)
            continue
        if node is None:  # owner already in the joined view: the identifier adds nothing
            owner_of[ident] = owner
            continue
        if nodes or new_idents:  # joining something: governance applies
            violated = _violated_type(counts, node, rules)
            if violated is not None:
                drop_reason[ident] = f"limit:{violated}"
                continue
            if nodes and absorbed_total + node.absorbed + len(nodes) > rules.merge_cap:
                drop_reason[ident] = "merge_cap"
                continue
        nodes[owner] = node
        owner_of[ident] = owner
        absorbed_total += node.absorbed
        for k, values in node.identifiers.items():
            counts[k] = counts.get(k, 0) + len(values)

    # Report in event order; every distinct identifier is either accepted or dropped.
    accepted = [i for i in seen if i not in drop_reason]
    dropped = [Dropped(i, drop_reason[i]) for i in seen if i in drop_reason]

    if not nodes and not new_idents:
        return Resolution(profile_id=None, accepted=[], dropped=dropped, merges=[], created=False)

    created = False
    if not nodes:
        survivor = ProfileNode(_fresh_id(event.event_id, store), event.ts, {})
        created = True
        others: list[ProfileNode] = []
    else:
        ordered = sorted(nodes.values(), key=lambda n: (n.first_seen, n.profile_id))
        survivor, others = ordered[0], ordered[1:]

    merges: list[MergeEvent] = []
    for other in others:
        tied = [ident_key(i) for i in accepted if owner_of.get(i) == other.profile_id]
        merges.append(
            MergeEvent(
                survivor=survivor.profile_id,
                absorbed=other.profile_id,
                reason=LinkReason(
                    rule="deterministic", identifiers=tied, event_id=event.event_id, ts=event.ts
                ),
            )
        )
        for kind, values in other.identifiers.items():
            survivor.identifiers.setdefault(kind, []).extend(values)
            for value in values:
                store.set_owner(f"{kind}:{value}", survivor.profile_id)
        survivor.absorbed += 1 + other.absorbed
        survivor.first_seen = min(survivor.first_seen, other.first_seen)
        store.del_node(other.profile_id)

    # Attach new identifiers in event order (not priority order): attach order is what a
    # reader of the profile sees, and event order is the natural one.
    new_set = set(new_idents)
    attached = [i for i in accepted if i in new_set]
    for kind, value in attached:
        survivor.identifiers.setdefault(kind, []).append(value)
        store.set_owner(f"{kind}:{value}", survivor.profile_id)

    if created or others or attached:
        store.put_node(survivor)

    return Resolution(
        profile_id=survivor.profile_id,
        accepted=accepted,
        dropped=dropped,
        merges=merges,
        created=created,
    )


def _violated_type(counts: dict[str, int], node: ProfileNode, rules: Rules) -> str | None:
    """The highest-priority type whose limit joining ``node`` would break, if any.

    Only types present on both sides can break: a type the joined view does not have yet
    comes entirely from ``node``, which is then no worse than it already was.
    """
    worst: str | None = None
    worst_prio = 0
    for kind, values in node.identifiers.items():
        have = counts.get(kind, 0)
        if not have or not values:
            continue
        rule = rules.rule(kind)
        if have + len(values) > rule.max_per_profile and (
            worst is None or (-rule.priority, kind) < (-worst_prio, worst)
        ):
            worst, worst_prio = kind, rule.priority
    return worst


def _fresh_id(event_id: str, store: GraphStore) -> str:
    """``new_profile_id(event_id)``, salted deterministically in the (practically
    impossible, or rule-change-induced) case that a live profile already has that id."""
    pid = new_profile_id(event_id)
    salt = 0
    while store.get_node(pid) is not None:
        salt += 1
        pid = new_profile_id(f"{event_id}#{salt}")
    return pid
