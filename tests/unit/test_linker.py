"""Probabilistic matching inside the resolver (off by default, ``matcher=`` turns it on)."""

from __future__ import annotations

from typing import Any

from scv.domain.governance import Rules
from scv.domain.graph import GENERIC, HOUSEHOLD, DictStore, MappingStore, ProfileNode
from scv.domain.matching.linker import Linker
from scv.domain.matching.records import record_from_traits
from scv.domain.model import Identifier, NormalizedEvent
from scv.domain.resolver import resolve
from scv.matchdemo import demo_events

RULES = Rules.default()
ANN = {
    "first_name": "Annabel",
    "last_name": "Featherstone",
    "birth_date": "1984-03-17",
    "address": {"street": "12 High Street", "city": "Leeds", "postcode": "LS4 2AB"},
}


def ev(eid: str, ts: float, *idents: Identifier, **traits: Any) -> NormalizedEvent:
    return NormalizedEvent(eid, "callcenter", "call", ts, list(idents), traits=traits)


def seeded() -> tuple[DictStore, Linker]:
    store = DictStore()
    linker = Linker.load()
    resolve(ev("e1", 1.0, ("email", "ann@x.com"), **ANN), store, RULES, matcher=linker)
    return store, linker


def test_record_from_traits() -> None:
    assert record_from_traits(ANN) == {
        "given_name": "annabel",
        "surname": "featherstone",
        "date_of_birth": "1984-03-17",
        "street_number": "12",
        "address_1": "high street",
        "suburb": "leeds",
        "postcode": "ls42ab",
    }


def test_off_by_default() -> None:
    store = DictStore()
    resolve(ev("e1", 1.0, ("email", "ann@x.com"), **ANN), store, RULES)
    res = resolve(ev("e2", 2.0, ("phone", "+447700900001"), **ANN), store, RULES)
    assert res.created and res.match is None


def test_unknown_phone_with_same_person_traits_links_probabilistically() -> None:
    store, linker = seeded()
    first = store.get_owner("email:ann@x.com")
    traits = {
        "first_name": "ANNABEL",
        "last_name": "Featherstone",
        "birth_date": "1984-03-17",
        "address": {"postcode": "LS4 2AB"},
    }
    res = resolve(ev("e2", 2.0, ("phone", "+447700900001"), **traits), store, RULES, linker)
    assert not res.created and res.profile_id == first
    assert res.match is not None and res.match.rule == "probabilistic"
    assert res.match.score is not None and res.match.score >= linker.upper
    node = store.get_node(first)
    assert node is not None and "+447700900001" in node.identifiers["phone"]
    assert [lk[2] for lk in node.links if "phone:+447700900001" in lk[:2]] == ["probabilistic"]
    assert store.get_owner("phone:+447700900001") == first


def test_same_surname_only_is_another_person() -> None:
    store, linker = seeded()
    traits = {
        "first_name": "Oliver",
        "last_name": "Featherstone",
        "birth_date": "1990-11-02",
        "address": {"postcode": "M3 9ZZ"},
    }
    res = resolve(ev("e2", 2.0, ("phone", "+447700900002"), **traits), store, RULES, linker)
    assert res.created and res.match is None
    assert len(store.nodes) == 2


def test_blocked_and_generic_identifiers_never_link() -> None:
    """They link nothing, whatever the attributes; the event itself still lands on the
    person its attributes name (the next test)."""
    store, linker = seeded()
    pid = store.get_owner("email:ann@x.com")
    store.set_owner("phone:+447700900003", GENERIC)
    blocked = resolve(ev("e2", 2.0, ("email", "test@test.com"), **ANN), store, RULES, linker)
    generic = resolve(ev("e3", 3.0, ("phone", "+447700900003"), **ANN), store, RULES, linker)
    for res in (blocked, generic):
        assert res.accepted == [] and res.merges == [] and res.profile_id == pid
    assert len(store.nodes) == 1
    assert store.get_owner("phone:+447700900003") == GENERIC
    assert store.get_owner("email:test@test.com") is None
    assert store.nodes[pid or ""].identifiers == {"email": ["ann@x.com"]}


def test_governance_limit_refuses_a_match() -> None:
    store, linker = seeded()
    pid = store.get_owner("email:ann@x.com")
    resolve(ev("e2", 2.0, ("email", "ann@x.com"), ("customer_id", "C1")), store, RULES, linker)
    res = resolve(ev("e3", 3.0, ("customer_id", "C2"), **ANN), store, RULES, linker)
    assert res.match is None and res.profile_id != pid
    assert linker.stats["refused"] == 1


def test_records_round_trip_and_old_nodes_load() -> None:
    node = ProfileNode(
        "p", 1.0, {"email": ["a@x.com"]}, records={"email:a@x.com": {"surname": "x"}}
    )
    assert ProfileNode.from_dict(node.to_dict()) == node
    old = node.to_dict()
    del old["records"]
    assert ProfileNode.from_dict(old).records == {}


def test_record_of_a_full_address_and_national_id() -> None:
    traits = {
        "first_name": "Ann",
        "national_id": "AB123456C",
        "address": {"street": "4 Mill Lane", "line2": "Flat 2", "region": "Yorks"},
    }
    assert record_from_traits(traits) == {
        "given_name": "ann",
        "street_number": "4",
        "address_1": "mill lane",
        "address_2": "flat 2",
        "state": "yorks",
        "soc_sec_id": "AB123456C",
    }


def test_each_identifier_keeps_its_own_record_and_later_events_fill_it_in() -> None:
    store, linker = seeded()
    pid = store.get_owner("email:ann@x.com")
    resolve(ev("e2", 2.0, ("email", "ann@x.com"), national_id="X1"), store, RULES, linker)
    resolve(
        # (a slip of her name: a different first name would make the address a shared one)
        ev("e3", 3.0, ("email", "ann@x.com"), ("customer_id", "C9"), first_name="Annabell"),
        store,
        RULES,
        linker,
    )
    node = store.get_node(pid)
    assert node is not None
    assert node.records["email:ann@x.com"]["soc_sec_id"] == "X1"
    assert node.records["email:ann@x.com"]["given_name"] == "annabel"  # first value stays
    # customer_id outranks email, so it anchors e3 and keeps e3's record.
    assert node.records["customer_id:C9"] == {"given_name": "annabell"}


def test_a_candidate_scores_as_its_best_agreeing_record() -> None:
    """A person known under two records (a typo in one) is found from either."""
    store, linker = seeded()
    pid = store.get_owner("email:ann@x.com")
    moved = {**ANN, "address": {"street": "3 Park Road", "city": "York", "postcode": "YO1 7HH"}}
    resolve(ev("e2", 2.0, ("email", "ann@x.com"), ("phone", "+447700900009")), store, RULES)
    node = store.get_node(pid)
    assert node is not None
    linker.remember(record_from_traits(moved), node, "phone:+447700900009", store)
    assert len(node.records) == 2
    res = resolve(ev("e3", 3.0, ("customer_id", "C7"), **moved), store, RULES, linker)
    assert res.profile_id == pid and res.match is not None
    assert res.match.score is not None and res.match.score >= linker.upper


def test_mapping_store_keeps_the_block_index_in_owners() -> None:
    owners: dict[bytes, bytes] = {}
    store = MappingStore(owners, {})
    store.add_block("np:F236:ls42ab", "email:a@x.com")
    store.add_block("np:F236:ls42ab", "email:a@x.com")
    assert store.get_block("np:F236:ls42ab") == ["email:a@x.com"]
    assert store.get_owner("np:F236:ls42ab") is None


def assert_invariants(store: DictStore) -> None:
    seen: dict[str, str] = {}
    for pid, node in store.nodes.items():
        for key in node.keys():
            assert key not in seen, f"{key} in {seen[key]} and {pid}"
            seen[key] = pid
            assert store.get_owner(key) == pid
    for key, owner in store.owners.items():
        if owner not in (GENERIC, HOUSEHOLD) and not key.startswith("\x00"):  # households
            assert key in seen


def test_no_identifier_in_two_profiles_over_demo_traffic() -> None:
    events, _ = demo_events(2000, 7)
    store = DictStore()
    linker = Linker.load()
    for i, event in enumerate(events):
        resolve(event, store, RULES, matcher=linker)
        if i % 100 == 99:
            assert_invariants(store)
    assert_invariants(store)


def test_a_possible_match_is_left_for_review_with_its_explanation() -> None:
    """Between the thresholds: the event gets its own profile and a review request that
    names the candidate, the score and each attribute's weight."""
    store = DictStore()
    linker = Linker.load()
    resolve(ev("e1", 1.0, ("email", "ann@x.com"), **ANN), store, RULES, matcher=linker)
    cautious = Linker(linker.model, upper=10_000.0)  # nothing is sure enough to link
    res = resolve(ev("e2", 2.0, ("phone", "+447700900001"), **ANN), store, RULES, cautious)
    assert res.created and res.match is None
    assert res.review is not None
    assert res.review["candidate"] == store.get_owner("email:ann@x.com")
    assert res.review["candidate_identifier"] == "email:ann@x.com"
    assert res.review["lower"] <= res.review["score"] < res.review["upper"]
    assert res.review["weights"]["surname"] > 0
    assert cautious.stats["possible"] == 1


def test_a_record_that_matches_two_profiles_merges_them_with_the_score_as_reason() -> None:
    """One person known twice without a link (say, before matching was turned on): the next
    record that matches both brings them together, and the merge says why."""
    store, linker = DictStore(), Linker.load()
    for eid, ident in (("e1", ("email", "ann@x.com")), ("e2", ("phone", "+447700900005"))):
        res = resolve(ev(eid, float(eid[1]), ident, **ANN), store, RULES)  # matching off
        node = store.get_node(res.profile_id or "")
        assert node is not None
        linker.remember(record_from_traits(ANN), node, f"{ident[0]}:{ident[1]}", store)
        store.put_node(node)
    assert len(store.nodes) == 2
    res = resolve(ev("e3", 3.0, ("customer_id", "C3"), **ANN), store, RULES, linker)
    assert len(store.nodes) == 1 and not res.created
    [merge] = res.merges
    assert merge.reason.rule == "probabilistic"
    assert merge.reason.identifiers == ["customer_id:C3", "phone:+447700900005"]
    assert merge.reason.score is not None and merge.reason.score >= linker.upper
    assert res.match is not None and res.match.identifiers == ["customer_id:C3", "email:ann@x.com"]


def test_an_event_without_identifiers_lands_on_the_person_its_attributes_name() -> None:
    """A withheld-number call with no customer reference: nothing to link, but the
    attributes are enough to file the call (a cancellation, say) on the right profile."""
    store, linker = seeded()
    pid = store.get_owner("email:ann@x.com")
    before = store.get_node(pid or "")
    res = resolve(ev("e2", 2.0, **ANN), store, RULES, linker)
    assert res.profile_id == pid and res.anchor == ("email", "ann@x.com")
    assert res.accepted == [] and res.merges == [] and not res.created
    assert res.match is not None and res.match.identifiers == ["email:ann@x.com"]
    assert store.get_node(pid or "") == before  # the graph is unchanged

    junk = resolve(ev("e3", 3.0, ("email", "test@test.com"), **ANN), store, RULES, linker)
    assert junk.profile_id == pid and [d.reason for d in junk.dropped] == ["blocked"]


def test_an_unplaced_person_without_identifiers_is_kept_under_a_contact_id_and_found_later() -> (
    None
):
    """Arrival order must not decide: the call comes first, the person's order second."""
    store, linker = DictStore(), Linker.load()
    call = resolve(ev("c1", 1.0, **ANN), store, RULES, linker)
    assert call.created and call.accepted == [("contact", "c1")]
    order = resolve(ev("o1", 2.0, ("email", "ann@x.com"), **ANN), store, RULES, linker)
    assert order.profile_id == call.profile_id and len(store.nodes) == 1
    assert order.match is not None and order.match.identifiers == ["email:ann@x.com", "contact:c1"]

    names_only = resolve(ev("c2", 3.0, first_name="Zed"), store, RULES, linker)
    assert names_only.profile_id is None  # too little of a person to keep


def test_a_profile_that_learns_attributes_finds_the_profile_they_match() -> None:
    """Known identifiers, new attributes: the match is looked for from this side too."""
    store, linker = DictStore(), Linker.load()
    first = resolve(ev("e1", 1.0, ("phone", "+447700900007"), **ANN), store, RULES, linker)
    resolve(ev("e2", 2.0, ("email", "ann@x.com")), store, RULES, linker)
    assert len(store.nodes) == 2
    res = resolve(ev("e3", 3.0, ("email", "ann@x.com"), **ANN), store, RULES, linker)
    assert len(store.nodes) == 1 and res.profile_id == first.profile_id
    [merge] = res.merges
    assert merge.reason.rule == "probabilistic"
    assert merge.reason.identifiers == ["email:ann@x.com", "phone:+447700900007"]
