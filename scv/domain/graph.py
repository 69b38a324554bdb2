"""The identity graph's storage model: profile nodes with their evidence, and the store.

A profile node keeps, besides the identifiers it owns, *why* it owns them: every distinct
pair of identifiers an event tied together (a **link**, with rule, event, time and score),
when each identifier was first seen, and the **bans** (pairs that must never share a
profile). The links are what make merges explainable and reversible: splitting a profile is
re-running union-find over its links without the ones that are now refused.

Pure module: no Faust, no Kafka.
"""

from __future__ import annotations

import hashlib
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

import orjson

#: Most first names a node keeps per identifier (more says no more: the value is generic).
NAMES_PER_KEY = 8

#: Owner value of an identifier declared generic: it belongs to nobody and links nothing.
GENERIC = "!generic"
#: Owner value of an identifier a household shares (a landline, a family email, a tablet):
#: it links people into a household (see :mod:`scv.domain.households`), never into a person.
HOUSEHOLD = "!household"

#: One link: ``[a, b, rule, event_id, ts, score]`` with ``a < b`` (keys ``type:value``).
Link = list[Any]


def link_order(link: Link) -> tuple[float, str, str, str]:
    """Event time, then event id, then the pair: the order evidence is replayed in."""
    return (float(link[4]), str(link[3]), str(link[0]), str(link[1]))


@dataclass(slots=True)
class ProfileNode:
    """A profile as the identity graph sees it: identifiers and the evidence behind them.

    ``identifiers`` maps type -> values in attach order. ``absorbed`` counts every profile
    merged into this one over its life (what ``merge_cap`` bounds). ``links`` holds each
    distinct identifier pair once, with its earliest evidence; ``origins`` the earliest
    ``[ts, event_id]`` of each identifier; ``bans`` maps an owned identifier to the keys
    it must never share a profile with.
    """

    profile_id: str
    first_seen: float
    identifiers: dict[str, list[str]] = field(default_factory=dict)
    absorbed: int = 0
    links: list[Link] = field(default_factory=list)
    origins: dict[str, list[Any]] = field(default_factory=dict)
    bans: dict[str, list[str]] = field(default_factory=dict)
    #: Person attributes for probabilistic matching, one matching record per identifier that
    #: brought some (identifier key -> field -> value; see :mod:`scv.domain.matching.linker`).
    #: Keyed by identifier so that a split hands each part the attributes its own events
    #: stated. Empty unless a matcher is in use.
    records: dict[str, dict[str, str]] = field(default_factory=dict)
    #: First names stated on the events that carried each identifier (identifier key ->
    #: folded names, at most :data:`NAMES_PER_KEY`): a landline whose callers say "Anna"
    #: and "Jonas" serves two people (see :func:`scv.domain.split.people_tied_by`).
    names: dict[str, list[str]] = field(default_factory=dict)

    def count(self, ident_type: str) -> int:
        """How many values of ``ident_type`` the profile owns."""
        values = self.identifiers.get(ident_type)
        return len(values) if values else 0

    def keys(self) -> list[str]:
        """Every owned identifier as a ``type:value`` key."""
        return [f"{kind}:{v}" for kind, values in self.identifiers.items() for v in values]

    def ban_targets(self) -> set[str]:
        return {other for targets in self.bans.values() for other in targets}

    def keeper(self, exclude: set[str] | frozenset[str] = frozenset()) -> str | None:
        """The oldest identifier (earliest evidence, then key): the one that keeps the id."""
        best: tuple[float, str, str] | None = None
        for key in self.keys():
            if key in exclude:
                continue
            ts, eid = self.origins.get(key, (self.first_seen, ""))
            cand = (float(ts), str(eid), key)
            if best is None or cand < best:
                best = cand
        return best[2] if best is not None else None

    def add_link(self, a: str, b: str, rule: str, event_id: str, ts: float, score: Any) -> bool:
        """Record that ``a`` and ``b`` were tied; keeps the earliest evidence per pair.

        Returns True if anything changed (a new pair, or earlier evidence for a known one).
        """
        if a > b:
            a, b = b, a
        for link in self.links:
            if link[1] == b and link[0] == a:  # ``b`` first: most links share the anchor
                first = float(link[4])
                if ts < first or (ts == first and event_id < str(link[3])):
                    link[2:] = [rule, event_id, ts, score]
                    return True
                return False
        self.links.append([a, b, rule, event_id, ts, score])
        return True

    def add_origin(self, key: str, ts: float, event_id: str) -> bool:
        seen = self.origins.get(key)
        if seen is not None:
            # ``(ts, event_id) < (first, str(seen[1]))`` without building the tuples: this
            # runs for every identifier of every event, and is almost always a later one.
            first = float(seen[0])
            if not (ts < first or (ts == first and event_id < str(seen[1]))):
                return False
        self.origins[key] = [ts, event_id]
        return True

    def add_name(self, key: str, name: str) -> bool:
        """Note that an event carrying ``key`` named ``name`` (folded); True if new."""
        known = self.names.get(key)
        if known is None:
            self.names[key] = [name]
            return True
        if name in known or len(known) >= NAMES_PER_KEY:
            return False
        known.append(name)
        return True

    def add_ban(self, key: str, other: str) -> None:
        targets = self.bans.setdefault(key, [])
        if other not in targets:
            targets.append(other)

    def take(self, other: ProfileNode) -> None:
        """Fold ``other``'s identifiers and evidence into this node (a merge)."""
        for kind, values in other.identifiers.items():
            self.identifiers.setdefault(kind, []).extend(values)
        for link in other.links:
            self.add_link(*link)
        for key, (ts, eid) in other.origins.items():
            self.add_origin(key, float(ts), str(eid))
        for key, targets in other.bans.items():
            for target in targets:
                self.add_ban(key, target)
        for key, record in other.records.items():
            self.records.setdefault(key, record)
        for key, names in other.names.items():
            for name in names:
                self.add_name(key, name)
        self.absorbed += 1 + other.absorbed
        self.first_seen = min(self.first_seen, other.first_seen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile_id": self.profile_id,
            "first_seen": self.first_seen,
            "identifiers": {k: list(v) for k, v in self.identifiers.items()},
            "absorbed": self.absorbed,
            "links": [list(link) for link in self.links],
            "origins": {k: list(v) for k, v in self.origins.items()},
            "bans": {k: list(v) for k, v in self.bans.items()},
            **({"records": {k: dict(v) for k, v in self.records.items()}} if self.records else {}),
            **({"names": {k: list(v) for k, v in self.names.items()}} if self.names else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProfileNode:
        return cls(
            profile_id=str(d["profile_id"]),
            first_seen=float(d["first_seen"]),
            identifiers={str(k): [str(x) for x in v] for k, v in d["identifiers"].items()},
            absorbed=int(d.get("absorbed", 0)),
            links=[list(link) for link in d.get("links") or []],
            origins={str(k): list(v) for k, v in (d.get("origins") or {}).items()},
            bans={str(k): [str(x) for x in v] for k, v in (d.get("bans") or {}).items()},
            records={
                str(k): {str(f): str(v) for f, v in rec.items()}
                for k, rec in (d.get("records") or {}).items()
            },
            names={str(k): [str(x) for x in v] for k, v in (d.get("names") or {}).items()},
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
    def del_node(self, profile_id: str) -> None:
        """Retire the id: it is gone and must never be given to a new profile (consumers
        and the profile stage forward it to its survivor)."""
        ...

    def used(self, profile_id: str) -> bool:
        """True if the id is live or was ever retired."""
        ...

    def get_block(self, key: str) -> list[str]:
        """The probabilistic matcher's blocking index: identifier keys filed under ``key``
        (their current owners are the candidate profiles)."""
        ...

    def add_block(self, key: str, ident: str) -> None:
        """File identifier key ``ident`` under blocking key ``key`` (idempotent)."""
        ...

    def remove_block(self, key: str, ident: str) -> bool:
        """Take ``ident`` out of blocking key ``key`` (an erasure); an emptied key goes
        altogether, since the key itself is made of the person's attributes. True if it
        was there."""
        ...

    def flush(self) -> None:
        """Write what is held back to the underlying storage (a no-op for in-memory stores)."""
        ...


class DictStore:
    """In-memory :class:`GraphStore`. Nodes are kept by reference (no copies): cheap for
    replaying large inputs; callers that snapshot it should use ``to_dict``."""

    __slots__ = ("blocks", "nodes", "owners", "retired")

    def __init__(self) -> None:
        self.owners: dict[str, str] = {}
        self.nodes: dict[str, ProfileNode] = {}
        self.retired: set[str] = set()
        self.blocks: dict[str, list[str]] = {}

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
        self.retired.add(profile_id)

    def used(self, profile_id: str) -> bool:
        return profile_id in self.nodes or profile_id in self.retired

    def get_block(self, key: str) -> list[str]:
        return self.blocks.get(key, [])

    def add_block(self, key: str, ident: str) -> None:
        members = self.blocks.setdefault(key, [])
        if ident not in members:
            members.append(ident)

    def remove_block(self, key: str, ident: str) -> bool:
        members = self.blocks.get(key)
        if members is None or ident not in members:
            return False
        members.remove(ident)
        if not members:
            del self.blocks[key]
        return True

    def flush(self) -> None:
        """Nothing is held back: the dicts are the storage."""

    def to_dict(self) -> dict[str, Any]:
        """A plain, comparable snapshot (used by replay-determinism tests)."""
        return {
            "owners": dict(sorted(self.owners.items())),
            "nodes": {pid: self.nodes[pid].to_dict() for pid in sorted(self.nodes)},
        }


#: Node value of a profile id that was merged away or emptied by a split.
RETIRED = b"-"

#: Prefix of the blocking index's entries in the owners map (no identifier key starts with
#: a NUL byte), so the index needs no table of its own.
BLOCK_PREFIX = "\x00b:"


#: Most decoded nodes a :class:`MappingStore` keeps between batches (a demo profile of three
#: identifiers takes about 4 KB decoded, so about 40 MB when full).
NODE_CACHE_MAX = 10_000
#: Most owners it keeps between batches (about 175 bytes each), and a quarter as many
#: blocking-index entries.
OWNER_CACHE_MAX = 50_000

#: "Not cached" (``None`` is a cached answer: no owner, or a retired id).
_MISSING: Any = object()


@dataclass(slots=True)
class Lookups:
    """Reads of one of :class:`MappingStore`'s caches: a miss reads and decodes the map's
    bytes. The stage reports and resets them per batch (``scv_state_cache_lookups_total``)."""

    hits: int = 0
    misses: int = 0


class MappingStore:
    """:class:`GraphStore` over two byte maps: the resolve stage's tables (RocksDB,
    changelogged), scratch ``rocksdict`` databases in ``scv resolve --diff``.

    Writes are held back until :meth:`flush`, and nodes stay decoded in between: a batch of
    events that touches a profile ten times costs one decode, one encode and one table write
    (one changelog message) instead of ten. Like :class:`DictStore`, ``get_node`` returns the
    held object itself. Call ``flush`` after each batch.

    What was read or written also stays cached (decoded) across batches, so a profile a
    later batch touches again is not read and decoded again. That is only correct because
    the store is the single writer of both maps (the resolver owns the graph): make a new
    store whenever something else may have written them (the partition moved to another
    worker and back). The caches are bounded (:data:`NODE_CACHE_MAX`,
    :data:`OWNER_CACHE_MAX`); the oldest entries go first. Callers must keep the contract
    the resolver keeps: a node returned by ``get_node`` is changed only if it is then handed
    back through ``put_node`` (or its id retired with ``del_node``) before the flush.
    """

    __slots__ = (
        "_block_cache",
        "_dirty",
        "_node_cache",
        "_nodes",
        "_owner_cache",
        "_owner_dirty",
        "_owners",
        "node_lookups",
        "owner_lookups",
    )

    def __init__(
        self, owners: MutableMapping[bytes, bytes], nodes: MutableMapping[bytes, bytes]
    ) -> None:
        self._owners = owners
        self._nodes = nodes
        self._owner_cache: dict[str, str | None] = {}  # key -> owner; None: nobody
        self._block_cache: dict[str, list[str]] = {}  # blocking key -> identifier keys
        self._owner_dirty: dict[str, None] = {}  # owners-map keys to write (ordered set)
        self._node_cache: dict[str, ProfileNode | None] = {}  # None: retired
        self._dirty: dict[str, None] = {}  # profile ids to write (ordered set)
        self.node_lookups = Lookups()
        self.owner_lookups = Lookups()

    def get_owner(self, key: str) -> str | None:
        owner = self._owner_cache.get(key, _MISSING)
        if owner is _MISSING:
            self.owner_lookups.misses += 1
            value = self._owners.get(key.encode())
            owner = self._owner_cache[key] = value.decode() if value is not None else None
        else:
            self.owner_lookups.hits += 1
        return owner

    def set_owner(self, key: str, profile_id: str) -> None:
        self._owner_cache[key] = profile_id
        self._owner_dirty[key] = None

    def del_owner(self, key: str) -> None:
        self._owner_cache[key] = None
        self._owner_dirty[key] = None

    def get_node(self, profile_id: str) -> ProfileNode | None:
        node = self._node_cache.get(profile_id, _MISSING)
        if node is not _MISSING:
            self.node_lookups.hits += 1
            return node
        self.node_lookups.misses += 1
        value = self._nodes.get(profile_id.encode())
        if value is None:
            return None  # never used: not cached, so ``used`` asks the map
        if value == RETIRED:
            self._node_cache[profile_id] = None
            return None
        node = self._node_cache[profile_id] = ProfileNode.from_dict(orjson.loads(value))
        return node

    def put_node(self, node: ProfileNode) -> None:
        self._node_cache[node.profile_id] = node
        self._dirty[node.profile_id] = None

    def del_node(self, profile_id: str) -> None:
        self._node_cache[profile_id] = None  # the id must never come back
        self._dirty[profile_id] = None

    def used(self, profile_id: str) -> bool:
        if profile_id in self._node_cache:  # live or retired
            return True
        return self._nodes.get(profile_id.encode()) is not None

    def _block(self, key: str) -> list[str]:
        members = self._block_cache.get(key)
        if members is None:
            value = self._owners.get((BLOCK_PREFIX + key).encode())
            members = [str(x) for x in orjson.loads(value)] if value is not None else []
            self._block_cache[key] = members
        return members

    def get_block(self, key: str) -> list[str]:
        return list(self._block(key))

    def add_block(self, key: str, ident: str) -> None:
        members = self._block(key)
        if ident not in members:
            members.append(ident)
            self._owner_dirty[BLOCK_PREFIX + key] = None

    def remove_block(self, key: str, ident: str) -> bool:
        members = self._block(key)
        if ident not in members:
            return False
        members.remove(ident)
        self._owner_dirty[BLOCK_PREFIX + key] = None
        return True

    def flush(self) -> None:
        """One write per changed key; what stays cached is bounded (memory stays bounded)."""
        owners, owner_cache, blocks = self._owners, self._owner_cache, self._block_cache
        skip = len(BLOCK_PREFIX)
        for key in self._owner_dirty:
            if key.startswith(BLOCK_PREFIX):
                members = blocks[key[skip:]]
                if members:
                    owners[key.encode()] = orjson.dumps(members)
                else:  # emptied by an erasure: the key is made of the person's data
                    owners.pop(key.encode(), None)
                    del blocks[key[skip:]]
                continue
            owner = owner_cache[key]
            if owner is None:
                owners.pop(key.encode(), None)
                # Not kept as a cached "nobody": a deleted identifier (an erasure) must not
                # linger in memory; a later read finds the delete in the map.
                del owner_cache[key]
            else:
                owners[key.encode()] = owner.encode()
        nodes, cache = self._nodes, self._node_cache
        for pid in self._dirty:
            node = cache.pop(pid)  # re-inserted: recently written entries are evicted last
            cache[pid] = node
            if node is None:
                nodes[pid.encode()] = RETIRED
            else:
                nodes[pid.encode()] = encode_node(node)
                # What decoding the bytes would give (an int time reads back as a float).
                node.first_seen = float(node.first_seen)
        self._owner_dirty.clear()
        self._dirty.clear()
        _trim(cache, NODE_CACHE_MAX)
        _trim(owner_cache, OWNER_CACHE_MAX)
        _trim(blocks, OWNER_CACHE_MAX // 4)


def _trim(cache: dict[str, Any], most: int) -> None:
    """Drop the oldest entries of an over-full cache, down to three quarters of ``most``."""
    excess = len(cache) - most
    if excess > 0:
        for key in list(islice(cache, excess + most // 4)):
            del cache[key]


def encode_node(node: ProfileNode) -> bytes:
    """``orjson.dumps(node.to_dict())`` without copying the node's lists and dicts first."""
    body: dict[str, Any] = {
        "profile_id": node.profile_id,
        "first_seen": node.first_seen,
        "identifiers": node.identifiers,
        "absorbed": node.absorbed,
        "links": node.links,
        "origins": node.origins,
        "bans": node.bans,
    }
    if node.records:
        body["records"] = node.records
    if node.names:
        body["names"] = node.names
    return orjson.dumps(body)


def new_profile_id(seed: str) -> str:
    """The id of a profile created by event (or command) ``seed``: derived, not random or a
    counter, so replaying the input (or re-delivery after a crash) yields the same ids."""
    return "p_" + hashlib.blake2b(seed.encode("utf-8"), digest_size=10).hexdigest()


def fresh_id(seed: str, store: GraphStore) -> str:
    """``new_profile_id(seed)``, salted deterministically when that id is or was in use (a
    re-delivered event whose profile has since been merged away, or a rule change)."""
    pid = new_profile_id(seed)
    salt = 0
    while store.used(pid):
        salt += 1
        pid = new_profile_id(f"{seed}#{salt}")
    return pid
