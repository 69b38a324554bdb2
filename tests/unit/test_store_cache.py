"""The resolver's fast paths decide exactly what the plain ones did.

``MappingStore`` caches decoded nodes and owners across flushes (bounded), and the resolver
skips the union-find of ``people_tied_by`` when a cheap bound shows a value cannot be
generic. Both are checked here against straightforward references: a write-back store that
decodes afresh after every flush (the store before the cache), and ``people_tied_by``
itself.
"""

from __future__ import annotations

from collections.abc import MutableMapping

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scv.domain import graph
from scv.domain.governance import IdentifierRule, Rules
from scv.domain.graph import BLOCK_PREFIX, RETIRED, MappingStore, ProfileNode, encode_node
from scv.domain.model import Identifier, NormalizedEvent, ident_key
from scv.domain.resolver import _may_tie, resolve
from scv.domain.split import people_tied_by


class PlainStore:
    """The write-back store without a cache: everything is decoded afresh after a flush."""

    def __init__(
        self, owners: MutableMapping[bytes, bytes], nodes: MutableMapping[bytes, bytes]
    ) -> None:
        self._owners, self._nodes = owners, nodes
        self._owner_writes: dict[bytes, bytes | None] = {}
        self._held: dict[str, ProfileNode | None] = {}
        self._dirty: set[str] = set()

    def _owner(self, key: bytes) -> bytes | None:
        if key in self._owner_writes:
            return self._owner_writes[key]
        return self._owners.get(key)

    def get_owner(self, key: str) -> str | None:
        value = self._owner(key.encode())
        return value.decode() if value is not None else None

    def set_owner(self, key: str, profile_id: str) -> None:
        self._owner_writes[key.encode()] = profile_id.encode()

    def del_owner(self, key: str) -> None:
        self._owner_writes[key.encode()] = None

    def get_node(self, profile_id: str) -> ProfileNode | None:
        if profile_id in self._held:
            return self._held[profile_id]
        value = self._nodes.get(profile_id.encode())
        if value is None or value == RETIRED:
            return None
        node = ProfileNode.from_dict(orjson.loads(value))
        self._held[profile_id] = node
        return node

    def put_node(self, node: ProfileNode) -> None:
        self._held[node.profile_id] = node
        self._dirty.add(node.profile_id)

    def del_node(self, profile_id: str) -> None:
        self._held[profile_id] = None
        self._dirty.add(profile_id)

    def used(self, profile_id: str) -> bool:
        return profile_id in self._dirty or self._nodes.get(profile_id.encode()) is not None

    def get_block(self, key: str) -> list[str]:
        value = self._owner((BLOCK_PREFIX + key).encode())
        return [str(x) for x in orjson.loads(value)] if value is not None else []

    def add_block(self, key: str, ident: str) -> None:
        members = self.get_block(key)
        if ident not in members:
            members.append(ident)
            self._owner_writes[(BLOCK_PREFIX + key).encode()] = orjson.dumps(members)

    def flush(self) -> None:
        for key, value in self._owner_writes.items():
            if value is None:
                self._owners.pop(key, None)
            else:
                self._owners[key] = value
        for pid in self._dirty:
            node = self._held[pid]
            self._nodes[pid.encode()] = RETIRED if node is None else orjson.dumps(node.to_dict())
        self._owner_writes.clear()
        self._held.clear()
        self._dirty.clear()


UNIVERSE: list[Identifier] = (
    [("customer_id", f"c{i}") for i in range(3)]
    + [("email", f"e{i}@x.com") for i in range(4)]
    + [("phone", f"+4477009000{i:02d}") for i in range(3)]
    + [("device_id", f"d{i}") for i in range(2)]
    + [("anonymous_id", f"a{i}") for i in range(4)]
    + [("mystery", "m0")]  # falls back to the default rule
)
TYPES = sorted({t for t, _ in UNIVERSE} - {"mystery"})


@st.composite
def rules_with_generics(draw: st.DrawFn) -> Rules:
    idents = {
        t: IdentifierRule(
            draw(st.integers(1, 6)),
            draw(st.integers(0, 4)),
            draw(st.sampled_from([None, 1, 2, 3])),
        )
        for t in TYPES
    }
    blocked = draw(st.frozensets(st.sampled_from(UNIVERSE), max_size=2))
    return Rules(
        identifiers=idents,
        blocked_exact=frozenset(ident_key(i) for i in blocked),
        merge_cap=draw(st.integers(0, 8)),
        default_rule=IdentifierRule(draw(st.integers(1, 4)), draw(st.integers(0, 4))),
    )


@st.composite
def events_and_flushes(draw: st.DrawFn) -> list[tuple[NormalizedEvent, bool]]:
    """Events over a tiny identifier universe (late ones too), each maybe followed by a
    flush."""
    out: list[tuple[NormalizedEvent, bool]] = []
    for i in range(draw(st.integers(1, 30))):
        idents = draw(st.lists(st.sampled_from(UNIVERSE), min_size=0, max_size=5))
        event = NormalizedEvent(
            f"ev{i}", "web", "page_view", float(draw(st.integers(0, 10))), idents
        )
        out.append((event, draw(st.booleans())))
    return out


@settings(max_examples=300, deadline=None)
@given(script=events_and_flushes(), rules=rules_with_generics(), room=st.integers(1, 6))
def test_cached_store_decides_and_writes_what_the_plain_store_did(
    script: list[tuple[NormalizedEvent, bool]], rules: Rules, room: int
) -> None:
    plain_maps: tuple[dict[bytes, bytes], dict[bytes, bytes]] = ({}, {})
    cached_maps: tuple[dict[bytes, bytes], dict[bytes, bytes]] = ({}, {})
    plain = PlainStore(*plain_maps)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(graph, "NODE_CACHE_MAX", room)  # evictions all the time
        mp.setattr(graph, "OWNER_CACHE_MAX", room * 2)
        cached = MappingStore(*cached_maps)
        for event, flush in script:
            assert resolve(event, cached, rules) == resolve(event, plain, rules)
            if flush:
                cached.flush()
                plain.flush()
                assert cached_maps == plain_maps
        cached.flush()
        plain.flush()
    assert cached_maps == plain_maps


def test_the_store_counts_reads_of_its_caches() -> None:
    """A miss reads and decodes the map's bytes: the count the resolve stage reports."""
    owners: dict[bytes, bytes] = {b"email:a@b.co": b"p-1"}
    nodes = {b"p-1": encode_node(ProfileNode("p-1", 1.0))}
    store = MappingStore(owners, nodes)
    assert store.get_node("p-1") is not None and store.get_node("p-1") is not None
    assert store.get_node("p-unknown") is None
    assert (store.node_lookups.hits, store.node_lookups.misses) == (1, 2)
    assert store.get_owner("email:a@b.co") == "p-1" == store.get_owner("email:a@b.co")
    assert store.get_owner("email:x@y.co") is None
    assert (store.owner_lookups.hits, store.owner_lookups.misses) == (1, 2)


@settings(max_examples=300, deadline=None)
@given(script=events_and_flushes(), rules=rules_with_generics(), data=st.data())
def test_the_generic_bound_never_skips_a_value_people_tied_by_would_flag(
    script: list[tuple[NormalizedEvent, bool]], rules: Rules, data: st.DataObject
) -> None:
    # Nodes with links to build on: resolve without generic detection, then probe.
    no_generics = Rules(
        identifiers={
            t: IdentifierRule(r.max_per_profile, r.priority) for t, r in rules.identifiers.items()
        },
        merge_cap=rules.merge_cap,
        default_rule=rules.default_rule,
    )
    store = graph.DictStore()
    for event, _ in script:
        resolve(event, store, no_generics)
    for node in store.nodes.values():
        for key in {*node.keys(), *(k for link in node.links for k in link[:2])}:
            least = data.draw(st.integers(1, 5))
            if people_tied_by(node, key, rules) >= least:
                assert _may_tie(node, key, least, rules)


def test_the_blocked_memo_answers_like_the_rules() -> None:
    rules = Rules.default()
    idents = [
        ("email", "test@test.com"),
        ("email", "ann@x.com"),
        ("phone", "+442079460000"),
        ("anonymous_id", "null"),
        ("anonymous_id", "k1"),
    ]
    for _ in range(2):  # asked, then remembered
        assert [i for i in idents if not rules.is_blocked(i)] == rules.unblocked(idents)
        assert rules.unblocked(idents) == [("email", "ann@x.com"), ("anonymous_id", "k1")]
    assert rules.is_blocked(["email", "test@test.com"])  # type: ignore[arg-type]
    # The memo is no field: rules that remembered answers equal rules that did not.
    other = Rules(rules.identifiers, rules.blocked_exact, rules.blocked_values)
    assert Rules(rules.identifiers, rules.blocked_exact, rules.blocked_values) == other
    assert other.unblocked(idents) and other == Rules(
        rules.identifiers, rules.blocked_exact, rules.blocked_values
    )
