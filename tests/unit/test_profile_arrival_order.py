"""Profile fields that used to depend on arrival order (found by ``scv bench chaos``, whose
faulty run reads the same events in another order than its fault-free reference)."""

from __future__ import annotations

from examples import ev

from scv.domain.model import NormalizedEvent
from scv.domain.parts import rebuild, reroute
from scv.domain.profile import ProfileState, absorb, apply_event, new_state


def apply(state: ProfileState, event: NormalizedEvent) -> None:
    apply_event(state, event, list(event.identifiers), 1000.0, 60.0)


def test_a_part_adopted_before_its_events_gets_their_creation_time() -> None:
    """``rebuild`` without partials knows no creation time (0.0); neither the part's own
    events nor a merge may keep that 0.0 as the earliest time."""
    part = rebuild("p2", {}, ["anonymous_id:a"])
    assert part.created_ts == 0.0
    apply(part, ev("web", "page_view", 150, [("anonymous_id", "a")]))
    assert part.created_ts == 150

    early = rebuild("p3", {}, ["anonymous_id:b"])
    other = new_state("p4", 120.0)
    absorb(early, other)
    assert early.created_ts == 120.0
    survivor = new_state("p5", 130.0)
    absorb(survivor, rebuild("p6", {}, []))
    assert survivor.created_ts == 130.0


def test_last_activity_at_the_same_instant_does_not_depend_on_arrival() -> None:
    order = ev("transactions", "order", 200, [("customer_id", "c1")], payload={"order_id": "o1"})
    visit = ev("web", "product_view", 200, [("customer_id", "c1"), ("anonymous_id", "a")])
    first, second = new_state("p1", 200.0), new_state("p1", 200.0)
    apply(first, order)
    apply(first, visit)
    apply(second, visit)
    apply(second, order)
    assert first.last_activity == second.last_activity
    # the same winner absorb() picks when the two were on different profiles
    left, right = new_state("p1", 200.0), new_state("p2", 200.0)
    apply(left, order)
    apply(right, visit)
    absorb(left, right)
    assert left.last_activity == first.last_activity


def test_a_hand_over_whose_events_all_left_in_a_split_brings_no_time() -> None:
    """Merge then split (a shared device re-decided in event-time order): the absorbed
    profile's events all belong to a part that left, so what stays carries none of their
    times; before, its creation time became the survivor's updated_ts."""
    leaving = new_state("p_b", 838.0)
    apply(leaving, ev("web", "login", 856.0, [("customer_id", "C2")]))
    incoming = rebuild("p_b", {"customer_id:C2": leaving}, ["customer_id:C2"])
    survivor = new_state("p_a", 770.0)
    apply(survivor, ev("web", "login", 822.0, [("customer_id", "C1")]))
    survivor.moved = {"customer_id:C2": ["p_c", 5]}  # split at decision 5, after the merge

    kept, forwards = reroute(survivor, incoming, 5)
    assert [f.profile_id for f in forwards] == ["p_c"]
    absorb(survivor, kept)
    assert (survivor.created_ts, survivor.updated_ts) == (770.0, 822.0)
