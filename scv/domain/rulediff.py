"""What would change if recorded history were resolved under other identity rules, and why.

A data steward tuning ``rules.yaml`` (blocking a shared phone, raising the email limit)
needs to see the effect before deploying: which profiles would split, which would merge,
and which identifier or merge causes each change. This module answers that by replaying
the same events under two rule sets, each into its own :class:`GraphStore`, and comparing
the resulting event -> profile assignments.

Assignments are read from the final graph, never by following merge chains (the resolver
may also split profiles one day): an event's *anchor* is its highest-priority accepted
identifier, and its profile is whoever owns the anchor once the whole replay is done.
Events with nothing accepted belong to nobody.

Profile ids differ between the two replays even where nothing changed (an id derives from
the event that created the profile), so profiles are compared by their sets of events.
Events without a profile count as a side of their own: a profile that would gain events
that had no profile, or lose events to "no profile", is reported too.

The output names identifiers, which are personal data: it is meant for a data steward's
terminal or a file, never for an info-level log. Pure: no Kafka, no Faust.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from scv.domain.governance import Rules
from scv.domain.model import NormalizedEvent, ident_key
from scv.domain.resolver import DictStore, GraphStore, resolve

#: How many identifiers one line of the text report shows before "+K more".
_IDENTS_SHOWN = 5


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one replay decided for one event: only what the diff needs, kept compact."""

    event_id: str
    ts: float
    identifiers: tuple[str, ...]  # distinct ``type:value`` keys, event order
    dropped: tuple[tuple[str, str], ...]  # (key, reason)
    merges: tuple[tuple[str, tuple[str, ...]], ...]  # (rule, tied keys) of each merge
    profile_id: str | None  # final profile (owner of the anchor after the whole replay)

    def accepted(self) -> list[str]:
        gone = {key for key, _ in self.dropped}
        return [key for key in self.identifiers if key not in gone]


@dataclass(slots=True)
class Replay:
    """One rule set's decisions for every event, in replay order.

    ``store`` is the graph the replay built; :func:`diff` asks it who owns an identifier at
    the end, so it must stay open until the diff is computed. ``rules`` order identifiers
    in the report (strongest first, as a steward reads a profile).
    """

    outcomes: dict[str, Outcome]
    store: GraphStore
    rules: Rules


def event_time_order(events: Iterable[NormalizedEvent]) -> list[NormalizedEvent]:
    """``events`` sorted by (ts, event_id), each event id once (the first one kept).

    Replay runs in event-time order rather than topic order, so the result does not depend
    on how sources interleaved on the topic; with limits, the earliest event time wins.
    Duplicate ids are re-deliveries of one event and would otherwise be counted twice.
    """
    unique: dict[str, NormalizedEvent] = {}
    for event in events:
        unique.setdefault(event.event_id, event)
    return sorted(unique.values(), key=lambda e: (e.ts, e.event_id))


#: Events between flushes of a write-back store during a replay (bounds its memory).
FLUSH_EVERY = 1000


def replay(events: Iterable[NormalizedEvent], rules: Rules, store: GraphStore) -> Replay:
    """Resolve ``events`` in the given order into ``store`` and read back each event's profile.

    Raises ValueError on a repeated event id (use :func:`event_time_order` first).
    """
    pending: list[tuple[Outcome, str | None]] = []
    seen: set[str] = set()
    for event in events:
        if event.event_id in seen:
            raise ValueError(f"event id {event.event_id!r} appears twice")
        seen.add(event.event_id)
        res = resolve(event, store, rules)
        if len(seen) % FLUSH_EVERY == 0:
            store.flush()  # a write-back store holds what it decoded until flushed
        ranked = rules.priority_order(res.accepted)
        outcome = Outcome(
            event_id=event.event_id,
            ts=event.ts,
            identifiers=tuple(dict.fromkeys(ident_key(i) for i in event.identifiers)),
            dropped=tuple((ident_key(d.identifier), d.reason) for d in res.dropped),
            merges=tuple((m.reason.rule, tuple(m.reason.identifiers)) for m in res.merges),
            profile_id=None,
        )
        pending.append((outcome, ident_key(ranked[0]) if ranked else None))
    store.flush()
    outcomes: dict[str, Outcome] = {}
    live: dict[str, bool] = {}
    for outcome, anchor in pending:  # owner lookups only once the graph is final
        owner = store.get_owner(anchor) if anchor is not None else None
        if owner is not None and owner not in live:
            # An owner without a node (an identifier found generic later, an erased
            # profile) is nobody: the event's anchor no longer leads to a profile.
            live[owner] = store.get_node(owner) is not None
        profile = owner if owner is not None and live[owner] else None
        outcomes[outcome.event_id] = replace(outcome, profile_id=profile)
    return Replay(outcomes=outcomes, store=store, rules=rules)


# ------------------------------------------------------------------------------ result


@dataclass(frozen=True, slots=True)
class Part:
    """Events of one profile that share a profile on the other side (None: no profile)."""

    profile_id: str | None
    events: int
    identifiers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IdentChange:
    """An identifier accepted under one rule set and dropped under the other."""

    identifier: str
    reason: str  # the drop reason of the side that dropped it
    events: int
    first_event: str


@dataclass(frozen=True, slots=True)
class Link:
    """A candidate merge that joined events the baseline kept apart."""

    rule: str
    identifiers: tuple[str, ...]
    event_id: str
    ts: float


@dataclass(frozen=True, slots=True)
class MergeChange:
    """A candidate profile holding events of several baseline profiles (or of none)."""

    profile_id: str
    events: int
    identifiers: tuple[str, ...]
    sources: tuple[Part, ...]  # baseline profiles it draws from
    links: tuple[Link, ...]  # candidate merges that joined them
    newly_accepted: tuple[IdentChange, ...]  # reason = baseline's drop reason


@dataclass(frozen=True, slots=True)
class SplitChange:
    """A baseline profile whose events would spread over several candidate profiles."""

    profile_id: str
    events: int
    identifiers: tuple[str, ...]
    parts: tuple[Part, ...]  # candidate profiles it spreads over
    newly_dropped: tuple[IdentChange, ...]  # reason = candidate's drop reason


@dataclass(frozen=True, slots=True)
class RuleDiff:
    """Baseline vs candidate over the same events; every sequence is sorted."""

    events: int
    profiles_before: int
    profiles_after: int
    unchanged_profiles: int
    events_moved: int
    unassigned_before: int
    unassigned_after: int
    merges: tuple[MergeChange, ...]
    splits: tuple[SplitChange, ...]

    @property
    def empty(self) -> bool:
        return self.events_moved == 0 and not self.merges and not self.splits

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------ diff


def diff(baseline: Replay, candidate: Replay) -> RuleDiff:
    """Compare two replays of the same events (baseline rules vs candidate rules).

    ``events_moved`` counts events outside the best one-to-one continuation of profiles:
    candidate and baseline profiles are paired greedily by largest overlap, so merging a
    2-event profile into a 10-event one moves 2 events, not 12.
    """
    base, cand = baseline.outcomes, candidate.outcomes
    if base.keys() != cand.keys():
        raise ValueError("the two replays are not over the same events")
    by_base: dict[str, list[str]] = defaultdict(list)
    by_cand: dict[str, list[str]] = defaultdict(list)
    overlap: Counter[tuple[str | None, str | None]] = Counter()
    for eid, before in base.items():
        after = cand[eid].profile_id
        if before.profile_id is not None:
            by_base[before.profile_id].append(eid)
        if after is not None:
            by_cand[after].append(eid)
        overlap[(before.profile_id, after)] += 1

    kept, unchanged = 0, 0
    used_b: set[str] = set()
    used_c: set[str] = set()
    pairs = [(n, b, c) for (b, c), n in overlap.items() if b is not None and c is not None]
    for n, b, c in sorted(pairs, key=lambda p: (-p[0], p[1], p[2])):
        if b in used_b or c in used_c:
            continue
        used_b.add(b)
        used_c.add(c)
        kept += n
        unchanged += n == len(by_base[b]) == len(by_cand[c])

    merges = [
        _merge_change(pid, eids, baseline, candidate)
        for pid, eids in by_cand.items()
        if len({base[e].profile_id for e in eids}) > 1
    ]
    splits = [
        _split_change(pid, eids, baseline, candidate)
        for pid, eids in by_base.items()
        if len({cand[e].profile_id for e in eids}) > 1
    ]
    return RuleDiff(
        events=len(base),
        profiles_before=len(by_base),
        profiles_after=len(by_cand),
        unchanged_profiles=unchanged,
        events_moved=len(base) - overlap[(None, None)] - kept,
        unassigned_before=sum(1 for o in base.values() if o.profile_id is None),
        unassigned_after=sum(1 for o in cand.values() if o.profile_id is None),
        merges=tuple(sorted(merges, key=lambda m: (-len(m.sources), -m.events, m.profile_id))),
        splits=tuple(sorted(splits, key=lambda s: (-len(s.parts), -s.events, s.profile_id))),
    )


def _merge_change(pid: str, eids: list[str], baseline: Replay, candidate: Replay) -> MergeChange:
    base, cand = baseline.outcomes, candidate.outcomes
    links = []
    for eid in eids:
        c, b = cand[eid], base[eid]
        # A merge matters when it ties in an identifier the baseline did not give this
        # event's baseline profile; otherwise the baseline made the same join.
        if c.merges and any(baseline.store.get_owner(k) != b.profile_id for k in c.accepted()):
            links += [Link(rule, tied, eid, c.ts) for rule, tied in c.merges]
    return MergeChange(
        profile_id=pid,
        events=len(eids),
        identifiers=_idents(candidate, eids),
        sources=_parts(eids, baseline),
        links=tuple(sorted(links, key=lambda x: (x.ts, x.event_id, x.identifiers))),
        newly_accepted=_ident_changes(eids, gained=cand, lost=base),
    )


def _split_change(pid: str, eids: list[str], baseline: Replay, candidate: Replay) -> SplitChange:
    base, cand = baseline.outcomes, candidate.outcomes
    return SplitChange(
        profile_id=pid,
        events=len(eids),
        identifiers=_idents(baseline, eids),
        parts=_parts(eids, candidate),
        newly_dropped=_ident_changes(eids, gained=base, lost=cand),
    )


def _parts(eids: Sequence[str], side: Replay) -> tuple[Part, ...]:
    """``eids`` grouped by their profile on ``side``, each group named by the identifiers
    ``side``'s rules accepted on its events (what that profile would own)."""
    groups: dict[str | None, list[str]] = defaultdict(list)
    for eid in eids:
        groups[side.outcomes[eid].profile_id].append(eid)
    parts = [Part(p, len(g), _idents(side, g)) for p, g in groups.items()]
    return tuple(sorted(parts, key=lambda x: (-x.events, x.profile_id is None, x.profile_id or "")))


def _idents(side: Replay, eids: Iterable[str]) -> tuple[str, ...]:
    """Identifiers ``side`` accepted on ``eids``, highest priority first, then by key."""
    keys = {k for eid in eids for k in side.outcomes[eid].accepted()}
    return tuple(sorted(keys, key=lambda k: (-side.rules.rule(k.partition(":")[0]).priority, k)))


def _ident_changes(
    eids: Iterable[str], *, gained: dict[str, Outcome], lost: dict[str, Outcome]
) -> tuple[IdentChange, ...]:
    """Identifiers accepted in ``gained`` but dropped in ``lost`` on ``eids``, per
    (identifier, ``lost``'s reason), with how many events and the first of them."""
    count: Counter[tuple[str, str]] = Counter()
    first: dict[tuple[str, str], str] = {}
    for eid in eids:  # replay order, so the first hit is the earliest event
        kept = set(gained[eid].accepted())
        for key, reason in lost[eid].dropped:
            if key in kept:
                count[(key, reason)] += 1
                first.setdefault((key, reason), eid)
    changes = [IdentChange(k, r, n, first[(k, r)]) for (k, r), n in count.items()]
    return tuple(sorted(changes, key=lambda x: (-x.events, x.identifier, x.reason)))


def compare(
    events: Iterable[NormalizedEvent],
    baseline_rules: Rules,
    candidate_rules: Rules,
    stores: tuple[GraphStore, GraphStore] | None = None,
) -> RuleDiff:
    """Sort ``events`` into event-time order, replay them under both rule sets and diff.

    ``stores`` default to two in-memory :class:`DictStore` s; pass disk-backed ones for
    large histories (they must be empty).
    """
    ordered = event_time_order(events)
    base_store, cand_store = stores if stores is not None else (DictStore(), DictStore())
    return diff(
        replay(ordered, baseline_rules, base_store), replay(ordered, candidate_rules, cand_store)
    )


# ------------------------------------------------------------------------------ text


def render_text(result: RuleDiff, limit: int = 20) -> str:
    """A report for a data steward: a summary line, then merges and splits with reasons,
    at most ``limit`` of each (the largest first)."""
    d = result
    lines = [
        f"{d.events} events: profiles {d.profiles_before} -> {d.profiles_after} "
        f"({d.unchanged_profiles} unchanged), {_n(d.events_moved, 'event')} moved, "
        f"{len(d.merges)} would merge, {len(d.splits)} would split; "
        f"events without a profile {d.unassigned_before} -> {d.unassigned_after}",
    ]
    lines += ["", f"would merge ({len(d.merges)})"]
    for m in d.merges[:limit]:
        lines.append(
            f"  {m.profile_id} ({_n(m.events, 'event')}; {_show(m.identifiers)}) "
            f"joins {len(m.sources)}:"
        )
        lines += [f"    <- {_part(p)}" for p in m.sources]
        reasons = [
            f"merge {x.rule} on {', '.join(x.identifiers)} at event {x.event_id} ({_iso(x.ts)})"
            for x in m.links
        ] + [
            f"{c.identifier} accepted (baseline dropped it: {c.reason}) on "
            f"{_n(c.events, 'event')}, first {c.first_event}"
            for c in m.newly_accepted
        ]
        lines += _because(reasons, limit)
    lines += _more(len(d.merges), limit)
    lines += ["", f"would split ({len(d.splits)})"]
    for s in d.splits[:limit]:
        lines.append(
            f"  {s.profile_id} ({_n(s.events, 'event')}; {_show(s.identifiers)}) "
            f"into {len(s.parts)}:"
        )
        lines += [f"    -> {_part(p)}" for p in s.parts]
        reasons = [
            f"{c.identifier} dropped ({c.reason}) on {_n(c.events, 'event')}, first {c.first_event}"
            for c in s.newly_dropped
        ] or ["no identifier of these events is newly dropped; other profiles' changes split it"]
        lines += _because(reasons, limit)
    lines += _more(len(d.splits), limit)
    return "\n".join(lines) + "\n"


def _because(reasons: list[str], limit: int) -> list[str]:
    out = [("    because: " if i == 0 else "             ") + r for i, r in enumerate(reasons)]
    if len(out) > limit:
        out = [*out[:limit], f"             … and {len(out) - limit} more"]
    return out


def _more(total: int, limit: int) -> list[str]:
    if total == 0:
        return ["  none"]
    return [f"  … and {total - limit} more"] if total > limit else []


def _part(p: Part) -> str:
    name = p.profile_id or "(no profile)"
    return f"{name}  {_n(p.events, 'event')}  {_show(p.identifiers)}"


def _show(idents: Sequence[str]) -> str:
    if not idents:
        return "no identifiers"
    shown = ", ".join(idents[:_IDENTS_SHOWN])
    return shown + (f" +{len(idents) - _IDENTS_SHOWN} more" if len(idents) > _IDENTS_SHOWN else "")


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _iso(ts: float) -> str:
    try:
        stamp = dt.datetime.fromtimestamp(ts, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return str(ts)
    return stamp.isoformat(timespec="seconds").replace("+00:00", "Z")
