"""Splitting a profile: re-run its own evidence with some links now refused.

Un-merge, bans and generic values all end here. A profile's links are replayed in event-time
order through union-find, skipping links to removed identifiers and any union that would put
a banned pair together or break a per-type limit. So the outcome is a function of the
evidence and the rules, not of the order events arrived in, and "earliest event time wins"
is the rule whenever two links compete for the same limit.

Pure module: no Faust, no Kafka.
"""

from __future__ import annotations

from collections.abc import Iterable

from scv.domain.governance import Rules
from scv.domain.graph import GENERIC, GraphStore, Link, ProfileNode, fresh_id
from scv.domain.model import LinkReason, Split


class _Parts:
    """Union-find over identifier keys that also tracks each set's type counts and bans."""

    def __init__(self, keys: Iterable[str], node: ProfileNode) -> None:
        self.parent: dict[str, str] = {}
        self.members: dict[str, list[str]] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.banned: dict[str, set[str]] = {}
        for key in keys:
            self.parent[key] = key
            self.members[key] = [key]
            self.counts[key] = {key.partition(":")[0]: 1}
            self.banned[key] = set(node.bans.get(key, ()))

    def find(self, key: str) -> str:
        root = key
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[key] != root:
            self.parent[key], key = root, self.parent[key]
        return root

    def union(self, a: str, b: str, rules: Rules) -> bool:
        """Join the sets of ``a`` and ``b`` unless a ban or a limit forbids it."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if self.banned[ra] & set(self.members[rb]) or self.banned[rb] & set(self.members[ra]):
            return False
        counts = dict(self.counts[ra])
        for kind, n in self.counts[rb].items():
            counts[kind] = counts.get(kind, 0) + n
            if counts[kind] > rules.rule(kind).max_per_profile:
                return False
        if len(self.members[ra]) < len(self.members[rb]):
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.members[ra] += self.members.pop(rb)
        self.counts[ra] = counts
        del self.counts[rb]
        self.banned[ra] |= self.banned.pop(rb)
        return True

    def groups(self, order: list[str]) -> list[list[str]]:
        """The sets, each in ``order``, ordered by their first key in ``order``."""
        by_root: dict[str, list[str]] = {}
        for key in order:
            by_root.setdefault(self.find(key), []).append(key)
        return list(by_root.values())


def partition(
    node: ProfileNode, rules: Rules, removed: frozenset[str] = frozenset()
) -> list[list[str]]:
    """The parts ``node``'s identifiers fall into when its links are replayed now.

    Links touching ``removed`` keys are ignored, and so is any link a ban or limit refuses.
    """
    keys = [k for k in node.keys() if k not in removed]
    parts = _Parts(keys, node)
    for link in sorted(node.links, key=lambda lk: replay_order(lk, rules)):
        a, b = link[0], link[1]
        if a in parts.parent and b in parts.parent:
            parts.union(a, b, rules)
    return parts.groups(keys)


def replay_order(link: Link, rules: Rules) -> tuple[float, str, int, str]:
    """Event time, then event, then as the resolver walked that event: the event's anchor
    is linked to each other identifier, and those are considered by priority, then key."""
    a, b = str(link[0]), str(link[1])
    walked = max(a, b, key=lambda k: (-rules.rule(k.partition(":")[0]).priority, k))
    return (float(link[4]), str(link[3]), -rules.rule(walked.partition(":")[0]).priority, walked)


def people_tied_by(node: ProfileNode, key: str, rules: Rules) -> int:
    """How many otherwise separate people ``key`` holds together.

    Take the profile's link graph without ``key``; of the groups ``key`` has a link into,
    count those holding an identifier at least as strong (priority) as ``key`` itself. A
    person's own email is the hub of their cookies and phone, but those weaker fragments
    are not people; a shop's shared phone touches one group per customer, each with an
    email or customer id of its own.
    """
    strength = rules.rule(key.partition(":")[0]).priority
    neighbours: set[str] = set()
    parent: dict[str, str] = {}

    def find(k: str) -> str:
        parent.setdefault(k, k)
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for link in node.links:
        a, b = link[0], link[1]
        if a == key:
            neighbours.add(b)
        elif b == key:
            neighbours.add(a)
        else:
            parent[find(a)] = find(b)
    touched = {find(n) for n in neighbours}
    strong = {
        find(k)
        for k in node.keys()
        if k != key and rules.rule(k.partition(":")[0]).priority >= strength
    }
    return len(touched & strong)


def split_profile(
    node: ProfileNode,
    store: GraphStore,
    rules: Rules,
    reason: LinkReason,
    removed: frozenset[str] = frozenset(),
    generic: bool = False,
    keep: str | None = None,
) -> Split | None:
    """Split ``node`` along its evidence and write the parts to ``store``.

    The part holding ``keep`` (default: the oldest remaining identifier) keeps the profile
    id (stable ids for consumers); every other part gets an id derived from the cause and its
    oldest key, so a replay reproduces it. ``removed`` keys leave the graph: marked
    :data:`GENERIC` when ``generic``, else un-owned. Returns None when nothing changes.
    """
    groups = partition(node, rules, removed)
    present = [k for k in node.keys() if k in removed]
    if len(groups) <= 1 and not present:
        return None
    keeper = keep if keep is not None else node.keeper(exclude=removed)
    parts: dict[str, list[str]] = {}
    for group in groups:
        if keeper in group:
            pid = node.profile_id
        else:
            oldest = _oldest(node, group)
            pid = fresh_id(f"{reason.event_id}/{oldest}", store)
        parts[pid] = group
        store.put_node(_sub_node(node, pid, group, pid == node.profile_id, removed))
        if pid != node.profile_id:
            for key in group:
                store.set_owner(key, pid)
    if node.profile_id not in parts:
        store.del_node(node.profile_id)
    for key in present:
        if generic:
            store.set_owner(key, GENERIC)
        else:
            store.del_owner(key)
    return Split(node.profile_id, parts, present, reason)


def _oldest(node: ProfileNode, keys: list[str]) -> str:
    def age(key: str) -> tuple[float, str, str]:
        ts, eid = node.origins.get(key, (node.first_seen, ""))
        return (float(ts), str(eid), key)

    return min(keys, key=age)


def _sub_node(
    node: ProfileNode, pid: str, keys: list[str], keep_absorbed: bool, removed: frozenset[str]
) -> ProfileNode:
    inside = set(keys)
    identifiers: dict[str, list[str]] = {}
    for kind, values in node.identifiers.items():
        kept = [v for v in values if f"{kind}:{v}" in inside]
        if kept:
            identifiers[kind] = kept
    origins = {k: list(v) for k, v in node.origins.items() if k in inside}
    first_seen = min((float(v[0]) for v in origins.values()), default=node.first_seen)
    return ProfileNode(
        profile_id=pid,
        first_seen=first_seen if not keep_absorbed else min(first_seen, node.first_seen),
        identifiers=identifiers,
        absorbed=node.absorbed if keep_absorbed else 0,
        # Links with one end outside are refused evidence; both parts keep what touches them.
        links=[
            list(lk)
            for lk in node.links
            if (lk[0] in inside or lk[1] in inside) and removed.isdisjoint(lk[:2])
        ],
        origins=origins,
        bans={k: list(v) for k, v in node.bans.items() if k in inside},
        # Matching records follow the identifier that brought them (and so does the
        # blocking index, which files identifier keys).
        records={k: dict(v) for k, v in node.records.items() if k in inside},
    )
