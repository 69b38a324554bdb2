"""The write-back ``MappingStore``: held until ``flush``, then one write per changed key; what
it read or wrote stays cached (bounded) across flushes."""

from __future__ import annotations

import orjson
import pytest

from scv.domain import graph
from scv.domain.graph import RETIRED, MappingStore, ProfileNode, encode_node


class CountingMap(dict[bytes, bytes]):
    """A dict that counts writes: each one is a changelog message on a Faust table."""

    writes = 0

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.writes += 1
        super().__setitem__(key, value)


def test_writes_are_held_until_flush_then_made_once_per_key() -> None:
    owners, nodes = CountingMap(), CountingMap()
    store = MappingStore(owners, nodes)
    node = ProfileNode("p_1", 1.0, {"email": ["a@x.com"]})
    for i in range(10):
        node.identifiers["email"].append(f"a{i}@x.com")
        store.put_node(node)
        store.set_owner(f"email:a{i}@x.com", "p_1")
    store.add_block("np:A000:ls1", "email:a@x.com")
    assert (owners.writes, nodes.writes) == (0, 0)
    assert store.get_node("p_1") is node and store.get_owner("email:a3@x.com") == "p_1"
    assert store.get_block("np:A000:ls1") == ["email:a@x.com"]

    store.flush()
    assert (owners.writes, nodes.writes) == (11, 1)
    again = MappingStore(owners, nodes)
    assert again.get_node("p_1") == node and again.get_owner("email:a9@x.com") == "p_1"
    assert store.get_node("p_1") is node  # still cached: the store is the only writer


def test_retired_ids_and_deleted_owners_survive_the_flush() -> None:
    owners, nodes = CountingMap(), CountingMap()
    store = MappingStore(owners, nodes)
    store.put_node(ProfileNode("p_1", 1.0, {}))
    store.set_owner("email:a@x.com", "p_1")
    store.flush()
    store.del_node("p_1")
    store.del_owner("email:a@x.com")
    store.set_owner("phone:+447700900001", "p_2")
    store.del_owner("phone:+447700900001")  # set and deleted in one batch: never written
    assert store.get_node("p_1") is None and store.used("p_1")
    assert store.get_owner("email:a@x.com") is None
    store.flush()
    assert nodes[b"p_1"] == RETIRED and store.used("p_1") and store.get_node("p_1") is None
    assert owners == {}


class CountingReads(dict[bytes, bytes]):
    """A dict that counts reads (``get``), the table reads a cache saves."""

    reads = 0

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:  # type: ignore[override]
        self.reads += 1
        return super().get(key, default)


def test_reads_are_cached_across_flushes() -> None:
    owners, nodes = CountingReads(), CountingReads()
    MappingStore(owners, nodes)  # nothing read on construction
    writer = MappingStore(owners, nodes)
    writer.put_node(ProfileNode("p_1", 1.0, {"email": ["a@x.com"]}))
    writer.set_owner("email:a@x.com", "p_1")
    writer.flush()
    store = MappingStore(owners, nodes)
    owners.reads = nodes.reads = 0
    node = store.get_node("p_1")
    assert node is not None and store.get_owner("email:a@x.com") == "p_1"
    assert store.get_owner("email:b@x.com") is None  # an absent owner is cached too
    store.flush()
    assert store.get_node("p_1") is node and store.get_owner("email:a@x.com") == "p_1"
    assert store.get_owner("email:b@x.com") is None
    assert (owners.reads, nodes.reads) == (2, 1)


def test_cached_state_is_what_the_maps_hold() -> None:
    """After every flush, the cached nodes and owners equal what decoding the maps gives."""
    owners: dict[bytes, bytes] = {}
    nodes: dict[bytes, bytes] = {}
    store = MappingStore(owners, nodes)
    node = ProfileNode("p_1", 1, {"email": ["a@x.com"]})  # an int time decodes as a float
    store.put_node(node)
    store.set_owner("email:a@x.com", "p_1")
    store.add_block("np:A000:ls1", "email:a@x.com")
    store.flush()
    node.identifiers["email"].append("b@x.com")
    node.add_link("email:a@x.com", "email:b@x.com", "deterministic", "e2", 2.0, None)
    store.put_node(node)
    store.set_owner("email:b@x.com", "p_1")
    store.del_owner("email:a@x.com")
    store.add_block("np:A000:ls1", "email:b@x.com")
    store.flush()
    fresh = MappingStore(owners, nodes)
    for pid in ("p_1", "p_2"):
        assert store.get_node(pid) == fresh.get_node(pid)
    assert store.get_node("p_1") is node and node.first_seen == 1.0
    assert isinstance(node.first_seen, float)
    for key in ("email:a@x.com", "email:b@x.com"):
        assert store.get_owner(key) == fresh.get_owner(key)
    assert store.get_block("np:A000:ls1") == fresh.get_block("np:A000:ls1")
    assert fresh.get_block("np:A000:ls1") == ["email:a@x.com", "email:b@x.com"]


def test_get_block_returns_a_copy() -> None:
    store = MappingStore({}, {})
    store.add_block("k", "email:a@x.com")
    store.get_block("k").append("email:z@x.com")
    assert store.get_block("k") == ["email:a@x.com"]


def test_caches_are_bounded_and_evicted_entries_are_read_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(graph, "NODE_CACHE_MAX", 8)
    monkeypatch.setattr(graph, "OWNER_CACHE_MAX", 8)
    owners, nodes = CountingReads(), CountingReads()
    store = MappingStore(owners, nodes)
    for i in range(20):
        store.put_node(ProfileNode(f"p_{i}", float(i), {"email": [f"a{i}@x.com"]}))
        store.set_owner(f"email:a{i}@x.com", f"p_{i}")
    store.flush()
    assert len(store._node_cache) <= 8 and len(store._owner_cache) <= 8
    nodes.reads = 0
    for i in range(20):
        node = store.get_node(f"p_{i}")
        assert node is not None and node.identifiers == {"email": [f"a{i}@x.com"]}
        assert store.get_owner(f"email:a{i}@x.com") == f"p_{i}"
        assert store.used(f"p_{i}")
    assert nodes.reads > 0  # the evicted ones came back from the map
    store.flush()  # nothing written, and the caches are trimmed again
    assert len(store._node_cache) <= 8 and len(store._owner_cache) <= 8


def test_retired_ids_stay_used_when_cached_or_evicted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph, "NODE_CACHE_MAX", 1)
    nodes: dict[bytes, bytes] = {}
    store = MappingStore({}, nodes)
    store.put_node(ProfileNode("p_1", 1.0, {}))
    store.flush()
    store.del_node("p_1")
    store.put_node(ProfileNode("p_2", 1.0, {}))
    store.put_node(ProfileNode("p_3", 1.0, {}))
    assert store.used("p_1") and store.get_node("p_1") is None
    store.flush()
    assert nodes[b"p_1"] == RETIRED
    assert store.used("p_1") and store.get_node("p_1") is None and not store.used("p_9")


def test_encode_node_is_the_wire_form() -> None:
    node = ProfileNode("p_1", 1.5, {"email": ["a@x.com"]}, absorbed=2)
    node.add_link("email:a@x.com", "phone:+447700900001", "deterministic", "e1", 1.5, None)
    node.add_origin("email:a@x.com", 1.5, "e1")
    node.add_ban("email:a@x.com", "email:b@x.com")
    assert encode_node(node) == orjson.dumps(node.to_dict())
    node.records["email:a@x.com"] = {"given_name": "ann"}
    assert encode_node(node) == orjson.dumps(node.to_dict())


def test_evidence_keeps_the_earliest_time_then_event_id() -> None:
    """``add_origin`` and ``add_link`` compare (time, event id) as tuples would."""
    cases = [(2.0, "e5"), (1.0, "e9"), (1.0, "e1"), (1.0, "e1"), (3.0, "e0"), (1, "e0")]
    for stored_ts, stored_id in cases:
        for ts, event_id in cases:
            node = ProfileNode("p", 0.0)
            node.add_origin("k", stored_ts, stored_id)
            node.add_link("a", "b", "deterministic", stored_id, stored_ts, None)
            earlier = (ts, event_id) < (float(stored_ts), stored_id)
            assert node.add_origin("k", ts, event_id) is earlier
            assert node.add_link("b", "a", "x", event_id, ts, None) is earlier
            assert node.origins["k"][1] == (event_id if earlier else stored_id)
            assert node.links[0][3] == (event_id if earlier else stored_id)
