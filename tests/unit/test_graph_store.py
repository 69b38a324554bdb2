"""The write-back ``MappingStore``: held until ``flush``, then one write per changed key."""

from __future__ import annotations

from scv.domain.graph import RETIRED, MappingStore, ProfileNode


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
    assert store.get_node("p_1") is not node  # decoded afresh after a flush


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
