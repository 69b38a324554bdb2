"""What a pipeline run left on its output topics, and how two runs' outcomes compare.

``scv bench chaos`` runs the same workload twice, once without faults and once while
workers are killed, and compares what an activation service would read: ``profiles.v1``
(last value per key, tombstones delete) and ``actions.v1``. Pure functions over decoded
records, so the comparison itself is unit-tested (tests/unit/test_outcome.py).

Fair but not blind. A crash makes the faulty run read the four raw topics in another
interleaving than the reference, and some outcomes legitimately depend on arrival order;
measured between a fast and a paced fault-free run of the same 20k events: profile ids,
how many profiles were made and then merged (``merged_from``), float sums of order totals,
which visit a churn offer follows, and consent where a denial was followed by a later grant
(one person's events in one profile: the latest statement wins; the same events first on
two profiles that are then merged: the denial wins, by design). So profiles are matched by
their identifier set; ids, ``merged_from`` and ``open_carts[].due_at`` (processing
wall-clock) are left out, totals compared to the cent. A consent difference of exactly
that denial-then-later-grant shape, and the visit fields of an action, are counted apart
as ``order_sensitive``; so are, for those profiles only, what that consent gates: the churn
flag (kept while consent blocks the offer) and an action one run sent and the other did
not. Everything else must be equal: identifiers, traits, consent
purposes and any other consent difference, channels, carts, orders, churn flag,
``created_ts``/``updated_ts``, last activity and ``event_count`` (an event lost or applied
twice shows there). Actions are matched by ``action_id``, derived from the subject (cart,
call) and never from the profile.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from scv.domain.profile import ProfileState, snapshot

#: Fields of an action that are processing wall-clock or a profile id.
VOLATILE_ACTION_FIELDS = ("created_at", "profile_id")
#: Fields naming the visit an action followed (which one was fresh depends on arrival).
VISIT_FIELDS = ("trigger_event_id", "event_ts")
VISIT_PAYLOAD_FIELDS = ("session_id", "anonymous_id")
#: What consent gates in a snapshot: the churn flag stays open while consent blocks the offer.
CONSENT_GATED = frozenset({"churn_risk"})


@dataclass(slots=True)
class Outcome:
    """Decoded output of one run.

    ``profiles``: live ``profiles.v1`` values by key. ``actions``: every ``actions.v1``
    value in topic order, duplicates included. ``states``: the last value per key of the
    ``profiles`` table's changelog (profile states and merge markers), when it was read.
    ``duplicate_merges``: repeated records on ``profiles.merges.v1`` (an audit trail that a
    resolver redo may repeat: at least once).
    """

    profiles: dict[str, dict[str, Any]]
    actions: list[dict[str, Any]]
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicate_merges: int = 0
    #: repeated records per audit topic (merges, audit, review, the DLQs): at least once
    #: allows them, exactly once does not
    duplicates: dict[str, int] = field(default_factory=dict)


#: Fields of an audit record that are processing wall-clock: a repeat differs only there.
VOLATILE_RECORD_FIELDS = ("processed_at",)


def repeated(
    values: Iterable[bytes | None], headers: Iterable[Mapping[str, bytes]] | None = None
) -> int:
    """How many records repeat an earlier one (a JSON object compared without its
    processing-time fields; anything else byte for byte). With ``headers`` (one mapping per
    value) they count too: two malformed inputs can have the same bytes (``[]``), while
    their dead letters name different offsets."""
    seen: Counter[bytes] = Counter()
    tags = iter(headers) if headers is not None else None
    for value in values:
        tag = next(tags) if tags is not None else {}
        if value is None:
            continue
        try:
            body = orjson.loads(value)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            for name in VOLATILE_RECORD_FIELDS:
                body.pop(name, None)
            value = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        if tag:
            value += b"\x00" + orjson.dumps(
                {k: v.decode(errors="replace") for k, v in tag.items()},
                option=orjson.OPT_SORT_KEYS,
            )
        seen[value] += 1
    return sum(n - 1 for n in seen.values())


def identity_key(profile: Mapping[str, Any]) -> tuple[str, ...]:
    """A profile's identifier set, sorted: what stays the same whatever id it was given."""
    return tuple(
        sorted(f"{kind}:{v}" for kind, values in profile["identifiers"].items() for v in values)
    )


def canonical(profile: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot without its id, processing-time fields or other entities' ids (a
    household's id, like a profile's, comes from the event that founded it, which arrival
    order may change; who is in it does not)."""
    dropped = ("profile_id", "merged_from", "household_id")
    body = {k: v for k, v in profile.items() if k not in dropped}
    body["in_household"] = profile.get("household_id") is not None
    body["identifiers"] = {k: sorted(v) for k, v in sorted(profile["identifiers"].items())}
    body["open_carts"] = [
        {k: v for k, v in cart.items() if k != "due_at"} for cart in profile.get("open_carts") or []
    ]
    orders = dict(profile.get("orders") or {})
    if isinstance(orders.get("total"), int | float):
        orders["total"] = round(float(orders["total"]), 2)  # float sums depend on order
    body["orders"] = orders
    return body


def order_explained(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """True when two consent records differ only as arrival order can make them: one run
    kept a denial, the other a grant made after it (module docstring)."""
    if a.get("granted") == b.get("granted"):
        return False
    denial, grant = (a, b) if a.get("granted") is False else (b, a)
    return grant.get("granted") is True and float(grant["ts"]) > float(denial["ts"])


def _differences(a: dict[str, Any], b: dict[str, Any]) -> tuple[set[str], int]:
    """The fields in which two canonical profiles differ, and how many consent purposes
    differ only by arrival order (those are not in the fields)."""
    fields = {k for k in a.keys() | b.keys() if k != "consent" and a.get(k) != b.get(k)}
    explained = 0
    ca, cb = a.get("consent") or {}, b.get("consent") or {}
    for purpose in ca.keys() | cb.keys():
        x, y = ca.get(purpose), cb.get(purpose)
        if x == y:
            continue
        if x is not None and y is not None and order_explained(x, y):
            explained += 1
        else:
            fields.add("consent")
    return fields, explained


def compare(reference: Outcome, faulty: Outcome) -> tuple[dict[str, Any], dict[str, Any]]:
    """Profiles and actions of two runs; what consent gates is attributed to consent that
    differs by arrival order only where that consent does (module docstring)."""
    keys: set[tuple[str, ...]] = set()
    profiles = compare_profiles(reference.profiles, faulty.profiles, keys)
    gated = (_owners(reference.profiles, keys), _owners(faulty.profiles, keys))
    return profiles, compare_actions(reference.actions, faulty.actions, gated)


def compare_profiles(
    reference: Mapping[str, Mapping[str, Any]],
    faulty: Mapping[str, Mapping[str, Any]],
    consent_keys: set[tuple[str, ...]] | None = None,
) -> dict[str, Any]:
    """Profiles matched by identifier set: missing, extra and differing ones, and events lost.

    ``lost_events`` counts events the reference profiles counted and the faulty run's did
    not (a missing profile loses all of its ``event_count``; a counterpart that counted
    fewer loses the difference); ``double_counted_events`` the other way round. The
    identifier sets whose consent differs by arrival order are added to ``consent_keys``;
    their churn flag (kept while consent blocks the offer) may differ with it.
    """
    ref = _by_identity(reference.values())
    got = _by_identity(faulty.values())
    missing = [key for key in ref if key not in got]
    extra = [key for key in got if key not in ref]
    differing = []
    sensitive = set() if consent_keys is None else consent_keys
    lost = sum(_events(ref[key]) for key in missing)
    doubled = sum(_events(got[key]) for key in extra)
    for key in ref.keys() & got.keys():
        a, b = ref[key], got[key]
        fields: set[str] = set() if len(a) == len(b) else {"count"}
        explained = 0
        for x, y in zip(a, b, strict=False):
            found, n = _differences(x, y)
            fields |= found
            explained += n
        if explained:
            sensitive.add(key)
            fields -= CONSENT_GATED
        if fields:
            differing.append({"identifiers": list(key), "fields": _shown(fields, a, b)})
        delta = _events(a) - _events(b)
        lost += max(delta, 0)
        doubled += max(-delta, 0)
    return {
        "profiles": len(ref),
        "missing_profiles": len(missing),
        "extra_profiles": len(extra),
        "differing_profiles": len(differing),
        "lost_events": lost,
        "double_counted_events": doubled,
        "order_sensitive_consent": len(sensitive),
        "examples": differing[:3] + [{"missing": list(k)} for k in missing[:2]],
    }


def compare_actions(
    reference: Iterable[Mapping[str, Any]],
    faulty: Iterable[Mapping[str, Any]],
    gated: tuple[set[str], set[str]] = (set(), set()),
) -> dict[str, Any]:
    """Actions by ``action_id``: duplicates on the faulty run's topic (every repeat counts),
    ids missing or extra against the reference, and same id with other content.

    ``gated``: per run, the profile ids whose consent differs by arrival order; an action
    of one of them that only one run sent is counted apart (``order_sensitive_consent``).
    """
    ref = {a["action_id"]: a for a in reference}
    counts: Counter[str] = Counter()
    got: dict[str, Mapping[str, Any]] = {}
    for action in faulty:
        counts[action["action_id"]] += 1
        got.setdefault(action["action_id"], action)
    common = ref.keys() & got.keys()
    differing = [aid for aid in common if _strip_action(ref[aid]) != _strip_action(got[aid])]
    other_visit = [aid for aid in common if _visit(ref[aid]) != _visit(got[aid])]
    missing = [aid for aid in ref.keys() - got.keys() if ref[aid]["profile_id"] not in gated[0]]
    extra = [aid for aid in got.keys() - ref.keys() if got[aid]["profile_id"] not in gated[1]]
    consent = len(ref.keys() ^ got.keys()) - len(missing) - len(extra)
    return {
        "actions": len(ref),
        "duplicate_actions": sum(n - 1 for n in counts.values()),
        "missing_actions": len(missing),
        "extra_actions": len(extra),
        "differing_actions": len(differing),
        "order_sensitive_visit": len(other_visit),
        "order_sensitive_consent": consent,
    }


def _owners(profiles: Mapping[str, Mapping[str, Any]], keys: set[tuple[str, ...]]) -> set[str]:
    """The ids (live and merged into them) of the profiles with these identifier sets."""
    found: set[str] = set()
    for pid, profile in profiles.items():
        if identity_key(profile) in keys:
            found.add(pid)
            found.update(profile.get("merged_from") or [])
    return found


def stale_snapshots(outcome: Outcome) -> int:
    """Profiles whose last ``profiles.v1`` value is not what their state says now.

    Within one run: every live state in the ``profiles`` changelog must be on
    ``profiles.v1`` as its snapshot, and nothing else may be live there. A state update
    whose snapshot was lost (or a snapshot left behind by a state that went away) counts.
    """
    expected: dict[str, bytes] = {}
    for key, state in outcome.states.items():
        if "moved_to" in state:
            continue
        expected[key] = orjson.dumps(snapshot(ProfileState.from_dict(state)), option=_SORTED)
    published = {k: orjson.dumps(v, option=_SORTED) for k, v in outcome.profiles.items()}
    return sum(
        1 for key in expected.keys() | published.keys() if expected.get(key) != published.get(key)
    )


_SORTED = orjson.OPT_SORT_KEYS


def _by_identity(profiles: Iterable[Mapping[str, Any]]) -> dict[tuple[str, ...], list[Any]]:
    """Canonical profiles by identifier set (a list: two live profiles with the same set
    would be an anomaly the comparison must see, not hide)."""
    grouped: dict[tuple[str, ...], list[Any]] = {}
    for profile in profiles:
        grouped.setdefault(identity_key(profile), []).append(canonical(profile))
    for group in grouped.values():
        group.sort(key=lambda c: orjson.dumps(c, option=_SORTED))
    return grouped


def _shown(fields: set[str], a: list[Any], b: list[Any]) -> dict[str, Any]:
    """Each differing field with both values (short), for the report's examples."""
    if len(a) != 1 or len(b) != 1:
        return {name: None for name in sorted(fields)}
    return {
        name: [orjson.dumps(x.get(name)).decode()[:300] for x in (a[0], b[0])]
        for name in sorted(fields)
    }


def _events(group: list[dict[str, Any]]) -> int:
    return sum(int(c["event_count"]) for c in group)


def _strip_action(action: Mapping[str, Any]) -> dict[str, Any]:
    """The action without wall-clock, profile id or the visit it followed."""
    body = {k: v for k, v in action.items() if k not in VOLATILE_ACTION_FIELDS + VISIT_FIELDS}
    payload = body.get("payload")
    if isinstance(payload, dict):
        body["payload"] = {k: v for k, v in payload.items() if k not in VISIT_PAYLOAD_FIELDS}
    return body


def _visit(action: Mapping[str, Any]) -> tuple[Any, ...]:
    payload = action.get("payload") or {}
    return (*(action.get(k) for k in VISIT_FIELDS), *(payload.get(k) for k in VISIT_PAYLOAD_FIELDS))
