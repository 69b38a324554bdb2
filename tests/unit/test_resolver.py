"""The deterministic resolver: scenarios from the design, edge cases and graph invariants."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scv.domain import resolver
from scv.domain.governance import IdentifierRule, Rules
from scv.domain.graph import GENERIC, HOUSEHOLD
from scv.domain.model import Identifier, NormalizedEvent, Resolution, ident_key
from scv.domain.resolver import DictStore, ProfileNode, new_profile_id, resolve

DEFAULT = Rules.default()


def ev(event_id: str, ts: float, *idents: Identifier, source: str = "web") -> NormalizedEvent:
    return NormalizedEvent(
        event_id=event_id, source=source, type="test", ts=ts, identifiers=list(idents)
    )


def partition(store: DictStore) -> set[frozenset[str]]:
    return {frozenset(n.keys()) for n in store.nodes.values()}


class CountingStore(DictStore):
    """Counts reads and writes, to hold the resolver to its hot-path promises."""

    __slots__ = ("node_gets", "writes")

    def __init__(self) -> None:
        super().__init__()
        self.node_gets: list[str] = []
        self.writes = 0

    def get_node(self, profile_id: str) -> ProfileNode | None:
        self.node_gets.append(profile_id)
        return super().get_node(profile_id)

    def set_owner(self, key: str, profile_id: str) -> None:
        self.writes += 1
        super().set_owner(key, profile_id)

    def del_owner(self, key: str) -> None:
        self.writes += 1
        super().del_owner(key)

    def put_node(self, node: ProfileNode) -> None:
        self.writes += 1
        super().put_node(node)

    def del_node(self, profile_id: str) -> None:
        self.writes += 1
        super().del_node(profile_id)


# --------------------------------------------------------------------------- scenarios


def test_first_event_creates_profile_with_deterministic_id() -> None:
    store = DictStore()
    res = resolve(ev("e1", 10.0, ("anonymous_id", "ck1")), store, DEFAULT)
    assert res.created
    assert res.profile_id == new_profile_id("e1")
    assert res.accepted == [("anonymous_id", "ck1")]
    assert res.merges == [] and res.dropped == []
    assert store.owners == {"anonymous_id:ck1": res.profile_id}
    assert store.nodes[res.profile_id].first_seen == 10.0


def test_new_profile_id_format_and_stability() -> None:
    pid = new_profile_id("evt-123")
    assert pid == new_profile_id("evt-123")
    assert pid != new_profile_id("evt-124")
    assert pid.startswith("p_") and len(pid) == 22
    int(pid[2:], 16)


def test_login_stitches_cookie_email_and_customer_id() -> None:
    store = DictStore()
    browse = resolve(ev("w1", 100.0, ("anonymous_id", "ck1")), store, DEFAULT)
    click = resolve(ev("m1", 150.0, ("email", "jane@shop.com"), source="email"), store, DEFAULT)
    assert browse.profile_id != click.profile_id

    login = resolve(
        ev(
            "w2",
            200.0,
            ("anonymous_id", "ck1"),
            ("email", "jane@shop.com"),
            ("customer_id", "C1"),
        ),
        store,
        DEFAULT,
    )
    assert login.profile_id == browse.profile_id  # older profile survives, keeps its id
    assert not login.created
    assert login.accepted == [
        ("anonymous_id", "ck1"),
        ("email", "jane@shop.com"),
        ("customer_id", "C1"),
    ]
    [merge] = login.merges
    assert (merge.survivor, merge.absorbed) == (browse.profile_id, click.profile_id)
    assert merge.reason.rule == "deterministic"
    assert merge.reason.identifiers == ["email:jane@shop.com"]
    assert (merge.reason.event_id, merge.reason.ts) == ("w2", 200.0)
    assert partition(store) == {
        frozenset({"anonymous_id:ck1", "email:jane@shop.com", "customer_id:C1"})
    }
    assert browse.profile_id is not None
    node = store.nodes[browse.profile_id]
    assert node.absorbed == 1
    assert node.identifiers == {
        "anonymous_id": ["ck1"],
        "email": ["jane@shop.com"],
        "customer_id": ["C1"],
    }


def test_transaction_links_by_email_then_later_by_phone() -> None:
    store = DictStore()
    web = resolve(ev("w1", 1.0, ("email", "bob@mail.com"), ("anonymous_id", "ck9")), store, DEFAULT)
    call = resolve(ev("c1", 2.0, ("phone", "+447700900123"), source="callcenter"), store, DEFAULT)
    tx1 = resolve(
        ev("t1", 3.0, ("customer_id", "C9"), ("email", "bob@mail.com"), source="transactions"),
        store,
        DEFAULT,
    )
    assert tx1.profile_id == web.profile_id and tx1.merges == []
    assert call.profile_id != web.profile_id

    tx2 = resolve(
        ev("t2", 4.0, ("customer_id", "C9"), ("phone", "+447700900123"), source="transactions"),
        store,
        DEFAULT,
    )
    assert tx2.profile_id == web.profile_id
    [merge] = tx2.merges
    assert merge.absorbed == call.profile_id
    assert merge.reason.identifiers == ["phone:+447700900123"]
    assert len(store.nodes) == 1
    assert store.owners["phone:+447700900123"] == web.profile_id


def test_blocked_email_never_merges_two_people() -> None:
    store = DictStore()
    a = resolve(ev("a", 1.0, ("customer_id", "C1"), ("email", "test@test.com")), store, DEFAULT)
    b = resolve(ev("b", 2.0, ("customer_id", "C2"), ("email", "test@test.com")), store, DEFAULT)
    assert a.profile_id != b.profile_id
    assert [(d.identifier, d.reason) for d in b.dropped] == [
        (("email", "test@test.com"), "blocked")
    ]
    assert "email:test@test.com" not in store.owners
    assert b.merges == []


def test_only_blocked_identifiers_resolve_to_nobody() -> None:
    store = DictStore()
    res = resolve(
        ev("x", 1.0, ("anonymous_id", "null"), ("phone", "+442079460000")), store, DEFAULT
    )
    assert res == Resolution(
        profile_id=None, accepted=[], dropped=res.dropped, merges=[], created=False
    )
    assert [d.reason for d in res.dropped] == ["blocked", "blocked"]
    assert store.owners == {} and store.nodes == {}


def test_event_without_identifiers_resolves_to_nobody() -> None:
    res = resolve(ev("x", 1.0), DictStore(), DEFAULT)
    assert res.profile_id is None and not res.created and res.dropped == []


def test_shared_device_does_not_merge_two_customers() -> None:
    store = DictStore()
    a = resolve(ev("a", 1.0, ("customer_id", "C1"), ("device_id", "tablet")), store, DEFAULT)
    b = resolve(ev("b", 2.0, ("customer_id", "C2"), ("device_id", "tablet")), store, DEFAULT)
    assert a.profile_id != b.profile_id
    assert b.created
    assert b.accepted == [("customer_id", "C2")]
    assert [(d.identifier, d.reason) for d in b.dropped] == [
        (("device_id", "tablet"), "limit:customer_id")
    ]
    # Two customers on one device: it is shared (a household's), so it links neither.
    assert b.households == ["device_id:tablet"]
    assert store.owners["device_id:tablet"] == HOUSEHOLD
    assert partition(store) == {frozenset({"customer_id:C1"}), frozenset({"customer_id:C2"})}


def test_two_customer_ids_in_one_event_keep_the_first() -> None:
    store = DictStore()
    res = resolve(ev("a", 1.0, ("customer_id", "C1"), ("customer_id", "C2")), store, DEFAULT)
    assert res.accepted == [("customer_id", "C1")]
    assert [(d.identifier, d.reason) for d in res.dropped] == [
        (("customer_id", "C2"), "limit:customer_id")
    ]


def test_priority_decides_which_identifier_is_dropped() -> None:
    """The cookie (low priority) links to a profile with another customer id; the event's
    customer id wins and the cookie is dropped, whatever the order within the event."""
    store = DictStore()
    resolve(ev("a", 1.0, ("customer_id", "C1"), ("anonymous_id", "ck")), store, DEFAULT)
    res = resolve(ev("b", 2.0, ("anonymous_id", "ck"), ("customer_id", "C2")), store, DEFAULT)
    assert res.created
    assert res.accepted == [("customer_id", "C2")]
    assert [d.reason for d in res.dropped] == ["limit:customer_id"]


def test_survivor_is_the_older_profile_not_the_first_created() -> None:
    store = DictStore()
    late = resolve(ev("late", 500.0, ("email", "a@xmail.com")), store, DEFAULT)
    # A back-filled event with an older timestamp creates its profile afterwards.
    old = resolve(ev("old", 100.0, ("phone", "+447700900001")), store, DEFAULT)
    res = resolve(
        ev("link", 600.0, ("email", "a@xmail.com"), ("phone", "+447700900001")), store, DEFAULT
    )
    assert res.profile_id == old.profile_id
    [merge] = res.merges
    assert (merge.survivor, merge.absorbed) == (old.profile_id, late.profile_id)
    assert old.profile_id is not None
    assert store.nodes[old.profile_id].first_seen == 100.0
    assert late.profile_id not in store.nodes


def test_survivor_tie_on_first_seen_goes_to_smaller_id() -> None:
    store = DictStore()
    p1 = resolve(ev("e1", 5.0, ("email", "a@xmail.com")), store, DEFAULT).profile_id
    p2 = resolve(ev("e2", 5.0, ("email", "b@xmail.com")), store, DEFAULT).profile_id
    assert p1 is not None and p2 is not None
    res = resolve(ev("e3", 6.0, ("email", "b@xmail.com"), ("email", "a@xmail.com")), store, DEFAULT)
    assert res.profile_id == min(p1, p2)


def test_merge_chain_of_three_profiles_in_one_event() -> None:
    store = DictStore()
    a = resolve(ev("a", 3.0, ("email", "a@xmail.com")), store, DEFAULT).profile_id
    b = resolve(ev("b", 1.0, ("phone", "+447700900002")), store, DEFAULT).profile_id
    c = resolve(ev("c", 2.0, ("anonymous_id", "ck"), ("device_id", "d")), store, DEFAULT).profile_id
    res = resolve(
        ev(
            "abc",
            9.0,
            ("anonymous_id", "ck"),
            ("email", "a@xmail.com"),
            ("device_id", "d"),
            ("phone", "+447700900002"),
            ("customer_id", "C7"),
        ),
        store,
        DEFAULT,
    )
    assert res.profile_id == b  # oldest first_seen
    # absorbed profiles in (first_seen, id) order: c (2.0) then a (3.0)
    assert [(m.survivor, m.absorbed) for m in res.merges] == [(b, c), (b, a)]
    assert res.merges[0].reason.identifiers == ["anonymous_id:ck", "device_id:d"]
    assert res.merges[1].reason.identifiers == ["email:a@xmail.com"]
    assert b is not None and list(store.nodes) == [b]
    node = store.nodes[b]
    assert node.absorbed == 2
    assert set(node.keys()) == {
        "email:a@xmail.com",
        "phone:+447700900002",
        "anonymous_id:ck",
        "device_id:d",
        "customer_id:C7",
    }
    assert all(owner == b for owner in store.owners.values())


def test_absorbed_count_accumulates_through_chains() -> None:
    store = DictStore()
    for i in range(4):
        resolve(ev(f"e{i}", float(i), ("email", f"u{i}@x.com")), store, DEFAULT)
    resolve(ev("m1", 10.0, ("email", "u2@x.com"), ("email", "u3@x.com")), store, DEFAULT)
    res = resolve(
        ev("m2", 11.0, ("email", "u0@x.com"), ("email", "u1@x.com"), ("email", "u3@x.com")),
        store,
        DEFAULT,
    )
    assert res.profile_id == new_profile_id("e0")
    assert store.nodes[new_profile_id("e0")].absorbed == 3


def _cap_rules(cap: int) -> Rules:
    return Rules(
        identifiers={"email": IdentifierRule(100, 10), "phone": IdentifierRule(100, 5)},
        merge_cap=cap,
    )


def test_merge_cap_refuses_further_merges() -> None:
    rules = _cap_rules(1)
    store = DictStore()
    for i in range(3):
        resolve(ev(f"e{i}", float(i), ("email", f"u{i}@x.com")), store, rules)
    first = resolve(ev("m1", 5.0, ("email", "u0@x.com"), ("email", "u1@x.com")), store, rules)
    assert len(first.merges) == 1
    second = resolve(
        ev("m2", 6.0, ("email", "u0@x.com"), ("email", "u2@x.com"), ("phone", "+447700900003")),
        store,
        rules,
    )
    assert second.profile_id == new_profile_id("e0")
    assert second.merges == []
    assert [(d.identifier, d.reason) for d in second.dropped] == [
        (("email", "u2@x.com"), "merge_cap")
    ]
    # A new identifier is not a merge: it still attaches.
    assert second.accepted == [("email", "u0@x.com"), ("phone", "+447700900003")]
    assert len(store.nodes) == 2


def test_merge_cap_within_one_event() -> None:
    rules = _cap_rules(1)
    store = DictStore()
    for i in range(3):
        resolve(ev(f"e{i}", float(i), ("email", f"u{i}@x.com")), store, rules)
    res = resolve(
        ev("m", 5.0, ("email", "u2@x.com"), ("email", "u1@x.com"), ("email", "u0@x.com")),
        store,
        rules,
    )
    # Walk order (equal priority -> by key): u0's profile, then u1's merges (cap 1 used),
    # then u2's would be a second absorption: refused. Survivor is the oldest involved: e0.
    assert res.profile_id == new_profile_id("e0")
    assert [(d.identifier, d.reason) for d in res.dropped] == [(("email", "u2@x.com"), "merge_cap")]
    assert [m.absorbed for m in res.merges] == [new_profile_id("e1")]


def test_merge_cap_zero_still_allows_growth() -> None:
    rules = _cap_rules(0)
    store = DictStore()
    resolve(ev("a", 1.0, ("email", "a@xmail.com")), store, rules)
    res = resolve(ev("b", 2.0, ("email", "a@xmail.com"), ("phone", "+447700900004")), store, rules)
    assert res.accepted == [("email", "a@xmail.com"), ("phone", "+447700900004")]


def test_event_already_on_one_profile_is_a_no_op_without_writes() -> None:
    store = CountingStore()
    first = resolve(
        ev("a", 1.0, ("customer_id", "C1"), ("email", "a@xmail.com"), ("anonymous_id", "ck")),
        store,
        DEFAULT,
    )
    before = store.to_dict()
    store.writes = 0
    store.node_gets.clear()
    # Same pair as before (the anchor customer_id with the email), later: no new evidence.
    res = resolve(ev("b", 2.0, ("email", "a@xmail.com"), ("customer_id", "C1")), store, DEFAULT)
    assert res.profile_id == first.profile_id
    assert res.merges == [] and not res.created
    assert store.writes == 0
    assert store.node_gets == [first.profile_id]  # fetched once, not once per identifier
    assert store.to_dict() == before


def test_each_node_is_read_at_most_once_per_event() -> None:
    store = CountingStore()
    resolve(ev("a", 1.0, ("email", "a@xmail.com"), ("anonymous_id", "a1")), store, DEFAULT)
    resolve(ev("b", 2.0, ("email", "b@xmail.com"), ("anonymous_id", "b1")), store, DEFAULT)
    store.node_gets.clear()
    resolve(
        ev(
            "c",
            3.0,
            ("email", "a@xmail.com"),
            ("anonymous_id", "a1"),
            ("email", "b@xmail.com"),
            ("anonymous_id", "b1"),
        ),
        store,
        DEFAULT,
    )
    assert sorted(store.node_gets) == sorted({new_profile_id("a"), new_profile_id("b")})


def test_redelivered_event_does_not_create_a_second_profile() -> None:
    store = DictStore()
    event = ev("dup", 1.0, ("email", "a@xmail.com"), ("phone", "+447700900005"))
    first = resolve(event, store, DEFAULT)
    snapshot = store.to_dict()
    again = resolve(event, store, DEFAULT)
    assert again.profile_id == first.profile_id
    assert not again.created and again.merges == []
    assert again.accepted == first.accepted
    assert store.to_dict() == snapshot


def test_duplicate_identifiers_in_one_event() -> None:
    store = DictStore()
    res = resolve(
        ev(
            "d",
            1.0,
            ("email", "a@xmail.com"),
            ("email", "a@xmail.com"),
            ("anonymous_id", "null"),
            ("anonymous_id", "null"),
        ),
        store,
        DEFAULT,
    )
    assert res.accepted == [("email", "a@xmail.com")]
    assert [d.identifier for d in res.dropped] == [("anonymous_id", "null")]
    assert store.nodes[res.profile_id or ""].identifiers == {"email": ["a@xmail.com"]}


def test_dangling_owner_is_treated_as_unowned() -> None:
    store = DictStore()
    store.set_owner("email:a@xmail.com", "p_gone")
    res = resolve(ev("a", 1.0, ("email", "a@xmail.com")), store, DEFAULT)
    assert res.created
    assert store.owners == {"email:a@xmail.com": res.profile_id}


def test_profile_over_a_tightened_limit_is_reachable_but_cannot_grow() -> None:
    store = DictStore()
    loose = Rules(identifiers={"email": IdentifierRule(5, 10)})
    tight = Rules(identifiers={"email": IdentifierRule(1, 10)})
    p = resolve(
        ev("a", 1.0, ("email", "a@xmail.com"), ("email", "b@xmail.com")), store, loose
    ).profile_id
    res = resolve(ev("b", 2.0, ("email", "a@xmail.com"), ("email", "c@xmail.com")), store, tight)
    assert res.profile_id == p
    assert res.accepted == [("email", "a@xmail.com")]
    assert [d.reason for d in res.dropped] == ["limit:email"]


def test_created_id_never_overwrites_a_live_profile() -> None:
    store = DictStore()
    squatter = ProfileNode(new_profile_id("e1"), 0.0, {"email": ["z@xmail.com"]})
    store.put_node(squatter)
    store.set_owner("email:z@xmail.com", squatter.profile_id)
    res = resolve(ev("e1", 1.0, ("email", "a@xmail.com")), store, DEFAULT)
    assert res.created and res.profile_id not in (None, squatter.profile_id)
    assert store.nodes[squatter.profile_id].identifiers == {"email": ["z@xmail.com"]}


def test_profile_node_round_trip() -> None:
    node = ProfileNode("p_1", 1.5, {"email": ["a@xmail.com", "b@xmail.com"], "phone": ["+44"]}, 3)
    assert ProfileNode.from_dict(node.to_dict()) == node
    assert node.count("email") == 2 and node.count("customer_id") == 0
    assert node.keys() == ["email:a@xmail.com", "email:b@xmail.com", "phone:+44"]
    d = node.to_dict()
    d["identifiers"]["email"].append("c@xmail.com")
    assert node.count("email") == 2  # to_dict copies


def test_merge_event_serialises() -> None:
    store = DictStore()
    resolve(ev("a", 1.0, ("email", "a@xmail.com")), store, DEFAULT)
    resolve(ev("b", 2.0, ("phone", "+447700900006")), store, DEFAULT)
    res = resolve(
        ev("c", 3.0, ("email", "a@xmail.com"), ("phone", "+447700900006")), store, DEFAULT
    )
    assert res.merges[0].to_dict() == {
        "kind": "merge",
        "survivor": new_profile_id("a"),
        "absorbed": new_profile_id("b"),
        "reason": {
            "rule": "deterministic",
            "identifiers": ["phone:+447700900006"],
            "event_id": "c",
            "ts": 3.0,
            "score": None,
        },
    }


# --------------------------------------------------------------------------- properties

UNIVERSE: list[Identifier] = (
    [("customer_id", f"c{i}") for i in range(3)]
    + [("email", f"e{i}@x.com") for i in range(4)]
    + [("phone", f"+4477009000{i:02d}") for i in range(3)]
    + [("device_id", f"d{i}") for i in range(2)]
    + [("anonymous_id", f"a{i}") for i in range(4)]
    + [("mystery", "m0")]  # falls back to the default rule
)
TYPES = sorted({t for t, _ in UNIVERSE})

ident_lists: st.SearchStrategy[list[Identifier]] = st.lists(
    st.sampled_from(UNIVERSE), min_size=1, max_size=5
)


@st.composite
def event_sequences(draw: st.DrawFn, max_size: int = 25) -> list[NormalizedEvent]:
    """Events over a tiny identifier universe (frequent collisions), with timestamp ties,
    duplicate identifiers and exact re-deliveries of earlier events."""
    n = draw(st.integers(min_value=1, max_value=max_size))
    events: list[NormalizedEvent] = []
    for i in range(n):
        if events and draw(st.integers(0, 9)) == 0:
            events.append(draw(st.sampled_from(events)))  # re-delivery, same event_id
            continue
        ts = float(draw(st.integers(0, 10)))
        idents = [] if draw(st.integers(0, 19)) == 0 else draw(ident_lists)
        events.append(ev(f"ev{i}", ts, *idents))
    return events


@st.composite
def random_rules(draw: st.DrawFn) -> Rules:
    idents = {
        t: IdentifierRule(draw(st.integers(1, 6)), draw(st.integers(0, 4)))
        for t in TYPES
        if t != "mystery"
    }
    blocked = draw(st.frozensets(st.sampled_from(UNIVERSE), max_size=2))
    return Rules(
        identifiers=idents,
        blocked_exact=frozenset(ident_key(i) for i in blocked),
        merge_cap=draw(st.integers(0, 6)),
        default_rule=IdentifierRule(draw(st.integers(1, 4)), draw(st.integers(0, 4))),
    )


GENEROUS = Rules(
    identifiers={t: IdentifierRule(1000, p) for p, t in enumerate(TYPES)},
    merge_cap=10**6,
)


def check_store(store: DictStore, rules: Rules) -> None:
    """(a) owners and nodes agree both ways, no identifier twice; (b) limits hold."""
    seen: set[str] = set()
    for pid, node in store.nodes.items():
        assert node.profile_id == pid
        owned = node.keys()
        for key in owned:
            assert key not in seen, f"{key} owned twice"
            seen.add(key)
            assert store.owners.get(key) == pid
        for kind, values in node.identifiers.items():
            assert len(values) <= rules.rule(kind).max_per_profile, (pid, kind)
        assert node.absorbed <= rules.merge_cap
    owners = {k: o for k, o in store.owners.items() if not k.startswith("\x00")}  # households
    shared = {k for k, o in owners.items() if o in (GENERIC, HOUSEHOLD)}
    assert set(owners) == seen | shared
    assert set(owners.values()) - {GENERIC, HOUSEHOLD} <= set(store.nodes)


def check_merges(store: DictStore, merged_into: dict[str, str]) -> None:
    """(c) every absorbed id is dead and its chain of merges ends at a live profile."""
    for absorbed in merged_into:
        assert absorbed not in store.nodes
        pid, hops = absorbed, 0
        while pid not in store.nodes:
            pid = merged_into[pid]
            hops += 1
            assert hops <= len(merged_into), "merge cycle"


def check_resolution(event: NormalizedEvent, res: Resolution, store: DictStore) -> None:
    distinct = list(dict.fromkeys(event.identifiers))
    assert sorted(res.accepted + [d.identifier for d in res.dropped]) == sorted(distinct)
    assert [i for i in distinct if i in set(res.accepted)] == res.accepted  # event order
    for ident in res.accepted:
        assert store.owners[ident_key(ident)] == res.profile_id
    if res.profile_id is None:
        assert res.accepted == [] and res.merges == []
    else:
        assert res.profile_id in store.nodes
    for merge in res.merges:
        assert merge.reason.identifiers  # something tied it
        if res.splits:  # merged, then split back along the evidence: the event moved on
            continue
        assert merge.survivor == res.profile_id
        assert set(merge.reason.identifiers) <= {ident_key(i) for i in res.accepted}


def run(events: Iterable[NormalizedEvent], rules: Rules) -> tuple[DictStore, list[Resolution]]:
    store = DictStore()
    merged_into: dict[str, str] = {}
    results = []
    for event in events:
        res = resolve(event, store, rules)
        for merge in res.merges:
            merged_into[merge.absorbed] = merge.survivor
        check_resolution(event, res, store)
        check_store(store, rules)
        check_merges(store, merged_into)
        results.append(res)
    return store, results


@settings(max_examples=300, deadline=None)
@given(events=event_sequences(), rules=random_rules())
def test_invariants_hold_after_every_event(events: list[NormalizedEvent], rules: Rules) -> None:
    store, results = run(events, rules)
    # (d) determinism: replaying the same input gives the same store and decisions.
    replay_store, replay_results = run(events, rules)
    assert replay_store.to_dict() == store.to_dict()
    assert replay_results == results


@settings(max_examples=200, deadline=None)
@given(events=event_sequences(max_size=20), data=st.data())
def test_without_limits_profiles_are_connected_components(
    events: list[NormalizedEvent], data: st.DataObject
) -> None:
    # (e) with nothing to refuse, stitching is exactly graph connectivity, so the partition
    # of identifiers is independent of event order.
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for event in events:
        keys = [ident_key(i) for i in event.identifiers]
        for k in keys:
            parent.setdefault(k, k)
        for k in keys[1:]:
            parent[find(k)] = find(keys[0])
    components: dict[str, set[str]] = {}
    for k in parent:
        components.setdefault(find(k), set()).add(k)
    expected = {frozenset(c) for c in components.values()}

    store, _ = run(events, GENEROUS)
    assert partition(store) == expected

    shuffled = data.draw(st.permutations(events))
    shuffled_store, _ = run(shuffled, GENEROUS)
    assert partition(shuffled_store) == expected


@settings(max_examples=150, deadline=None)
@given(events=event_sequences(max_size=15), rules=random_rules())
def test_redelivering_a_processed_prefix_never_creates_profiles(
    events: list[NormalizedEvent], rules: Rules
) -> None:
    """After a crash the resolver re-reads events it already applied. Whatever happened
    since, a re-delivered event finds its identifiers owned: no second profile."""
    store, results = run(events, rules)
    for event, first in zip(events, results, strict=True):
        again = resolve(event, store, rules)
        if first.profile_id is not None:
            assert not again.created
            assert again.profile_id is not None
    check_store(store, rules)


@st.composite
def rules_with_generic(draw: st.DrawFn) -> Rules:
    """:func:`random_rules` where some types also go generic (so splits happen)."""
    base = draw(random_rules())
    idents = {
        t: IdentifierRule(r.max_per_profile, r.priority, draw(st.sampled_from([None, 1, 2])))
        for t, r in base.identifiers.items()
    }
    return Rules(
        identifiers=idents,
        blocked_exact=base.blocked_exact,
        merge_cap=base.merge_cap,
        default_rule=base.default_rule,
    )


@settings(max_examples=400, deadline=None)
@given(events=event_sequences(max_size=30), rules=rules_with_generic())
def test_fast_path_decides_as_the_general_path(events: list[NormalizedEvent], rules: Rules) -> None:
    """``resolve`` takes a short cut for events whose identifiers all sit on one profile:
    it must give the same decisions and leave the same graph as the general path."""
    fast, general = DictStore(), DictStore()
    for event in events:
        seen = list(dict.fromkeys(event.identifiers))
        shortcut = resolver._on_one_profile(event, seen, fast, rules) if seen else None
        if shortcut is None:
            shortcut = resolver._resolve(event, seen, fast, rules, None)
        assert shortcut == resolver._resolve(event, seen, general, rules, None)
        assert fast.to_dict() == general.to_dict()
        assert fast.retired == general.retired


def test_fast_path_is_taken_for_known_identifiers() -> None:
    store = DictStore()
    first = resolve(ev("a", 1.0, ("email", "a@xmail.com"), ("anonymous_id", "a1")), store, DEFAULT)
    again = ev("b", 2.0, ("anonymous_id", "a1"), ("email", "a@xmail.com"))
    res = resolver._on_one_profile(again, list(again.identifiers), store, DEFAULT)
    assert res is not None and res.profile_id == first.profile_id
    unknown = ev("c", 3.0, ("anonymous_id", "a1"), ("email", "new@x.com"))
    assert resolver._on_one_profile(unknown, list(unknown.identifiers), store, DEFAULT) is None


@pytest.mark.parametrize("n", [2000])
def test_resolver_is_fast_on_a_long_replay(n: int) -> None:
    import time

    store = DictStore()
    start = time.perf_counter()
    for i in range(n):
        resolve(
            ev(
                f"e{i}",
                float(i),
                ("anonymous_id", f"a{i}"),
                ("email", f"u{i % 500}@x.com"),
                ("customer_id", f"c{i % 700}"),
            ),
            store,
            DEFAULT,
        )
    elapsed = time.perf_counter() - start
    check_store(store, DEFAULT)
    assert elapsed < 2.0, f"{n} events took {elapsed:.2f}s"
