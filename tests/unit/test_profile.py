"""Profile state: event folding, out-of-order safety, merges (absorb) and serialisation."""

from __future__ import annotations

from typing import Any

import orjson
from examples import ev
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scv.domain.model import NormalizedEvent
from scv.domain.profile import (
    FIRED_CAP,
    ProfileState,
    absorb,
    apply_event,
    merge_fired,
    new_state,
    next_due,
    snapshot,
)

WINDOW = 60.0


def cart_ev(ts: float, cart_id: str, items: list[dict[str, Any]] | None = None) -> NormalizedEvent:
    items = [{"sku": "A", "qty": 1, "price": 10.0}] if items is None else items
    return ev(
        "web",
        "cart_add",
        ts,
        [("anonymous_id", "cookie1")],
        payload={"session_id": "s1", "cart": {"cart_id": cart_id, "items": items}},
    )


def order_ev(
    ts: float, order_id: str, cart_id: str | None = None, total: float = 10.0
) -> NormalizedEvent:
    payload: dict[str, Any] = {"order_id": order_id, "items": [], "total": total}
    if cart_id is not None:
        payload["cart_id"] = cart_id
    return ev("transactions", "order", ts, [("customer_id", "c1")], payload=payload)


def apply(state: ProfileState, event: NormalizedEvent, now: float = 1000.0) -> None:
    apply_event(state, event, list(event.identifiers), now, WINDOW)


def test_identifiers_dedup_keep_order_and_counters() -> None:
    s = new_state("p1", 100.0)
    apply(s, ev("web", "page_view", 101, [("anonymous_id", "a"), ("email", "x@y.com")]))
    apply(s, ev("email", "open", 99, [("email", "x@y.com"), ("email", "z@y.com")]))
    assert s.identifiers == {"anonymous_id": ["a"], "email": ["x@y.com", "z@y.com"]}
    assert s.channels == {"web": 1, "email": 1}
    assert s.event_count == 2
    assert s.created_ts == 99 and s.updated_ts == 101
    assert s.last_activity == {"ts": 101, "source": "web", "type": "page_view"}


def test_only_accepted_identifiers_are_attached() -> None:
    s = new_state("p1", 0)
    e = ev("web", "login", 1, [("customer_id", "c1"), ("email", "test@test.com")])
    apply_event(s, e, [("customer_id", "c1")], 0, WINDOW)
    assert s.identifiers == {"customer_id": ["c1"]}


def test_traits_latest_non_empty_by_event_time() -> None:
    s = new_state("p1", 0)
    apply(s, ev("web", "signup", 10, traits={"first_name": "Ann", "last_name": "Lee"}))
    apply(s, ev("callcenter", "call", 5, traits={"first_name": "Anne"}))  # older: ignored
    apply(s, ev("email", "open", 20, traits={"last_name": "", "first_name": None}))  # empty
    assert s.traits == {"first_name": "Ann", "last_name": "Lee"}
    apply(s, ev("web", "login", 30, traits={"first_name": "Annie"}))
    assert s.traits["first_name"] == "Annie"


def test_address_merges_per_field() -> None:
    s = new_state("p1", 0)
    apply(s, ev("web", "signup", 10, traits={"address": {"street": "1 Main", "city": "Leeds"}}))
    apply(s, ev("callcenter", "call", 20, traits={"address": {"city": "York", "street": ""}}))
    apply(s, ev("web", "login", 5, traits={"address": {"postcode": "LS1"}}))
    assert s.traits["address"] == {"street": "1 Main", "city": "York", "postcode": "LS1"}


def test_consent_out_of_order_does_not_regress() -> None:
    s = new_state("p1", 0)
    apply(s, ev("web", "consent_update", 20, consent={"marketing": False}))
    apply(s, ev("web", "consent_update", 10, consent={"marketing": True}))  # late, older
    assert s.consent["marketing"] == {"granted": False, "ts": 20, "source": "web"}
    apply(s, ev("email", "subscribe", 30, consent={"marketing": True}))
    assert s.consent["marketing"]["granted"] is True


def test_consent_tie_denial_wins() -> None:
    s = new_state("p1", 0)
    apply(s, ev("web", "consent_update", 20, consent={"marketing": False}))
    apply(s, ev("web", "consent_update", 20, consent={"marketing": True}))
    assert s.consent["marketing"]["granted"] is False


def test_email_unsubscribe_implies_marketing_denial() -> None:
    s = new_state("p1", 0)
    apply(s, ev("web", "consent_update", 10, consent={"marketing": True}))
    apply(s, ev("email", "unsubscribe", 20, [("email", "x@y.com")]))
    assert s.consent["marketing"] == {"granted": False, "ts": 20, "source": "email"}


def test_cart_open_due_and_emptied() -> None:
    s = new_state("p1", 0)
    apply(s, cart_ev(10, "k1"), now=500)
    assert s.carts["k1"]["status"] == "open"
    assert s.carts["k1"]["due_at"] == 500 + WINDOW
    assert next_due(s) == 560
    apply(s, cart_ev(12, "k1", items=[]), now=501)
    assert s.carts["k1"]["status"] == "emptied"
    assert next_due(s) is None
    assert snapshot(s)["open_carts"] == []


def bare_cart_ev(
    ts: float, cart_id: str, sku: str | None = "A", type_: str = "cart_add", **product: Any
) -> NormalizedEvent:
    """A cart event without ``items`` (optional in the schema), naming the product changed."""
    payload: dict[str, Any] = {"session_id": "s1", "cart": {"cart_id": cart_id}}
    if sku is not None:
        payload["product"] = {"sku": sku, **product}
    return ev("web", type_, ts, [("anonymous_id", "cookie1")], payload=payload)


def test_cart_without_items_opens_with_the_products_named() -> None:
    s = new_state("p1", 0)
    apply(s, bare_cart_ev(10, "k1", "A", name="Kettle", price=20.0), now=500)
    cart = s.carts["k1"]
    assert (cart["status"], cart["due_at"], cart["complete"]) == ("open", 500 + WINDOW, False)
    assert cart["items"] == [{"sku": "A", "qty": 1, "name": "Kettle", "price": 20.0}]
    add_b, add_a = bare_cart_ev(11, "k1", "B"), bare_cart_ev(12, "k1", "A")
    apply(s, add_b, now=501)
    apply(s, add_a, now=502)
    apply(s, add_a, now=503)  # redelivered: its line is counted once
    assert [(i["sku"], i["qty"]) for i in s.carts["k1"]["items"]] == [("A", 2), ("B", 1)]
    assert s.carts["k1"]["due_at"] == 502 + WINDOW
    assert [c["items"] for c in snapshot(s)["open_carts"]] == [s.carts["k1"]["items"]]
    apply(s, bare_cart_ev(13, "k1", "B", type_="cart_remove"), now=504)
    assert [(i["sku"], i["qty"]) for i in s.carts["k1"]["items"]] == [("A", 2)]
    apply(s, bare_cart_ev(14, "k1", None), now=505)  # an addition nobody named: still open
    assert s.carts["k1"]["status"] == "open" and len(s.carts["k1"]["items"]) == 1


def test_cart_without_items_keeps_a_listed_content_complete() -> None:
    s = new_state("p1", 0)
    apply(s, cart_ev(10, "k1", items=[{"sku": "A", "qty": 1, "price": 10.0}]))
    apply(s, bare_cart_ev(11, "k1", "B", price=5.0))
    assert "complete" not in s.carts["k1"]  # the listed content plus the line named
    assert [(i["sku"], i["qty"]) for i in s.carts["k1"]["items"]] == [("A", 1), ("B", 1)]
    apply(s, bare_cart_ev(12, "k1", "A", type_="cart_remove"))
    apply(s, bare_cart_ev(13, "k1", "B", type_="cart_remove"))
    assert s.carts["k1"]["status"] == "emptied" and next_due(s) is None  # nothing left
    apply(s, cart_ev(14, "k1", items=[{"sku": "C", "qty": 1, "price": 1.0}]))
    assert "complete" not in s.carts["k1"] and s.carts["k1"]["status"] == "open"


def test_cart_without_items_after_its_order_starts_over_or_stays_closed() -> None:
    s = new_state("p1", 0)
    apply(s, bare_cart_ev(10, "k1", "A"))
    apply(s, order_ev(20, "o1"))  # covers the cart by time
    assert s.carts["k1"]["status"] == "ordered"
    apply(s, bare_cart_ev(30, "k1", "B"))  # changed after the order: a new content
    assert s.carts["k1"]["status"] == "open"
    assert [i["sku"] for i in s.carts["k1"]["items"]] == ["B"]
    apply(s, order_ev(40, "o2", cart_id="k2"))
    apply(s, bare_cart_ev(41, "k2", "A"))  # the order named it: stays closed
    assert s.carts["k2"]["status"] == "ordered"


def test_late_cart_event_does_not_regress_content() -> None:
    s = new_state("p1", 0)
    apply(s, cart_ev(20, "k1", items=[]))
    apply(s, cart_ev(10, "k1"))  # older content arriving late
    assert s.carts["k1"]["status"] == "emptied"


def test_order_with_cart_id_closes_that_cart() -> None:
    s = new_state("p1", 0)
    apply(s, cart_ev(10, "k1"))
    apply(s, order_ev(20, "o1", cart_id="k1"))
    assert s.carts["k1"]["status"] == "ordered"
    assert s.orders["count"] == 1 and s.orders["last_order_id"] == "o1"


def test_order_without_cart_id_closes_older_carts_only() -> None:
    s = new_state("p1", 0)
    apply(s, cart_ev(10, "k1"))
    apply(s, cart_ev(30, "k2"))
    apply(s, order_ev(20, "o1"))
    assert s.carts["k1"]["status"] == "ordered"
    assert s.carts["k2"]["status"] == "open"


def test_cart_event_arriving_after_its_order_stays_closed() -> None:
    s = new_state("p1", 0)
    apply(s, order_ev(20, "o1", cart_id="k1"))
    apply(s, cart_ev(25, "k1"))  # web clock ahead of the shop's: still the same checkout
    apply(s, order_ev(40, "o2"))
    apply(s, cart_ev(30, "k2"))  # late cart event covered by the later order
    assert s.carts["k1"]["status"] == "ordered"
    assert s.carts["k2"]["status"] == "ordered"
    assert next_due(s) is None


def test_redelivered_order_counted_once() -> None:
    s = new_state("p1", 0)
    apply(s, order_ev(20, "o1", total=5.0))
    apply(s, order_ev(20, "o1", total=5.0))
    apply(s, ev("transactions", "return", 30, payload={"order_id": "o1"}))
    assert s.orders["count"] == 1 and s.orders["total"] == 5.0 and s.orders["returns"] == 1


def test_churn_flag_keeps_earliest() -> None:
    s = new_state("p1", 0)
    call = {"disposition": {"code": "X", "cancel_intent": True}}
    apply(s, ev("callcenter", "call", 50, payload=call, event_id="call2"))
    apply(s, ev("callcenter", "call", 40, payload=call, event_id="call1"))
    apply(s, ev("callcenter", "call", 60, payload={"disposition": {"cancel_intent": False}}))
    assert s.churn == {"flagged_ts": 40, "event_id": "call1"}
    assert snapshot(s)["churn_risk"] == s.churn


def test_absorb_closes_cart_covered_by_order_on_other_side() -> None:
    b = new_state("pB", 0)
    apply(b, cart_ev(10, "k1"))
    a = new_state("pA", 0)
    apply(a, order_ev(20, "o1"))
    absorb(a, b)
    assert a.carts["k1"]["status"] == "ordered"
    assert a.merged_from == ["pB"]


def test_absorb_closes_cart_named_by_order_on_other_side() -> None:
    b = new_state("pB", 0)
    apply(b, cart_ev(30, "k1"))
    a = new_state("pA", 0)
    apply(a, order_ev(20, "o1", cart_id="k1"))  # order ts before cart ts: named wins
    absorb(b, a)
    assert b.carts["k1"]["status"] == "ordered"


def test_absorb_consent_most_restrictive_and_one_sided_kept() -> None:
    a = new_state("pA", 0)
    apply(a, ev("web", "consent_update", 50, consent={"marketing": True, "profiling": True}))
    b = new_state("pB", 0)
    apply(b, ev("web", "consent_update", 10, consent={"marketing": False}))
    absorb(a, b)
    assert a.consent["marketing"]["granted"] is False  # older denial still wins a merge
    assert a.consent["profiling"]["granted"] is True  # b had no opinion: a's grant stays
    c = new_state("pC", 0)  # anonymous profile with no consent record
    d = new_state("pD", 0)
    apply(d, ev("web", "consent_update", 5, consent={"marketing": True}))
    absorb(c, d)
    assert c.consent["marketing"]["granted"] is True


def test_absorb_sums_and_unions() -> None:
    a = new_state("pA", 5)
    apply(a, ev("web", "page_view", 5, [("anonymous_id", "a1")]))
    apply(a, order_ev(20, "o1", total=3.0))
    b = new_state("pB", 1)
    b.merged_from = ["pZ"]
    apply(b, ev("email", "open", 1, [("email", "x@y.com")]))
    apply(b, order_ev(30, "o2", total=4.0))
    apply(b, order_ev(20, "o1", total=3.0))  # same order reached both (redelivery)
    absorb(a, b)
    assert a.created_ts == 1
    assert a.identifiers == {
        "anonymous_id": ["a1"],
        "customer_id": ["c1"],
        "email": ["x@y.com"],
    }
    assert a.orders["count"] == 2 and a.orders["total"] == 7.0
    assert a.orders["last_order_id"] == "o2"
    assert a.channels == {"web": 1, "transactions": 3, "email": 1}
    assert a.event_count == 5
    assert a.merged_from == ["pB", "pZ"]


def test_merge_fired_symmetric_and_capped() -> None:
    x = [f"x{i}" for i in range(150)]
    y = [f"y{i}" for i in range(150)]
    m1, m2 = merge_fired(x, y), merge_fired(y, x)
    assert m1 == m2 and len(m1) == FIRED_CAP
    assert "x149" in m1 and "y149" in m1 and "x0" not in m1  # the newest survive


def test_snapshot_is_a_copy_and_json_safe() -> None:
    s = new_state("p1", 0)
    apply(s, ev("web", "signup", 1, traits={"address": {"city": "Leeds"}}))
    apply(s, cart_ev(2, "k1"))
    snap = snapshot(s)
    orjson.dumps(snap)
    assert set(snap) == {
        "profile_id",
        "created_ts",
        "updated_ts",
        "identifiers",
        "traits",
        "consent",
        "channels",
        "last_activity",
        "open_carts",
        "orders",
        "churn_risk",
        "merged_from",
        "event_count",
        "household_id",
        "open_tickets",
    }
    assert snap["open_carts"][0]["cart_id"] == "k1"
    apply(s, ev("web", "login", 3, traits={"address": {"city": "York"}}))
    assert snap["traits"]["address"]["city"] == "Leeds"


# --------------------------------------------------------------------------------------------
# Property tests: random profiles built from random event streams.
# --------------------------------------------------------------------------------------------

_ts = st.integers(min_value=0, max_value=40).map(float)
_items = st.lists(
    st.fixed_dictionaries(
        {"sku": st.sampled_from(["A", "B"]), "qty": st.integers(1, 3), "price": st.just(2.5)}
    ),
    max_size=2,
)
_ident = st.tuples(
    st.sampled_from(["email", "phone", "anonymous_id", "customer_id"]),
    st.sampled_from(["v1", "v2", "v3"]),
)


@st.composite
def events(draw: st.DrawFn, offset: float = 0.0, bare_carts: bool = False) -> NormalizedEvent:
    """A random event; ``bare_carts`` adds cart events without ``items``, whose lines depend
    on the cart version they are applied to (docs/actions.md, limits): the merge properties
    below hold for them, a split's rebuild from per-anchor parts does not (its lines)."""
    kind = draw(st.sampled_from(["cart", "order", "call", "consent", "traits", "visit"]))
    ts = draw(_ts) + offset
    idents = draw(st.lists(_ident, max_size=2, unique=True))
    eid = draw(st.sampled_from([f"e{i}" for i in range(8)]))
    if kind == "cart":
        cart: dict[str, Any] = {"cart_id": draw(st.sampled_from(["k1", "k2", "k3"]))}
        if not bare_carts or draw(st.booleans()):
            cart["items"] = draw(_items)
            return ev("web", "cart_add", ts, idents, payload={"cart": cart}, event_id=eid)
        # No items (the schema makes them optional): the product, if any, is the line added.
        change: dict[str, Any] = {"cart": cart}
        if draw(st.booleans()):
            change["product"] = {"sku": draw(st.sampled_from(["A", "B"])), "price": 2.5}
        return ev("web", "cart_add", ts, idents, payload=change, event_id=eid)
    if kind == "order":
        # One order id always carries the same payload (a redelivery), as in production.
        n = draw(st.integers(1, 4))
        payload: dict[str, Any] = {"order_id": f"o{n}", "total": 1.5 * n}
        if n <= 3:
            payload["cart_id"] = f"k{n}"
        return ev("transactions", "order", ts, idents, payload=payload, event_id=eid)
    if kind == "call":
        disp = {"cancel_intent": draw(st.booleans())}
        return ev("callcenter", "call", ts, idents, payload={"disposition": disp}, event_id=eid)
    if kind == "consent":
        consent = draw(st.dictionaries(st.sampled_from(["marketing", "profiling"]), st.booleans()))
        return ev("web", "consent_update", ts, idents, consent=consent, event_id=eid)
    if kind == "traits":
        traits = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "first_name": st.sampled_from(["Ann", "Bob", ""]),
                    "address": st.fixed_dictionaries(
                        {}, optional={"city": st.sampled_from(["Leeds", "York"])}
                    ),
                },
            )
        )
        return ev("web", "signup", ts, idents, traits=traits, event_id=eid)
    return ev("web", "page_view", ts, idents, event_id=eid)


@st.composite
def states(draw: st.DrawFn, pid: str) -> ProfileState:
    s = new_state(pid, draw(_ts))
    for e in draw(st.lists(events(bare_carts=True), max_size=12)):
        apply_event(s, e, list(e.identifiers), draw(_ts), WINDOW)
    s.fired = draw(st.lists(st.sampled_from([f"act{i}" for i in range(6)]), unique=True))
    s.last_action_ts = draw(st.dictionaries(st.sampled_from(["churn_save", "x"]), _ts))
    return s


def _copy(s: ProfileState) -> ProfileState:
    return ProfileState.from_dict(s.to_dict())


def _outcome(s: ProfileState) -> dict[str, Any]:
    d = s.to_dict()
    d["identifiers"] = {k: sorted(v) for k, v in d["identifiers"].items()}
    for k in ("profile_id", "merged_from", "v"):
        d.pop(k)
    return d


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(states("pA"), states("pB"))
def test_absorb_is_commutative(a: ProfileState, b: ProfileState) -> None:
    ab, ba = _copy(a), _copy(b)
    absorb(ab, _copy(b))
    absorb(ba, _copy(a))
    assert _outcome(ab) == _outcome(ba)
    assert ab.merged_from == ["pB"] and ba.merged_from == ["pA"]


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(states("pA"), states("pB"), st.lists(events(offset=0.5, bare_carts=True), max_size=6))
def test_hand_over_order_does_not_matter_for_carts(
    a: ProfileState, b: ProfileState, later: list[NormalizedEvent]
) -> None:
    """Survivor events overtaking a hand-over close the same carts as events after it.

    Later events get half-second timestamps: an exact event-time tie between two versions of
    one cart is settled by arrival order in apply_event (same-second add/remove must keep
    their order) but by content in absorb (which has no arrival order), a documented limit.
    """
    first = _copy(a)
    absorb(first, _copy(b))
    for e in later:
        apply_event(first, e, list(e.identifiers), 0.0, WINDOW)
    second = _copy(a)
    for e in later:
        apply_event(second, e, list(e.identifiers), 0.0, WINDOW)
    absorb(second, _copy(b))
    statuses = {k: c["status"] for k, c in first.carts.items()}
    assert statuses == {k: c["status"] for k, c in second.carts.items()}


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(states("pA"))
def test_to_dict_from_dict_round_trip(s: ProfileState) -> None:
    d = s.to_dict()
    wire = orjson.loads(orjson.dumps(d))
    back = ProfileState.from_dict(wire)
    assert back == s
    assert back.to_dict() == d
    back.identifiers.setdefault("email", []).append("mutated")
    assert ProfileState.from_dict(wire) == s  # from_dict does not alias its input


def test_from_dict_tolerates_missing_optional_keys() -> None:
    s = ProfileState.from_dict({"profile_id": "p1", "created_ts": 1, "updated_ts": 2})
    assert s.orders["count"] == 0 and s.carts == {} and s.fired == []


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(states("pA"), states("pB"))
def test_no_copy_serialisation_gives_the_same_bytes(a: ProfileState, b: ProfileState) -> None:
    absorb(a, b)  # parts, merged_from and the rest filled in
    a.parts = {"email:x@y.co": _copy(b)}
    wire = orjson.dumps(a.to_dict())
    assert orjson.dumps(a.to_dict(copy=False)) == wire
    assert orjson.dumps(snapshot(a, copy=False)) == orjson.dumps(snapshot(a))
    owned = ProfileState.from_dict(orjson.loads(wire), copy=False)
    assert owned == ProfileState.from_dict(orjson.loads(wire))
    assert orjson.dumps(owned.to_dict(copy=False)) == wire


def test_no_copy_to_dict_shares_and_default_copies() -> None:
    s = new_state("p1", 1.0)
    apply(s, cart_ev(10.0, "c1"))
    assert s.to_dict(copy=False)["carts"] is s.carts
    assert s.to_dict()["carts"] is not s.carts
    d = orjson.loads(orjson.dumps(s.to_dict()))
    assert ProfileState.from_dict(d, copy=False).carts is d["carts"]
    assert ProfileState.from_dict(d).carts is not d["carts"]


def test_absorbed_parts_are_not_shared() -> None:
    """absorb copies a part it takes over, so the hand-over's state stays independent."""
    a, b = new_state("pA", 1.0), new_state("pB", 1.0)
    part = new_state("pB", 1.0)
    apply(part, cart_ev(10.0, "c1"))
    b.parts["anonymous_id:cookie1"] = part
    absorb(a, b)
    taken = a.parts["anonymous_id:cookie1"]
    assert taken == part and taken is not part
    taken.carts["c1"]["items"].append({"sku": "B"})
    assert len(part.carts["c1"]["items"]) == 1


# --- fast paths: the same result as the general rules they short-cut ----------------------


def test_new_state_is_the_default_constructed_state() -> None:
    """new_state passes every field positionally: a reordered field must not slip through."""
    made = new_state("p1", 5.0)
    assert made == ProfileState(profile_id="p1", created_ts=5.0, updated_ts=5.0)
    assert made.to_dict() == ProfileState(profile_id="p1", created_ts=5.0, updated_ts=5.0).to_dict()


def test_visit_comparison_matches_visit_key() -> None:
    from scv.domain.profile import _visit_key, _visit_order

    visit = {"ts": 10.0, "event_id": "e1", "session_id": "s", "anonymous_id": None, "seen_at": 3.0}
    assert _visit_order(visit) == _visit_key(visit)[:3]
    assert _visit_order({"ts": 1, "event_id": "e"}) == (1.0, "e", 0.0)


def test_visit_ties_go_to_the_later_sighting_then_keep_the_stored_one() -> None:
    s = new_state("p1", 0)
    visit = ev("web", "page_view", 10, [("anonymous_id", "a")], payload={"session_id": "s1"})
    apply(s, visit, now=100.0)
    assert s.last_visit is not None and s.last_visit["seen_at"] == 100.0
    apply(s, visit, now=50.0)  # an earlier sighting of the same visit does not replace it
    assert s.last_visit["seen_at"] == 100.0
    apply(s, visit, now=200.0)
    assert s.last_visit["seen_at"] == 200.0 and s.last_visit["anonymous_id"] == "a"


def test_trait_tie_on_event_time_is_broken_by_value_in_either_order() -> None:
    a, b = new_state("p1", 0), new_state("p2", 0)
    first = ev("web", "signup", 5, [("email", "x@y.com")], traits={"first_name": "Ann"})
    second = ev("web", "signup", 5, [("email", "x@y.com")], traits={"first_name": "Bob"})
    for e in (first, second):
        apply(a, e)
    for e in (second, first):
        apply(b, e)
    assert a.traits == b.traits == {"first_name": "Bob"}


def test_order_closes_only_open_carts_it_covers() -> None:
    s = new_state("p1", 0)
    apply(s, cart_ev(10, "c1"))
    apply(s, cart_ev(30, "c2"))
    apply(s, order_ev(20, "o1"))  # covers c1 by time, not c2
    assert s.carts["c1"]["status"] == "ordered" and s.carts["c1"]["due_at"] is None
    assert s.carts["c2"]["status"] == "open"
    apply(s, order_ev(25, "o2", cart_id="c2"))  # names c2
    assert s.carts["c2"]["status"] == "ordered"
    apply(s, cart_ev(40, "c2"))  # a cart an order named stays closed
    assert s.carts["c2"]["status"] == "ordered"
    apply(s, cart_ev(40, "c1"))  # one covered only by time reopens
    assert s.carts["c1"]["status"] == "open"
