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

import unicodedata
from collections.abc import Iterable
from typing import Any

from scv.domain import households as households_mod
from scv.domain.governance import Rules
from scv.domain.graph import (
    GENERIC,
    HOUSEHOLD,
    DictStore,
    GraphStore,
    ProfileNode,
    fresh_id,
    new_profile_id,
)
from scv.domain.matching.linker import Candidate, Linker
from scv.domain.model import (
    Dropped,
    Identifier,
    LinkReason,
    MergeEvent,
    NormalizedEvent,
    Resolution,
    Split,
    ident_key,
    parse_ident,
)
from scv.domain.split import partition, people_tied_by, split_profile, stated_with

__all__ = ["CONTACT", "DictStore", "GraphStore", "ProfileNode", "new_profile_id", "resolve"]

#: Identifier type of a profile made for an event with nothing to link by but person
#: attributes (value: the event id), so that later records can still match it.
CONTACT = "contact"


def resolve(
    event: NormalizedEvent, store: GraphStore, rules: Rules, matcher: Linker | None = None
) -> Resolution:
    """Attach ``event``'s identifiers to one profile, merging the profiles they tie together.

    Governance is applied greedily in priority order (the design's "drop the
    lowest-priority identifier and retry"): each identifier is accepted only if joining it
    - and the profile that owns it - keeps every type within its ``max_per_profile``, the
    survivor within ``merge_cap``, and no banned pair together; otherwise it is dropped and
    its owner is *not* merged. Blocked and generic values never link. Limits only guard
    growth: a profile already over a limit (rules tightened later) can still be reached
    through its own identifiers, it just cannot grow further.

    The oldest involved profile (``first_seen``, then id) survives; the others are absorbed
    and reported as :class:`MergeEvent` s ordered by the same key. The event's identifier
    pairs are recorded as links on the survivor (the evidence splits replay). If a value
    now ties more people together than its type's ``generic_after`` allows, it is declared
    generic and the profile is split back (see :mod:`scv.domain.split`).

    With a ``matcher`` (off by default), an event that would create a new profile may instead
    join the profile its person attributes match (see :mod:`scv.domain.matching.linker`),
    under the same governance as a deterministic join; the evidence is a link with rule
    ``probabilistic`` and the match weight, reported as ``Resolution.match``.
    """
    # De-duplicate (the normaliser should have, but a replayed raw file might not) and block.
    idents = event.identifiers
    seen = list(dict.fromkeys(idents)) if len(idents) > 1 else list(idents)  # first one wins
    if matcher is None and seen:
        known = _on_one_profile(event, seen, store, rules)
        if known is not None:
            lives = households_mod.address_key(event.traits) if event.traits else None
            if lives is not None:  # one surname at one address: a household, never a person
                _file_households(known, [lives], event, store, rules)
            return known
    return _resolve(event, seen, store, rules, matcher)


def _on_one_profile(
    event: NormalizedEvent, seen: list[Identifier], store: GraphStore, rules: Rules
) -> Resolution | None:
    """:func:`resolve` for the commonest event: every identifier unblocked and already owned
    by one live profile (a page view by a known cookie, a login on a stitched profile). None
    for anything else, having changed nothing (it only read owners and the node).

    Nothing can be refused then (governance only weighs what joins the first profile), so
    the greedy walk, its bookkeeping and the matcher's branches are skipped; what is left
    is exactly the general path's tail for that case: first-seen, origins, links, the
    generic check. ``tests/unit/test_resolver.py`` checks both paths agree.
    """
    if len(rules.unblocked(seen)) < len(seen):
        return None
    ranked = rules.priority_order(seen) if len(seen) > 1 else seen
    get_owner = store.get_owner
    anchor = ranked[0]
    anchor_key = f"{anchor[0]}:{anchor[1]}"
    owner = get_owner(anchor_key)
    if owner is None or owner == GENERIC:
        return None
    keys = []
    for ident in seen:
        key = f"{ident[0]}:{ident[1]}"
        if ident is not anchor and get_owner(key) != owner:
            return None
        keys.append(key)
    survivor = store.get_node(owner)
    if survivor is None:  # a dangling owner entry: the general path drops it
        return None

    ts, event_id = event.ts, event.event_id
    changed = False
    if ts < survivor.first_seen:  # a late, older event: survivorship goes by event time
        survivor.first_seen = ts
        changed = True
    linked: list[str] = []
    add_origin, add_link = survivor.add_origin, survivor.add_link
    for ident, key in zip(seen, keys, strict=True):
        if add_origin(key, ts, event_id):
            changed = True
        if ident != anchor and add_link(anchor_key, key, "deterministic", event_id, ts, None):
            changed = True
            linked += [anchor_key, key]
    if len(ranked) > 2 and _link_around_second(survivor, ranked, event_id, ts, rules, linked):
        changed = True
    name = first_name(event)
    if name is not None and _note_name(survivor, keys, name, rules, linked):
        changed = True
    if changed:
        store.put_node(survivor)
    res = Resolution(owner, seen, [], [], False, anchor)
    if linked:  # new evidence: a value may now tie more people than its type allows
        _find_generic(survivor, dict.fromkeys(linked), event, store, rules, res)
    return res


def _resolve(
    event: NormalizedEvent,
    seen: list[Identifier],
    store: GraphStore,
    rules: Rules,
    matcher: Linker | None,
) -> Resolution:
    """:func:`resolve` in general, for the de-duplicated identifiers ``seen``."""
    drop_reason: dict[Identifier, str] = {}
    drop_owner: dict[Identifier, str] = {}
    candidates = rules.unblocked(seen)
    if len(candidates) < len(seen):
        for ident in seen:
            if ident not in candidates:
                drop_reason[ident] = "blocked"

    # Greedy walk, highest priority first, over a growing "joined" view: the involved
    # profiles (``nodes``) and the accepted identifiers nobody owned (``new_idents``).
    nodes: dict[str, ProfileNode] = {}  # involved profiles, fetched once each
    owner_of: dict[Identifier, str] = {}  # accepted identifiers that already had an owner
    new_idents: list[Identifier] = []  # accepted identifiers nobody owned
    counts: dict[str, int] = {}  # per-type distinct identifiers in the joined view
    absorbed_total = 0  # sum of the involved profiles' own ``absorbed`` counts
    view_bans: set[str] = set()  # keys the joined view must never take in
    contested: list[str] = []  # limited types this (older) event takes from younger evidence
    get_owner = store.get_owner
    ranked = rules.priority_order(candidates) if len(candidates) > 1 else candidates
    for ident in ranked:
        kind = ident[0]
        key = f"{kind}:{ident[1]}"
        owner = get_owner(key)
        if owner == GENERIC:
            drop_reason[ident] = "generic"
            continue
        if owner == HOUSEHOLD:
            drop_reason[ident] = "household"
            continue
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
                if not _newer_evidence(event, nodes.values()) or not _contest_changes(
                    event, [*nodes.values()], new_idents, None, ident, rules
                ):
                    drop_reason[ident] = f"limit:{kind}"
                    continue
                contested.append(kind)  # older than what fills the slot: see below
            if key in view_bans:
                drop_reason[ident] = "banned"
                continue
            counts[kind] = have + 1
            new_idents.append(ident)
            continue
        if node is None:  # owner already in the joined view: the identifier adds nothing
            owner_of[ident] = owner
            continue
        if nodes or new_idents:  # joining something: governance applies
            reason = _refusal(node, counts, absorbed_total, nodes, new_idents, view_bans, rules)
            if reason is not None and reason.startswith("limit:"):
                kind_at_limit = reason.partition(":")[2]
                if _newer_evidence(event, [*nodes.values(), node]) and _contest_changes(
                    event, [*nodes.values()], new_idents, node, ident, rules
                ):
                    # Older evidence takes the slot (the split below decides who keeps
                    # what); the merge cap and bans still apply.
                    reason = _refusal(node, {}, absorbed_total, nodes, new_idents, view_bans, rules)
                    if reason is None:
                        contested.append(kind_at_limit)
            if reason is not None:
                drop_reason[ident] = reason
                drop_owner[ident] = owner
                continue
        nodes[owner] = node
        owner_of[ident] = owner
        absorbed_total += node.absorbed
        for k, values in node.identifiers.items():
            counts[k] = counts.get(k, 0) + len(values)
        if node.bans:
            view_bans |= node.ban_targets()

    record = matcher.record(event) if matcher is not None else {}
    match = None
    matches: dict[str, Candidate] = {}  # profile id -> the match that brings it in
    review: dict[str, Any] | None = None
    searched = matcher is not None and not nodes  # this event's record was matched already
    if matcher is not None and not nodes:
        match = matcher.find(record, store)
        sure = match is not None and match.decision == "match"
        if not seen and not sure and matcher.worth(record):
            # A person who stated no identifier (a withheld-number call) and nobody sure to
            # be them yet: a profile of their own under the event's contact id, which later
            # records can match (the person's order may simply not have arrived yet). An
            # event whose identifiers were all junk is test traffic and gets none.
            contact = (CONTACT, event.event_id)
            seen.append(contact)
            new_idents.append(contact)
            counts[CONTACT] = 1
        if match is not None and not new_idents:
            pass  # nothing of the event's own to link: attached below
        elif match is not None and match.decision == "possible":
            review = {
                "candidate": match.node.profile_id,
                "candidate_identifier": match.key,
                "score": match.score,
                "weights": match.weights,
                "upper": matcher.upper,
                "lower": matcher.model.lower,
            }
            match = None
        elif match is not None:
            # Every profile the record matches joins (one person seen twice before without
            # a link between the records), each under governance like a deterministic join.
            for cand in (match, *match.also):
                refused = _refusal(
                    cand.node, counts, absorbed_total, nodes, new_idents, view_bans, rules
                )
                if refused is not None:
                    matcher.stats["refused"] += 1
                    continue
                matches[cand.node.profile_id] = cand
                nodes[cand.node.profile_id] = cand.node
                absorbed_total += cand.node.absorbed
                for k, values in cand.node.identifiers.items():
                    counts[k] = counts.get(k, 0) + len(values)
                if cand.node.bans:
                    view_bans |= cand.node.ban_targets()
            match = next(iter(matches.values()), None)

    # Report in event order; every distinct identifier is either accepted or dropped.
    if drop_reason:
        accepted = [i for i in seen if i not in drop_reason]
        dropped = [Dropped(i, drop_reason[i], drop_owner.get(i)) for i in seen if i in drop_reason]
    else:
        accepted, dropped = seen, []

    if not nodes and not new_idents:
        if match is not None and match.decision == "match":
            # Nothing usable to link (no identifier, or only blocked/generic ones): the
            # event still belongs to the person its attributes name.
            res = _attach_by_attributes(event, match, dropped)
        else:
            res = Resolution(None, [], dropped, [], False)
        shared = [ident_key(d.identifier) for d in dropped if d.reason == "household"]
        if shared and res.profile_id is None and _follow_session(res, shared, event, store, rules):
            return res  # the person logged in on this shared device in this session
        if shared:
            _file_households(res, shared, event, store, rules)
        return res

    created = False
    others: list[ProfileNode] = []
    if not nodes:
        survivor = ProfileNode(fresh_id(event.event_id, store), event.ts, {})
        created = True
    elif len(nodes) == 1:
        survivor = next(iter(nodes.values()))
    else:
        ordered = sorted(nodes.values(), key=lambda n: (n.first_seen, n.profile_id))
        survivor, others = ordered[0], ordered[1:]
    survivor_id = survivor.profile_id

    # The anchor (highest priority) is the end of every link this event records. With
    # nothing dropped, every candidate was accepted and ``ranked`` is already in that order.
    if ranked and not drop_reason:
        anchor = ranked[0]
    else:
        anchor = accepted[0] if len(accepted) == 1 else rules.priority_order(accepted)[0]
    anchor_key = f"{anchor[0]}:{anchor[1]}"
    merges: list[MergeEvent] = []
    for other in others:
        by_match = matches.get(other.profile_id)
        if by_match is not None:
            merge_reason = LinkReason(
                "probabilistic",
                [anchor_key, by_match.key],
                event.event_id,
                event.ts,
                by_match.score,
            )
        else:
            tied = [ident_key(i) for i in accepted if owner_of.get(i) == other.profile_id]
            merge_reason = LinkReason("deterministic", tied, event.event_id, event.ts)
        merges.append(MergeEvent(survivor_id, other.profile_id, merge_reason))
        survivor.take(other)
        for key in other.keys():
            store.set_owner(key, survivor_id)
        store.del_node(other.profile_id)

    # Attach new identifiers in event order (not priority order): attach order is what a
    # reader of the profile sees, and event order is the natural one.
    attached: list[Identifier] = []
    if new_idents:
        new_set = set(new_idents)
        attached = [i for i in accepted if i in new_set]
        owned = survivor.identifiers
        for kind, value in attached:
            owned.setdefault(kind, []).append(value)
            store.set_owner(f"{kind}:{value}", survivor_id)

    # Evidence: the event ties its anchor to each other identifier.
    ts, event_id = event.ts, event.event_id
    changed = bool(created or others or attached)
    if ts < survivor.first_seen:  # a late, older event: survivorship goes by event time
        survivor.first_seen = ts
        changed = True
    linked: list[str] = []
    for cand in matches.values():
        changed |= survivor.add_link(
            anchor_key, cand.key, "probabilistic", event_id, ts, cand.score
        )
    learned = False
    if matcher is not None and record:
        learned = matcher.remember(record, survivor, anchor_key, store)
        changed |= learned
    add_origin, add_link = survivor.add_origin, survivor.add_link
    for ident in accepted:
        key = f"{ident[0]}:{ident[1]}"
        if add_origin(key, ts, event_id):
            changed = True
        if ident != anchor and add_link(anchor_key, key, "deterministic", event_id, ts, None):
            changed = True
            linked += [anchor_key, key]
    if len(accepted) > 2:
        order = rules.priority_order(accepted)
        if _link_around_second(survivor, order, event_id, ts, rules, linked):
            changed = True
    name = first_name(event)
    if name is not None and _note_name(
        survivor, [ident_key(i) for i in accepted], name, rules, linked
    ):
        changed = True
    refused_on: list[str] = []  # identifiers a limit refused (the far side may be shared)
    # A link a limit refused is kept as evidence (one end outside this profile): if older
    # evidence is contested later, the replay in event-time order must see it. A refused
    # identifier nobody owned gets a profile of its own: it is somebody, just not this one.
    for ident in seen if drop_reason else ():
        if drop_reason.get(ident, "").startswith("limit:"):
            key = ident_key(ident)
            link = (anchor_key, key, "deterministic", event_id, ts, None)
            changed |= survivor.add_link(*link)
            far = store.get_node(drop_owner[ident]) if ident in drop_owner else None
            if far is None and store.get_owner(key) is None:
                far = _set_aside(ident, event, store)
            if far is not None and far.add_link(*link):  # both sides keep the evidence
                store.put_node(far)
                refused_on.append(key)
    if changed:
        store.put_node(survivor)

    res = Resolution(survivor_id, accepted, dropped, merges, created, anchor)
    if review is not None:
        res.review = review
    if match is not None:
        res.match = LinkReason("probabilistic", [anchor_key, match.key], event_id, ts, match.score)
    if contested:
        # This event is older than evidence that holds a limited slot: replay the combined
        # evidence in event-time order, so the earliest event wins whatever the arrival order.
        why = LinkReason(f"limit:{contested[0]}", [], event_id, ts)
        res.merges += _pull_in_refused(survivor, store, why, rules)
        split = split_profile(survivor, store, rules, why)
        if split is not None:
            res.splits.append(split)
            _rehome(res, store, rules, set())
    elif linked:  # new evidence: a value may now tie more people than its type allows
        _find_generic(survivor, dict.fromkeys(linked), event, store, rules, res)
    if contested or refused_on:
        # A refused link is evidence against the value on the far side too: a tablet a
        # second person logged in on is shared, whichever profile holds it (and after a
        # contest's replay, whichever part).
        for ident in seen:
            if not rules.rule(ident[0]).household:
                continue
            key = ident_key(ident)
            owner = store.get_owner(key)
            node = store.get_node(owner) if owner is not None and owner[0] != "!" else None
            if node is not None:
                home = owner == res.profile_id
                _find_generic(node, {key: None}, event, store, rules, res, rehome=home)
    if learned and matcher is not None and not searched and not res.splits:
        _merge_matching_profiles(survivor, record, anchor_key, event, store, rules, matcher, res)
    shared = [ident_key(i) for i in seen if drop_reason.get(i) == "household"]
    if shared and res.profile_id is not None:
        _note_session(res.profile_id, shared, event, store)
    lives = households_mod.address_key(event.traits) if event.traits else None
    if lives is not None and res.profile_id is not None:
        shared.append(lives)  # one surname at one address: a household, never a person
    if shared:
        _file_households(res, shared, event, store, rules)
    return res


def _merge_matching_profiles(
    survivor: ProfileNode,
    record: dict[str, str],
    anchor_key: str,
    event: NormalizedEvent,
    store: GraphStore,
    rules: Rules,
    matcher: Linker,
    res: Resolution,
) -> None:
    """A profile that just learned attributes looks for the profiles they match.

    Matching only when a new profile is created would make the result depend on arrival
    order: a call stating a name and birth date that is processed before the person's order
    would never meet it. So every new record is matched, in both directions; each match is
    merged under governance, with the score as the merge's reason.
    """
    found = matcher.find(record, store, exclude=survivor.profile_id)
    if found is None or found.decision != "match":
        return
    for cand in (found, *found.also):
        other = cand.node
        counts = {kind: len(values) for kind, values in survivor.identifiers.items()}
        refused = refusal(
            other, counts, survivor.absorbed, 1, set(survivor.keys()), survivor.ban_targets(), rules
        )
        if refused is not None:
            matcher.stats["refused"] += 1
            continue
        keep, gone = sorted((survivor, other), key=lambda n: (n.first_seen, n.profile_id))
        why = LinkReason(
            "probabilistic", [anchor_key, cand.key], event.event_id, event.ts, cand.score
        )
        keep.take(gone)
        keep.add_link(anchor_key, cand.key, "probabilistic", event.event_id, event.ts, cand.score)
        for key in gone.keys():
            store.set_owner(key, keep.profile_id)
        store.del_node(gone.profile_id)
        store.put_node(keep)
        res.merges.append(MergeEvent(keep.profile_id, gone.profile_id, why))
        survivor = keep
    res.profile_id = survivor.profile_id


#: Most profiles a contested limit pulls in through refused links (a fuse, like merge_cap).
MAX_REPLAY_PROFILES = 50


def _pull_in_refused(
    survivor: ProfileNode, store: GraphStore, why: LinkReason, rules: Rules
) -> list[MergeEvent]:
    """Merge in the profiles at the far end of the survivor's refused links (transitively):
    a replay in event-time order may now accept those links, so it must see both sides."""
    merges: list[MergeEvent] = []
    while len(merges) < MAX_REPLAY_PROFILES:
        own = set(survivor.keys())
        far = sorted({k for link in survivor.links for k in link[:2] if k not in own})
        owners = dict.fromkeys(store.get_owner(k) for k in far)
        others = [
            node
            for pid in owners
            if pid is not None and pid != GENERIC and pid != survivor.profile_id
            if (node := store.get_node(pid)) is not None
        ]
        if not others:
            break
        others = [n for n in others if survivor.absorbed + 1 + n.absorbed <= rules.merge_cap][
            : MAX_REPLAY_PROFILES - len(merges)
        ]
        if not others:
            break
        for other in sorted(others, key=lambda n: (n.first_seen, n.profile_id)):
            if survivor.absorbed + 1 + other.absorbed > rules.merge_cap:
                continue
            tied = [k for k in far if store.get_owner(k) == other.profile_id]
            reason = LinkReason(why.rule, tied, why.event_id, why.ts)
            merges.append(MergeEvent(survivor.profile_id, other.profile_id, reason))
            survivor.take(other)
            for key in other.keys():
                store.set_owner(key, survivor.profile_id)
            store.del_node(other.profile_id)
    store.put_node(survivor)
    return merges


def _set_aside(ident: Identifier, event: NormalizedEvent, store: GraphStore) -> ProfileNode:
    """A profile of its own for an identifier a limit kept off this event's profile."""
    key = ident_key(ident)
    pid = fresh_id(f"{event.event_id}/{key}", store)
    node = ProfileNode(pid, event.ts, {ident[0]: [ident[1]]})
    node.add_origin(key, event.ts, event.event_id)
    store.set_owner(key, pid)
    return node


def _contest_changes(
    event: NormalizedEvent,
    view: list[ProfileNode],
    new_idents: list[Identifier],
    contender: ProfileNode | None,
    ident: Identifier,
    rules: Rules,
) -> bool:
    """Would replaying the evidence in event-time order group things differently from
    simply refusing ``ident`` (and ``contender``, the profile that owns it)?

    Most late events change nothing: then the refusal stands and no profile is merged and
    split back (which would cost consumers a new id each time).
    """
    combined = ProfileNode("", event.ts)
    for node in [*view, *([contender] if contender is not None else [])]:
        combined.take(ProfileNode.from_dict(node.to_dict()))
    keys = set(combined.keys())
    for kind, value in [*new_idents, *([ident] if contender is None else [])]:
        combined.identifiers.setdefault(kind, []).append(value)
        combined.add_origin(f"{kind}:{value}", event.ts, event.event_id)
        keys.add(f"{kind}:{value}")
    present = [i for i in rules.priority_order(event.identifiers) if ident_key(i) in keys]
    if present:
        anchor = ident_key(present[0])
        for other in present[1:]:
            combined.add_link(
                anchor, ident_key(other), "deterministic", event.event_id, event.ts, None
            )
    refused = set(contender.keys()) if contender is not None else {ident_key(ident)}
    expected = {frozenset(keys - refused), frozenset(refused)}
    return {frozenset(g) for g in partition(combined, rules)} != expected


def _newer_evidence(event: NormalizedEvent, nodes: Iterable[ProfileNode]) -> bool:
    """True when ``nodes`` hold evidence younger than ``event``: the limit it hit may have
    been filled by something that, in event-time order, came after it. Younger in the
    order a split replays links, ``(ts, event_id)``: two events of the same instant are
    ordered by id, or the first to arrive would keep a slot the replay gives the other."""
    at = (event.ts, event.event_id)
    return any((float(link[4]), str(link[3])) > at for node in nodes for link in node.links) or any(
        (float(origin[0]), str(origin[1])) > at
        for node in nodes
        for origin in node.origins.values()
    )


def _attach_by_attributes(
    event: NormalizedEvent, match: Candidate, dropped: list[Dropped]
) -> Resolution:
    """The event joins the matched profile under the identifier that led to it, adding no
    identifier and changing no graph state. (A mere possible match leaves it unattached:
    a reviewer would have no identifier of the event's to link.)"""
    kind, _, value = match.key.partition(":")
    res = Resolution(
        profile_id=match.node.profile_id,
        accepted=[],
        dropped=dropped,
        merges=[],
        created=False,
        anchor=(kind, value),
    )
    res.match = LinkReason("probabilistic", [match.key], event.event_id, event.ts, match.score)
    return res


def refusal(
    node: ProfileNode,
    counts: dict[str, int],
    absorbed_total: int,
    joined: int,
    view_keys: set[str],
    view_bans: set[str],
    rules: Rules,
) -> str | None:
    """Why ``node`` may not join the view, or None."""
    violated = _violated_type(counts, node, rules)
    if violated is not None:
        return f"limit:{violated}"
    if joined and absorbed_total + node.absorbed + joined > rules.merge_cap:
        return "merge_cap"
    keys = node.keys()
    if view_bans.intersection(keys) or node.ban_targets() & view_keys:
        return "banned"
    return None


def _refusal(
    node: ProfileNode,
    counts: dict[str, int],
    absorbed_total: int,
    nodes: dict[str, ProfileNode],
    new_idents: list[Identifier],
    view_bans: set[str],
    rules: Rules,
) -> str | None:
    """:func:`refusal` for the resolver's joined view (``nodes`` and ``new_idents``), whose
    keys are only listed when ``node`` has bans to check them against."""
    violated = _violated_type(counts, node, rules)
    if violated is not None:
        return f"limit:{violated}"
    joined = len(nodes)
    if joined and absorbed_total + node.absorbed + joined > rules.merge_cap:
        return "merge_cap"
    if view_bans and not view_bans.isdisjoint(node.keys()):
        return "banned"
    if node.bans:
        view_keys = {k for other in nodes.values() for k in other.keys()}
        view_keys.update(ident_key(i) for i in new_idents)
        if node.ban_targets() & view_keys:
            return "banned"
    return None


def _link_around_second(
    node: ProfileNode,
    ranked: list[Identifier],
    event_id: str,
    ts: float,
    rules: Rules,
    linked: list[str],
) -> bool:
    """When the event's anchor is a value people may share, tie its second identifier to
    the others as well: if the anchor is later found shared and leaves, what the event said
    of the rest (this cookie and this phone are one person's) still holds them together,
    whichever order the events arrived in. True if a link is new."""
    if not rules.rule(ranked[0][0]).household:
        return False
    second = f"{ranked[1][0]}:{ranked[1][1]}"
    changed = False
    for kind, value in ranked[2:]:
        key = f"{kind}:{value}"
        if node.add_link(second, key, "deterministic", event_id, ts, None):
            changed = True
            linked += [second, key]
    return changed


def first_name(event: NormalizedEvent) -> str | None:
    """The event's first name, folded (case, accents, spacing), or None when it has none."""
    raw = event.traits.get("first_name")
    if not isinstance(raw, str):
        return None
    folded = "".join(ch for ch in unicodedata.normalize("NFKD", raw.casefold()) if ch.isalpha())
    return folded or None


def _note_name(
    node: ProfileNode, keys: list[str], name: str, rules: Rules, touched: list[str]
) -> bool:
    """Note ``name`` on each of the event's ``keys``; a shareable value that learnt a new
    name is ``touched`` (the generic check looks at it again). True if anything changed."""
    changed = False
    for key in keys:
        if node.add_name(key, name):
            changed = True
            if rules.rule(key.partition(":")[0]).household:
                touched.append(key)
    return changed


def _find_generic(
    node: ProfileNode,
    touched: dict[str, None],
    event: NormalizedEvent,
    store: GraphStore,
    rules: Rules,
    res: Resolution,
    rehome: bool = True,
) -> None:
    """Declare every touched value that now ties two or more people a household value (a
    type the rules let households share) or, past its type's ``generic_after``, generic;
    split them off.

    With ``rehome`` (``node`` is the event's profile) the event is then re-homed: it stays
    with the part that owns its anchor, and loses the identifiers that went generic or
    ended up in another part.
    """
    found: list[tuple[int, str, bool]] = []  # (priority, key, a household's)
    for key in touched:
        rule = rules.rule(key.partition(":")[0])
        limit = rule.generic_after
        if limit is None:
            continue
        least = 2 if rule.household else limit + 1
        if not _may_tie(node, key, least, rules):
            continue
        people = people_tied_by(node, key, rules)
        if people >= least:
            found.append((rule.priority, key, people <= limit))
    if not found:
        return
    # The weakest values first: a front-desk phone that tied Ann's group to Bob's explains
    # why Bob's own email now seems to tie two people too; once the phone is split off,
    # the others are judged again on what is left.
    weakest = min(priority for priority, _, _ in found)
    shared = [key for priority, key, _ in found if priority == weakest]
    households = [key for priority, key, home in found if priority == weakest and home]
    later = [key for priority, key, _ in found if priority != weakest]
    why = "household" if len(households) == len(shared) else "generic"
    reason = LinkReason(why, shared, event.event_id, event.ts)
    tied = {key: _neighbours(node, key) for key in households}
    split = split_profile(
        node,
        store,
        rules,
        reason,
        frozenset(shared),
        generic=True,
        households=frozenset(households),
    )
    if split is None:
        return
    split.households = households
    res.splits.append(split)
    _keep_members(node, split, shared, store, rules, res)
    res.generic += [k for k in shared if k not in households]
    res.households += households
    for key in households:  # the people it tied are its household's first members
        members = [m for n in tied[key] if (m := _member_key(store, store.get_owner(n), rules))]
        _record(
            res,
            households_mod.note(store, [key], members, event.ts, event.event_id, _cap(key, rules)),
        )
    if rehome:
        _rehome(res, store, rules, set(shared), set(households))
    for key in later:
        owner = store.get_owner(key)
        part = store.get_node(owner) if owner is not None and owner[0] != "!" else None
        if part is not None:
            home = rehome and owner == res.profile_id
            _find_generic(part, {key: None}, event, store, rules, res, rehome=home)


def _keep_members(
    node: ProfileNode,
    split: Split,
    shared: list[str],
    store: GraphStore,
    rules: Rules,
    res: Resolution,
) -> None:
    """A value found shared may have been the key ``node``'s person was a household member
    under (their household's family email): the member stays, under a key of the part that
    kept the profile (else the first part)."""
    for key in shared:
        if households_mod.of_member(store, key) is None:
            continue
        owner = node.profile_id if node.profile_id in split.parts else next(iter(split.parts), None)
        new = _member_key(store, owner, rules)
        if new is not None:
            _record(res, households_mod.move_member(store, key, new))


def _neighbours(node: ProfileNode, key: str) -> list[str]:
    """The identifiers ``key`` has a link to (on this profile or refused from another)."""
    out: dict[str, None] = {}
    for link in node.links:
        if link[0] == key:
            out[link[1]] = None
        elif link[1] == key:
            out[link[0]] = None
    return list(out)


def _member_key(store: GraphStore, owner: str | None, rules: Rules) -> str | None:
    """The identifier a person is a household member under: the one they already are a
    member under, else their strongest (it stays with them through merges)."""
    node = store.get_node(owner) if owner is not None and owner[0] != "!" else None
    if node is None:
        return None
    keys = node.keys()
    for key in keys:
        if households_mod.of_member(store, key) is not None:
            return key
    return min(keys, key=lambda k: (-rules.rule(k.partition(":")[0]).priority, k), default=None)


def _cap(key: str, rules: Rules) -> int:
    """The most people a household sharing ``key`` may hold (its type's ``generic_after``;
    for an address, the largest any shared type allows)."""
    kind = key.partition(":")[0]
    if kind == households_mod.ADDRESS:
        return max(
            (r.generic_after or 1 for r in rules.identifiers.values() if r.household), default=1
        )
    return rules.rule(kind).generic_after or 1


def _record(res: Resolution, change: households_mod.HouseholdChange) -> None:
    if res.household_change is None:
        res.household_change = change
    else:
        res.household_change.add(change)


def _file_households(
    res: Resolution, values: list[str], event: NormalizedEvent, store: GraphStore, rules: Rules
) -> None:
    """The event named shared ``values``: its person joins their household (or the event
    is the household's own, when it names nobody else); a value whose household is full
    ties more people than a household holds and becomes generic."""
    member = _member_key(store, res.profile_id, rules) if res.profile_id else None
    address = event.traits.get("address")
    change = households_mod.note(
        store,
        values,
        [member] if member else [],
        event.ts,
        event.event_id,
        min(_cap(v, rules) for v in values),
        address if isinstance(address, dict) else None,
    )
    _record(res, change)
    if change.full:
        values = [v for v in values if not v.startswith(households_mod.ADDRESS + ":")]
        for value in values:
            _record(res, households_mod.escalate(store, value, GENERIC))
        res.generic += values
        res.dropped = [
            Dropped(d.identifier, "generic") if ident_key(d.identifier) in values else d
            for d in res.dropped
        ]


#: Owners-map prefix of a session on a shared device -> the profile logged in on it.
SESSION_PREFIX = "\x00s:"
#: Identifier types of devices: a session on a shared one follows the person logged in.
DEVICE_TYPES = frozenset({"anonymous_id", "device_id"})


def _session_on_shared_device(shared: list[str], event: NormalizedEvent) -> str | None:
    session = event.payload.get("session_id")
    if not isinstance(session, str) or not session:
        return None
    if not any(key.partition(":")[0] in DEVICE_TYPES for key in shared):
        return None
    return session


def _note_session(pid: str, shared: list[str], event: NormalizedEvent, store: GraphStore) -> None:
    """A person named on a shared device: the rest of this session on it is theirs."""
    session = _session_on_shared_device(shared, event)
    if session is not None and store.get_owner(SESSION_PREFIX + session) != pid:
        store.set_owner(SESSION_PREFIX + session, pid)


def _follow_session(
    res: Resolution, shared: list[str], event: NormalizedEvent, store: GraphStore, rules: Rules
) -> bool:
    """An event that names only a shared device: the person who logged in on it in the
    same session, if any (and still a live profile), gets it, filed under the strongest
    identifier they have. True if so."""
    session = _session_on_shared_device(shared, event)
    pid = store.get_owner(SESSION_PREFIX + session) if session is not None else None
    node = store.get_node(pid) if pid is not None and pid[0] != "!" else None
    if node is None:
        return False
    anchor = min(node.keys(), key=lambda k: (-rules.rule(k.partition(":")[0]).priority, k))
    res.profile_id, res.anchor = node.profile_id, parse_ident(anchor)
    return True


def _may_tie(node: ProfileNode, key: str, least: int, rules: Rules) -> bool:
    """False when ``people_tied_by(node, key, rules)`` cannot reach ``least`` (so the
    union-find behind it can be skipped, as it is for most values a profile is touched by).

    Per type, the profile's identifiers other than ``key`` and the identifiers of other
    profiles it has refused links to bound what ``key`` can tie; and ``key`` needs at
    least ``least`` neighbours to tie that many people.
    """
    kind, _, value = key.partition(":")
    neighbours: set[str] = set()
    for link in node.links:
        if link[0] == key:
            neighbours.add(link[1])
        elif link[1] == key:
            neighbours.add(link[0])
    if node.names:
        stated = {n for names in node.names.values() for n in names}
        if len(stated) >= least:
            return True
    if len(neighbours) < least:
        return False
    counts: dict[str, int] = {}
    for k, values in node.identifiers.items():
        counts[k] = len(values) - values.count(value) if k == kind else len(values)
    inside = set(node.keys())
    for n in neighbours:
        if n not in inside:
            k = n.partition(":")[0]
            counts[k] = counts.get(k, 0) + 1
    if any(-(-n // rules.rule(k).max_per_profile) >= least for k, n in counts.items()):
        return True
    return stated_with(neighbours, rules.rule(kind).priority, rules) >= least


def _rehome(
    res: Resolution,
    store: GraphStore,
    rules: Rules,
    gone: set[str],
    households: set[str] | frozenset[str] = frozenset(),
) -> None:
    """After a split: the event stays with the part that owns its anchor and loses the
    identifiers that went generic or to a household (``gone``, of which ``households``)
    or ended up in another part."""
    remaining = [i for i in res.accepted if ident_key(i) not in gone]
    res.anchor = rules.priority_order(remaining)[0] if remaining else None
    owner = store.get_owner(ident_key(res.anchor)) if res.anchor is not None else None
    res.profile_id = owner
    keep = [i for i in remaining if owner is not None and store.get_owner(ident_key(i)) == owner]
    for ident in res.accepted:
        if ident not in keep:
            key = ident_key(ident)
            reason_text = (
                ("household" if key in households else "generic") if key in gone else "split"
            )
            res.dropped.append(Dropped(ident, reason_text))
    res.accepted = keep


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
