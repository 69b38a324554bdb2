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

from rapidfuzz.distance import OSA

from scv.domain.governance import Rules
from scv.domain.graph import GENERIC, HOUSEHOLD, GraphStore, Link, ProfileNode, fresh_id
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


#: Most identifiers of a type at least as strong as a shared value one person brings to it.
STRONG_PER_PERSON = 2


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


def replay_order(link: Link, rules: Rules) -> tuple[float, str, int, str, int, str]:
    """Event time, then event, then as the resolver walked that event: the event's anchor
    is linked to each other identifier, and those are considered by priority, then key; an
    event's links around its second identifier (its anchor could be shared) come after
    those around the anchor. Total, so no replay depends on the order links were stored."""
    a, b = str(link[0]), str(link[1])
    rank = {k: (-rules.rule(k.partition(":")[0]).priority, k) for k in (a, b)}
    walked, start = (a, b) if rank[a] > rank[b] else (b, a)
    return (
        float(link[4]),
        str(link[3]),
        rank[walked][0],
        walked,
        rank[start][0],
        start,
    )


def people_tied_by(node: ProfileNode, key: str, rules: Rules) -> int:
    """How many different people ``key`` holds together, at the least.

    Take the profile's link graph without ``key``: the groups ``key`` has a link into are
    what it ties, and so are the identifiers of other profiles it has a refused link to
    (a limit kept them out because of it: they are evidence too). Those identifiers need at
    least ``ceil(n / max_per_profile)`` people per type: two customer ids are two people,
    seven phone numbers (three per person) three, a person's four cookies one. A person's
    own email is the hub of their cookies and phone, which one person may own together; a
    placeholder an agent typed for every caller ties one phone per caller, which no one
    person can.
    """
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
    inside = set(node.keys())
    touched = {find(n) for n in neighbours if n in inside}
    # A value with links into one group only is a pendant on it: without it the group is
    # still one, so whoever that group holds is held by something else (a family email the
    # group was joined by), not by this value. Only its own neighbours are its evidence.
    tied = (
        {k for k in inside if k != key and find(k) in touched}
        if len(touched) > 1
        else neighbours & inside
    )
    counts: dict[str, int] = {}  # per type: values in the groups tied, and refused ones
    for k in tied:
        kind = k.partition(":")[0]
        counts[kind] = counts.get(kind, 0) + 1
    for k in neighbours - inside:
        kind = k.partition(":")[0]
        counts[kind] = counts.get(kind, 0) + 1
    least = max(
        (-(-n // rules.rule(kind).max_per_profile) for kind, n in counts.items()), default=0
    )
    strength = rules.rule(key.partition(":")[0]).priority
    named = _named(node, key, tied if len(touched) > 1 else ())  # a pendant: its own names
    return max(least, stated_with(neighbours, strength, rules), named)


def stated_with(neighbours: Iterable[str], strength: int, rules: Rules) -> int:
    """People by what was stated together with the value: identifiers at least as strong
    (people are known by those) count at most :data:`STRONG_PER_PERSON` per person; a
    person gives the same one or two (a private and a work address) with their phone, and
    three addresses given with one phone are at least two people (an office line)."""
    counts: dict[str, int] = {}
    for k in neighbours:
        kind = k.partition(":")[0]
        if rules.rule(kind).priority >= strength:
            counts[kind] = counts.get(kind, 0) + 1
    return max((-(-n // STRONG_PER_PERSON) for n in counts.values()), default=0)


def _named(node: ProfileNode, key: str, tied: Iterable[str]) -> int:
    """People by first name: the names stated on the value's own events and on the
    identifiers it ties."""
    if not node.names:
        return 0
    stated = list(node.names.get(key, ()))
    for k in tied:
        stated += node.names.get(k, ())
    return name_count(stated)


def split_profile(
    node: ProfileNode,
    store: GraphStore,
    rules: Rules,
    reason: LinkReason,
    removed: frozenset[str] = frozenset(),
    generic: bool = False,
    keep: str | None = None,
    households: frozenset[str] = frozenset(),
) -> Split | None:
    """Split ``node`` along its evidence and write the parts to ``store``.

    The part holding ``keep`` (default: the oldest remaining identifier) keeps the profile
    id (stable ids for consumers); every other part gets an id derived from the cause and its
    oldest key, so a replay reproduces it. ``removed`` keys leave the graph: marked
    :data:`GENERIC` when ``generic`` (:data:`HOUSEHOLD` when also in ``households``), else
    un-owned. Returns None when nothing changes.
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
            store.set_owner(key, HOUSEHOLD if key in households else GENERIC)
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
        names={k: list(v) for k, v in node.names.items() if k in inside},
    )


def name_count(names: Iterable[str]) -> int:
    """How many different people folded first names belong to, at the least.

    Names one slip apart are one person's, transitively: a letter dropped (Jame, Ai for
    Ali), two letters swapped (Jmaes, Aav), one letter wrong (Ewn and Ean are both Ewan with
    a letter dropped: any two names one letter apart can be one name's slips), two slips in
    a name of four letters or more (Gace and Grae are Grace, Aflie and Alfei are Alfie; the
    cost: Ella and Emma read as one), a shortening (Chris, Christopher). Names further apart are
    different people: Anna and Jonas, Mia and Lea. (A typo must never make two people of
    one: a value found shared stays so.)
    """
    distinct = sorted(set(names))
    if len(distinct) < 2:
        return len(distinct)
    parent = list(range(len(distinct)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(distinct):
        for j in range(i + 1, len(distinct)):
            if _same_name(a, distinct[j]):
                parent[find(i)] = find(j)
    return len({find(i) for i in range(len(distinct))})


def _same_name(a: str, b: str) -> bool:
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    if len(short) >= 3 and long.startswith(short):
        return True
    slips = OSA.distance(short, long, score_cutoff=2)
    if slips <= 1:
        return True
    # Two slips in a name of four letters or more are one person's: two letters swapped in
    # two places (Aflie, Alfei: both Alfie), one dropped and one swapped (Alfe, Aflie), two
    # dropped (Gace, Grae: Grace). Two short names two letters apart (Mia, Lea) are two.
    return slips == 2 and len(short) >= 4
