"""Per-anchor partial profile states: filing, splitting, adoption and re-routing."""

from __future__ import annotations

from typing import Any

from examples import ev
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_profile import events as profile_events

from scv.domain.governance import Rules
from scv.domain.model import CHURN_SAVE, Identifier, NormalizedEvent, action_id, ident_key
from scv.domain.parts import Adoption, adopt, file_event, rebuild, reroute, split_state
from scv.domain.profile import ProfileState, absorb, apply_event, new_state, snapshot

NOW = 1000.0
WINDOW = 60.0
RULES = Rules.default()

ANN = ("email", "ann@acme-corp.co.uk")
ANN_COOKIE = ("anonymous_id", "ck-ann")
BOB = ("email", "bob@acme-corp.co.uk")
CAROL_COOKIE = ("anonymous_id", "ck-carol")
SHOP_PHONE = ("phone", "+447700900111")

ANN_KEYS = [ident_key(ANN), ident_key(ANN_COOKIE)]
BOB_KEYS = [ident_key(BOB)]


def anchor_of(event: NormalizedEvent) -> Identifier | None:
    """What the resolver picks: the highest-priority identifier."""
    ordered = RULES.priority_order(event.identifiers)
    return ordered[0] if ordered else None


def file(state: ProfileState, event: NormalizedEvent, anchor: Identifier | None = None) -> None:
    file_event(state, anchor or anchor_of(event), event, list(event.identifiers), NOW, WINDOW)


def copy(state: ProfileState) -> ProfileState:
    return ProfileState.from_dict(state.to_dict())


def _story_events() -> list[NormalizedEvent]:
    return [
        ev(
            "web",
            "signup",
            100.0,
            [ANN, ANN_COOKIE],
            traits={"first_name": "Ann", "address": {"city": "Leeds"}},
            consent={"marketing": True},
            event_id="ann-signup",
        ),
        ev(
            "web",
            "cart_add",
            101.0,
            [ANN_COOKIE],
            payload={"cart": {"cart_id": "cart-ann", "items": [{"sku": "A", "qty": 1}]}},
            event_id="ann-cart",
        ),
        ev(
            "transactions",
            "order",
            102.0,
            [ANN],
            payload={"order_id": "o-1", "total": 20.0},
            event_id="ann-order",
        ),
        ev(
            "email",
            "unsubscribe",
            103.0,
            [BOB],
            traits={"first_name": "Bob"},
            event_id="bob-unsub",
        ),
        ev("web", "page_view", 104.0, [], event_id="nobody"),
    ]


# --------------------------------------------------------------------------- file_event


def test_file_event_keeps_the_aggregate_and_one_partial_per_anchor() -> None:
    plain = new_state("p1", 100.0)
    filed = new_state("p1", 100.0)
    for event in _story_events():
        apply_event(plain, event, list(event.identifiers), NOW, WINDOW)
        file(filed, event)
    assert snapshot(filed) == snapshot(plain)
    assert filed.to_dict() | {"parts": {}} == plain.to_dict()
    # ann-signup and ann-order are anchored on Ann's email, the cart on her cookie, Bob's
    # unsubscribe on his email; the event without identifiers has no anchor.
    assert sorted(filed.parts) == sorted([ident_key(ANN), ident_key(ANN_COOKIE), ident_key(BOB)])
    assert filed.parts[ident_key(ANN)].event_count == 2
    assert filed.parts[ident_key(ANN_COOKIE)].event_count == 1
    assert filed.parts[ident_key(BOB)].event_count == 1
    assert sum(p.event_count for p in filed.parts.values()) == filed.event_count - 1
    assert filed.parts[ident_key(BOB)].traits == {"first_name": "Bob"}
    assert filed.parts[ident_key(BOB)].consent["marketing"]["granted"] is False
    assert all(p.profile_id == "p1" and p.parts == {} for p in filed.parts.values())


def test_partials_survive_serialisation() -> None:
    state = new_state("p1", 100.0)
    for event in _story_events():
        file(state, event)
    again = ProfileState.from_dict(state.to_dict())
    assert again == state
    assert again.parts[ident_key(ANN)].orders["count"] == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(profile_events(), max_size=15))
def test_file_event_never_changes_the_aggregate(events: list[NormalizedEvent]) -> None:
    plain = new_state("p1", 0.0)
    filed = new_state("p1", 0.0)
    for event in events:
        apply_event(plain, event, list(event.identifiers), NOW, WINDOW)
        file(filed, event)
    assert snapshot(filed) == snapshot(plain)
    anchors = {ident_key(a) for e in events if (a := anchor_of(e)) is not None}
    assert set(filed.parts) == anchors
    assert sum(p.event_count for p in filed.parts.values()) == sum(
        1 for e in events if e.identifiers
    )


# --------------------------------------------------------------------------- split_state


def _fused_state() -> ProfileState:
    """Ann's profile (pA) absorbed Bob's (pB); Bob's profile also holds a call from the
    shop's phone, which later turns out to be generic."""
    ann = new_state("pA", 100.0)
    file(
        ann,
        ev(
            "web",
            "signup",
            100.0,
            [ANN, ANN_COOKIE],
            traits={"first_name": "Ann"},
            consent={"marketing": True},
            event_id="a1",
        ),
    )
    file(ann, ev("web", "page_view", 101.0, [ANN_COOKIE], event_id="a2"))
    ann.fired = ["act-ann"]
    ann.last_action_ts = {"abandoned_cart": 50.0}

    bob = new_state("pB", 105.0)
    file(
        bob,
        ev(
            "web",
            "signup",
            105.0,
            [BOB],
            traits={"first_name": "Bob"},
            consent={"marketing": False},
            event_id="b1",
        ),
    )
    file(
        bob,
        ev(
            "callcenter",
            "call",
            110.0,
            [SHOP_PHONE],
            traits={"last_name": "Shopkeeper"},
            payload={"disposition": {"cancel_intent": True}},
            event_id="b2",
        ),
    )
    bob.fired = ["act-bob"]
    bob.last_action_ts = {"churn_save": 60.0}

    absorb(ann, bob)
    # The fused profile mixes both people: Bob's later name, the stricter consent.
    assert ann.traits["first_name"] == "Bob"
    assert ann.consent["marketing"]["granted"] is False
    assert ann.churn is not None
    return ann


def test_split_state_gives_each_person_back_their_own_history() -> None:
    fused = _fused_state()
    fired = list(fused.fired)
    assert sorted(fired) == ["act-ann", "act-bob"]
    kept, adoptions = split_state(
        fused, {"pA": ANN_KEYS, "pNew": BOB_KEYS}, removed=[ident_key(SHOP_PHONE)]
    )

    assert kept is not None and kept.profile_id == "pA"
    assert kept.traits == {"first_name": "Ann"}
    assert kept.consent["marketing"]["granted"] is True
    assert kept.identifiers == {"email": [ANN[1]], "anonymous_id": [ANN_COOKIE[1]]}
    assert sorted(kept.parts) == sorted(ANN_KEYS)
    assert kept.event_count == 2 and kept.channels == {"web": 2}
    assert kept.churn is None  # the shop-phone call belongs to nobody
    assert kept.fired == fired
    assert kept.last_action_ts == {"abandoned_cart": 50.0, "churn_save": 60.0}
    assert kept.moved == {ident_key(BOB): ["pNew", 0], ident_key(SHOP_PHONE): ["", 0]}

    [adoption] = adoptions
    assert (adoption.profile_id, adoption.origin) == ("pNew", "pA")
    assert adoption.identifiers == BOB_KEYS
    assert list(adoption.partials) == BOB_KEYS
    assert adoption.fired == fired

    bob, _ = adopt(None, adoption)
    assert bob.profile_id == "pNew"
    assert bob.traits == {"first_name": "Bob"}
    assert bob.consent["marketing"]["granted"] is False
    assert bob.identifiers == {"email": [BOB[1]]}
    assert bob.event_count == 1 and bob.channels == {"web": 1}
    assert bob.churn is None and "last_name" not in bob.traits
    assert bob.fired == fired
    assert bob.merged_from == []
    assert bob.created_ts == 105.0


def test_split_state_drops_events_anchored_on_a_generic_key_from_every_part() -> None:
    fused = _fused_state()
    kept, adoptions = split_state(fused, {"pA": ANN_KEYS + BOB_KEYS}, [ident_key(SHOP_PHONE)])
    assert adoptions == []
    assert kept is not None
    assert ident_key(SHOP_PHONE) not in kept.parts
    assert "last_name" not in kept.traits and kept.churn is None
    assert kept.channels == {"web": 3}
    assert kept.event_count == fused.event_count - 1


def test_split_state_when_the_profile_id_is_gone() -> None:
    fused = _fused_state()
    kept, adoptions = split_state(fused, {"pX": ANN_KEYS, "pY": BOB_KEYS}, [])
    assert kept is None
    assert [(a.profile_id, a.origin, a.identifiers) for a in adoptions] == [
        ("pX", "pA", ANN_KEYS),
        ("pY", "pA", BOB_KEYS),
    ]
    assert adopt(None, adoptions[0])[0].traits == {"first_name": "Ann"}
    # The shop-phone partial was neither removed nor placed: it goes nowhere.
    assert all(ident_key(SHOP_PHONE) not in a.partials for a in adoptions)


def test_split_state_files_unplaced_anchors_with_the_kept_part() -> None:
    fused = _fused_state()
    # The resolver did not list the phone in any part and did not remove it.
    kept, _ = split_state(fused, {"pA": ANN_KEYS, "pNew": BOB_KEYS}, [])
    assert kept is not None
    assert ident_key(SHOP_PHONE) in kept.parts
    assert kept.traits["last_name"] == "Shopkeeper"


def test_adoption_round_trip() -> None:
    _, [adoption] = split_state(
        _fused_state(), {"pA": ANN_KEYS, "pNew": BOB_KEYS}, [ident_key(SHOP_PHONE)]
    )
    d = adoption.to_dict()
    assert d["kind"] == "adopt"
    again = Adoption.from_dict(d)
    assert again == adoption


# --------------------------------------------------------------------------- adopt / reroute


def test_adopt_into_a_state_that_already_got_events_keeps_both() -> None:
    _, [adoption] = split_state(
        _fused_state(), {"pA": ANN_KEYS, "pNew": BOB_KEYS}, [ident_key(SHOP_PHONE)]
    )
    # An event for the new part overtook the adoption message.
    early = new_state("pNew", 120.0)
    file(early, ev("web", "login", 120.0, [BOB], traits={"last_name": "Brown"}, event_id="b3"))
    file(early, ev("web", "page_view", 121.0, [("anonymous_id", "ck-bob")], event_id="b4"))
    early.fired = ["act-new"]

    state, _ = adopt(copy(early), adoption)
    assert state.profile_id == "pNew"
    assert state.traits == {"first_name": "Bob", "last_name": "Brown"}
    assert state.consent["marketing"]["granted"] is False
    assert state.event_count == 3
    assert state.identifiers == {"email": [BOB[1]], "anonymous_id": ["ck-bob"]}
    assert state.parts[ident_key(BOB)].event_count == 2  # both halves of Bob's email history
    assert state.parts["anonymous_id:ck-bob"].event_count == 1
    assert sorted(state.fired) == ["act-ann", "act-bob", "act-new"]
    assert state.created_ts == 105.0 and state.updated_ts == 121.0


def _handover_from_carol() -> ProfileState:
    """The state of a profile (pC) the resolver merged into pA *before* the split; the
    hand-over message only arrives after pA has been split."""
    carol = new_state("pC", 90.0)
    file(
        carol,
        ev("web", "page_view", 90.0, [CAROL_COOKIE], traits={"first_name": "Carol"}, event_id="c1"),
    )
    file(carol, ev("web", "login", 130.0, [BOB], traits={"last_name": "Brown"}, event_id="c2"))
    file(carol, ev("callcenter", "call", 131.0, [SHOP_PHONE], event_id="c3"))
    carol.fired = ["act-carol"]
    return carol


def test_reroute_forwards_partials_whose_anchor_moved() -> None:
    kept, _ = split_state(
        _fused_state(), {"pA": ANN_KEYS, "pNew": BOB_KEYS}, [ident_key(SHOP_PHONE)]
    )
    assert kept is not None
    incoming = _handover_from_carol()

    staying, forwards = reroute(kept, copy(incoming))
    assert staying.profile_id == "pC"
    assert list(staying.parts) == [ident_key(CAROL_COOKIE)]
    assert staying.identifiers == {"anonymous_id": [CAROL_COOKIE[1]]}
    assert staying.traits == {"first_name": "Carol"}
    assert staying.event_count == 1
    assert staying.fired == ["act-carol"]

    [forward] = forwards
    assert (forward.profile_id, forward.origin) == ("pNew", "pA")
    assert forward.identifiers == BOB_KEYS
    assert list(forward.partials) == BOB_KEYS
    assert forward.partials[ident_key(BOB)].traits == {"last_name": "Brown"}
    assert forward.fired == ["act-carol"]

    # What the profile stage then does: absorb what stays, adopt what was forwarded.
    absorb(kept, staying)
    assert kept.traits == {"first_name": "Ann"}  # Ann's name is the later one (100 > 90)
    assert ident_key(BOB) not in kept.parts and ident_key(SHOP_PHONE) not in kept.parts
    assert kept.identifiers == {"email": [ANN[1]], "anonymous_id": [ANN_COOKIE[1], "ck-carol"]}
    bob, _ = adopt(None, forward)
    assert bob.traits == {"last_name": "Brown"} and bob.identifiers == {"email": [BOB[1]]}


def test_reroute_without_moved_anchors_passes_the_hand_over_through() -> None:
    kept, _ = split_state(
        _fused_state(), {"pA": ANN_KEYS, "pNew": BOB_KEYS}, [ident_key(SHOP_PHONE)]
    )
    assert kept is not None
    carol = new_state("pC", 90.0)
    file(carol, ev("web", "page_view", 90.0, [CAROL_COOKIE], event_id="c1"))
    staying, forwards = reroute(kept, carol)
    assert staying is carol and forwards == []
    # A profile that was never split has nothing to re-route.
    fresh = new_state("pA", 0.0)
    staying, forwards = reroute(fresh, _handover_from_carol())
    assert forwards == [] and len(staying.parts) == 3


def test_reroute_drops_moved_identifiers_even_when_no_partial_moved() -> None:
    """The hand-over's only event is anchored on a customer id that stays, but it also
    carried Bob's email (moved to pNew) and the shop phone (generic): the kept profile must
    not list identifiers it no longer owns. (Regression: reroute() used to return early,
    unfiltered, when no partial's anchor had moved.)"""
    kept, _ = split_state(
        _fused_state(), {"pA": ANN_KEYS, "pNew": BOB_KEYS}, [ident_key(SHOP_PHONE)]
    )
    assert kept is not None
    incoming = new_state("pC", 90.0)
    file(incoming, ev("web", "login", 90.0, [("customer_id", "C9"), BOB, SHOP_PHONE]))
    staying, forwards = reroute(kept, copy(incoming))
    assert forwards == []
    # Same hand-over plus one event anchored on Bob's email: now the moved keys are filtered.
    file(incoming, ev("web", "page_view", 91.0, [BOB]))
    filtered, _ = reroute(kept, copy(incoming))
    assert filtered.identifiers == {"customer_id": ["C9"]}
    assert staying.identifiers == {"customer_id": ["C9"]}, (
        f"moved/generic identifiers kept by the hand-over: {staying.identifiers}"
    )


def test_reroute_to_several_parts_is_sorted_by_target() -> None:
    state = new_state("pA", 0.0)
    state.moved = {"anonymous_id:x": ["p_2", 0], "anonymous_id:y": ["p_1", 0]}
    incoming = new_state("pC", 0.0)
    for i, key in enumerate(["x", "y", "z"]):
        file(incoming, ev("web", "page_view", float(i), [("anonymous_id", key)], event_id=key))
    staying, forwards = reroute(state, incoming)
    assert [(f.profile_id, f.identifiers) for f in forwards] == [
        ("p_1", ["anonymous_id:y"]),
        ("p_2", ["anonymous_id:x"]),
    ]
    assert list(staying.parts) == ["anonymous_id:z"]
    assert staying.identifiers == {"anonymous_id": ["z"]}


# --------------------------------------------------------------------------- rebuild


def _outcome(state: ProfileState) -> dict[str, Any]:
    snap = snapshot(state)
    snap["identifiers"] = {k: sorted(v) for k, v in snap["identifiers"].items()}
    return snap


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(profile_events(), min_size=1, max_size=15))
def test_a_split_that_moves_nothing_rebuilds_the_same_profile(
    events: list[NormalizedEvent],
) -> None:
    """Folding a profile's partials gives back its aggregate.
    Timestamps are made distinct: exact ties are settled by arrival order in apply_event
    but by value in absorb, a documented difference."""
    events = [e for e in events if e.identifiers]
    for i, e in enumerate(events):
        e.ts += i / 1000
    state = new_state("p1", min((e.ts for e in events), default=0.0))
    for e in events:
        file(state, e)
    keys = list(dict.fromkeys(ident_key(i) for e in events for i in e.identifiers))
    kept, adoptions = split_state(copy(state), {"p1": keys}, [])
    assert adoptions == [] and kept is not None
    assert _outcome(kept) == _outcome(state)
    assert kept.moved == {}


def test_a_split_that_moves_nothing_keeps_a_person_s_later_consent() -> None:
    """One person: denied marketing on an anonymous visit, granted it after logging in.
    The aggregate (apply_event: latest decision wins) says granted, and a split that leaves
    this person untouched must not resurrect the older denial. (Regression: rebuild() used
    to fold the partials with absorb()'s "a denial from either side wins", meant for two
    different profiles.)"""
    state = new_state("p1", 100.0)
    file(state, ev("web", "page_view", 100.0, [ANN_COOKIE], consent={"marketing": False}))
    file(state, ev("web", "login", 200.0, [ANN, ANN_COOKIE], consent={"marketing": True}))
    assert state.consent["marketing"]["granted"] is True
    kept, _ = split_state(copy(state), {"p1": ANN_KEYS}, [])
    assert kept is not None
    assert kept.consent == state.consent, (
        f"consent regressed on rebuild: before={state.consent} after={kept.consent}"
    )


def test_rebuild_takes_bookkeeping_from_like() -> None:
    state = new_state("p1", 100.0)
    file(state, ev("web", "page_view", 100.0, [ANN_COOKIE]))
    state.fired, state.merged_from, state.moved = ["a1"], ["p0"], {"x:y": ["", 3]}
    same = rebuild("p1", state.parts, [ident_key(ANN_COOKIE)], like=state)
    assert (same.fired, same.merged_from, same.moved) == (["a1"], ["p0"], {"x:y": ["", 3]})
    other = rebuild("p2", state.parts, [ident_key(ANN_COOKIE)], like=state)
    assert (other.fired, other.merged_from, other.moved) == (["a1"], [], {})
    empty = rebuild("p3", {}, [], like=state)
    assert empty.created_ts == 100.0 and empty.event_count == 0


def _cancel_call(event_id: str = "ann-cancel") -> NormalizedEvent:
    return ev(
        "callcenter",
        "call",
        110.0,
        [ANN],
        payload={"disposition": {"code": "cancel", "cancel_intent": True}},
        event_id=event_id,
    )


def test_a_churn_offer_already_made_stays_made_through_rebuild_adoption_and_merge() -> None:
    """The call stays in its anchor's partial after the offer cleared the whole's flag;
    folding the partials back (a split, an adoption, a merge) must not reopen it. Found by
    exactly-once chaos on Apache Kafka: the flag came back after a rebuild, and only a
    visit fresh enough to find the offer a duplicate closed it again."""
    state = new_state("p1", 100.0)
    file(state, _cancel_call())
    assert state.churn is not None and state.parts[ident_key(ANN)].churn is not None
    state.fired, state.churn = [action_id(CHURN_SAVE, "ann-cancel")], None  # the offer

    assert rebuild("p1", state.parts, ANN_KEYS, like=state).churn is None
    kept, [adoption] = split_state(state, {"p1": [], "p2": ANN_KEYS}, [])
    assert kept is not None and kept.churn is None
    assert adopt(None, adoption)[0].churn is None

    other = new_state("p9", 100.0)  # a profile that also saw the call, merged in
    file(other, _cancel_call())
    for survivor, absorbed in ((copy(state), other), (copy(other), state)):
        absorb(survivor, absorbed)
        assert survivor.churn is None

    file(state, _cancel_call())  # a redelivered call
    assert state.churn is None
    file(state, _cancel_call("ann-cancel-2"))  # a new call is a new intent
    assert state.churn is not None and state.churn["event_id"] == "ann-cancel-2"


def test_a_merge_decided_after_the_split_brings_moved_identifiers_back() -> None:
    """Split at decision 5 moved Bob's email away; a merge decided later (7) joins it again:
    the hand-over is not rerouted and the moved entry is dropped. One decided before the
    split (4) was in flight: it is rerouted."""
    state = new_state("pA", 0.0)
    state.moved = {ident_key(BOB): ["pNew", 5]}
    bob = new_state("pB", 0.0)
    file_event(bob, BOB, ev("web", "login", 1.0, [BOB]), [BOB], 0.0, 60.0)

    late, forwards = reroute(state, ProfileState.from_dict(bob.to_dict()), seq=4)
    assert [f.profile_id for f in forwards] == ["pNew"] and late.identifiers == {}
    assert ident_key(BOB) in state.moved

    again, forwards = reroute(state, ProfileState.from_dict(bob.to_dict()), seq=7)
    assert forwards == [] and again.identifiers == {"email": [BOB[1]]}
    assert state.moved == {}


# ---------------------------------------------------------------- hand-overs terminate


def test_a_profile_forgets_pointers_to_a_profile_merged_into_it() -> None:
    """The loop of issue 22: A split Bob's email off to B (decision 9); B was merged back
    into A (decision 10) before B's adoption arrived. The adoption, forwarded to A by B's
    marker, followed A's pointer back to B, which forwarded it to A, for ever. Absorbing B
    (its state still empty) now drops A's pointers to B, so the adoption stays in A."""
    a = new_state("pA", 0.0)
    a.moved = {ident_key(BOB): ["pB", 9], ident_key(SHOP_PHONE): ["pC", 9]}
    absorb(a, new_state("pB", 0.0))  # the hand-over of the merge at 10: nothing yet
    assert a.moved == {ident_key(SHOP_PHONE): ["pC", 9]}, "a pointer to pB survived"

    bob = new_state("pB", 0.0)
    file_event(bob, BOB, ev("web", "login", 1.0, [BOB]), [BOB], 0.0, 60.0)
    late = Adoption("pA", "pA", BOB_KEYS, dict(bob.parts), [], {}, 9)  # as forwarded
    state, forwards = adopt(a, late)
    assert forwards == [] and state.identifiers == {"email": [BOB[1]]}


def test_pointers_brought_in_by_a_merge_to_a_profile_already_inside_are_dropped() -> None:
    """A contains B (merged earlier); a profile A absorbs now carries a pointer to B (from
    the split that created B): following it would come back to A through B's marker."""
    a = new_state("pA", 0.0)
    a.merged_from = ["pB"]
    other = new_state("pX", 0.0)
    other.moved = {ident_key(BOB): ["pB", 3], ident_key(ANN): ["pN", 3]}
    absorb(a, other)
    assert a.moved == {ident_key(ANN): ["pN", 3]}


def test_forwards_carry_the_decision_of_the_split_that_routed_them() -> None:
    """Two identifiers moved to the same part by different splits go on separately, each
    with its own decision number, not with whichever partial came first."""
    state = new_state("pA", 0.0)
    state.moved = {ident_key(BOB): ["pN", 5], ident_key(ANN): ["pN", 8]}
    incoming = new_state("pC", 0.0)
    file(incoming, ev("web", "login", 1.0, [BOB], event_id="b"))
    file(incoming, ev("web", "login", 2.0, [ANN], event_id="a"))
    _, forwards = reroute(state, incoming, seq=4)
    assert [(f.profile_id, f.seq, f.identifiers) for f in forwards] == [
        ("pN", 5, [ident_key(BOB)]),
        ("pN", 8, [ident_key(ANN)]),
    ]
