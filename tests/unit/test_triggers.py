"""Action triggers: abandoned cart, churn save, and the idempotency/consent/cooldown gate."""

from __future__ import annotations

from typing import Any

from examples import ev

from scv.domain.model import NormalizedEvent
from scv.domain.profile import ProfileState, absorb, apply_event, new_state, next_due
from scv.domain.triggers import (
    ABANDONED_CART,
    CHURN_SAVE,
    COOLDOWN,
    DUPLICATE,
    EXPIRED,
    NO_CHANNEL,
    NO_CONSENT,
    STALE,
    Suppressed,
    TriggerConfig,
    action_id,
    due,
    has_consent,
    on_event,
    pending_churn,
)

CFG = TriggerConfig()
WINDOW = 60.0


def cart_ev(ts: float, cart_id: str, items: list[dict[str, Any]] | None = None) -> NormalizedEvent:
    items = [{"sku": "A", "qty": 1, "price": 10.0}] if items is None else items
    cart = {"cart_id": cart_id, "items": items, "currency": "GBP"}
    return ev("web", "cart_add", ts, [("anonymous_id", "cookie1")], payload={"cart": cart})


def order_ev(ts: float, order_id: str, cart_id: str | None = None) -> NormalizedEvent:
    payload: dict[str, Any] = {"order_id": order_id, "items": [], "total": 10.0}
    if cart_id is not None:
        payload["cart_id"] = cart_id
    return ev("transactions", "order", ts, [("customer_id", "c1")], payload=payload)


def apply(state: ProfileState, event: NormalizedEvent, now: float = 1000.0) -> list[Any]:
    apply_event(state, event, list(event.identifiers), now, WINDOW)
    return on_event(state, event, now, CFG)


def customer(pid: str = "p1", *, consent: bool | None = True) -> ProfileState:
    s = new_state(pid, 0)
    c = {} if consent is None else {"marketing": consent}
    apply(s, ev("web", "login", 1, [("customer_id", "c1"), ("email", "x@y.com")], consent=c))
    return s


def cancel_call(ts: float, event_id: str = "call1") -> NormalizedEvent:
    payload = {"disposition": {"code": "CANCEL", "cancel_intent": True}}
    return ev("callcenter", "call", ts, [("phone", "+441234")], payload=payload, event_id=event_id)


def visit(ts: float, type_: str = "page_view") -> NormalizedEvent:
    return ev("web", type_, ts, [("anonymous_id", "cookie9")], payload={"session_id": "s9"})


def test_action_id_is_deterministic_and_kind_scoped() -> None:
    assert action_id("abandoned_cart", "k1") == action_id("abandoned_cart", "k1")
    assert action_id("abandoned_cart", "k1") != action_id("churn_save", "k1")
    assert action_id("x", "y").startswith("act_") and len(action_id("x", "y")) == 28


def test_has_consent_missing_means_no() -> None:
    assert not has_consent(customer(consent=None), "marketing")
    assert not has_consent(customer(consent=False), "marketing")
    assert has_consent(customer(consent=True), "marketing")


def test_abandoned_cart_fires_once_after_window() -> None:
    s = customer()
    apply(s, cart_ev(10, "k1", items=[{"sku": "A", "qty": 2, "price": 9.99}]), now=100)
    assert due(s, 100 + WINDOW - 1, CFG) == []
    actions = due(s, 100 + WINDOW, CFG)
    assert len(actions) == 1
    a = actions[0]
    assert a.type == ABANDONED_CART and a.channel == "email" and a.profile_id == "p1"
    assert a.action_id == action_id(ABANDONED_CART, "k1")
    assert a.payload["cart_id"] == "k1" and a.payload["value"] == 19.98
    assert "email" not in a.payload and "x@y.com" not in str(a.payload)
    assert a.event_ts == 10 and a.created_at == 100 + WINDOW
    assert a.trigger_event_id == s.carts["k1"]["event_id"]
    assert due(s, 100 + WINDOW + 5, CFG) == []  # second check: nothing more
    assert s.carts["k1"]["status"] == "abandoned" and next_due(s) is None


def test_abandoned_cart_sms_when_only_phone_and_none_without_channel() -> None:
    s = new_state("p1", 0)
    apply(s, ev("callcenter", "call", 1, [("phone", "+44")], consent={"marketing": True}))
    apply(s, cart_ev(10, "k1"), now=0)
    assert [a.channel for a in due(s, WINDOW, CFG)] == ["sms"]

    anon = new_state("p2", 0)
    apply(anon, ev("web", "consent_update", 1, consent={"marketing": True}))
    apply(anon, cart_ev(10, "k1"), now=0)
    sup: list[Suppressed] = []
    assert due(anon, WINDOW, CFG, sup) == []
    assert [x.reason for x in sup] == [NO_CHANNEL]
    assert anon.carts["k1"]["status"] == "abandoned"


def test_cart_then_order_with_or_without_cart_id_no_action() -> None:
    for cart_id in ("k1", None):
        s = customer()
        apply(s, cart_ev(10, "k1"), now=0)
        apply(s, order_ev(20, "o1", cart_id=cart_id), now=1)
        assert due(s, 10 * WINDOW, CFG) == []


def test_cart_on_b_order_on_a_then_merge_no_action() -> None:
    b = new_state("pB", 0)
    apply(b, cart_ev(10, "k1"), now=0)
    a = customer("pA")
    apply(a, order_ev(20, "o1"), now=1)
    absorb(a, b)
    assert due(a, 10 * WINDOW, CFG) == []
    assert a.carts["k1"]["status"] == "ordered"


def test_no_consent_no_action_and_reason_reported() -> None:
    s = customer(consent=None)
    apply(s, cart_ev(10, "k1"), now=0)
    sup: list[Suppressed] = []
    assert due(s, WINDOW, CFG, sup) == []
    assert sup == [Suppressed(action_id(ABANDONED_CART, "k1"), ABANDONED_CART, NO_CONSENT, "k1")]


def test_denial_from_merge_blocks() -> None:
    a = customer("pA", consent=True)
    apply(a, cart_ev(10, "k1"), now=0)
    b = new_state("pB", 0)
    apply(b, ev("web", "consent_update", 0.5, consent={"marketing": False}))
    absorb(a, b)
    assert not has_consent(a, "marketing")
    assert due(a, WINDOW, CFG) == []


def test_cooldown_per_type() -> None:
    s = customer()
    apply(s, cart_ev(10, "k1"), now=0)
    apply(s, cart_ev(11, "k2"), now=0)
    sup: list[Suppressed] = []
    assert len(due(s, WINDOW, CFG, sup)) == 1
    assert [x.reason for x in sup] == [COOLDOWN]
    apply(s, cart_ev(12, "k3"), now=CFG.cooldown_s)
    assert len(due(s, CFG.cooldown_s + WINDOW, CFG)) == 1  # cooldown over


def test_fired_before_merge_not_fired_again() -> None:
    b = customer("pB")
    apply(b, cart_ev(10, "k1"), now=0)
    assert len(due(b, WINDOW, CFG)) == 1
    a = customer("pA")
    apply(a, cart_ev(20, "k1"), now=0)  # same cart, changed later, reached A before the link
    absorb(a, b)
    assert a.carts["k1"]["status"] == "open"  # A's newer version of the cart wins ...
    sup: list[Suppressed] = []
    assert due(a, 10 * WINDOW, CFG, sup) == []  # ... but its reminder was already sent
    assert [x.reason for x in sup] == [DUPLICATE]


def test_churn_flag_then_anonymous_visit_fires_once() -> None:
    s = customer()
    s.identifiers["anonymous_id"] = ["cookie9"]  # cookie linked earlier
    assert apply(s, cancel_call(100)) == []
    assert s.churn == {"flagged_ts": 100, "event_id": "call1"}
    assert apply(s, visit(90)) == []  # visit before the call does not count
    actions = apply(s, visit(110), now=2000)
    assert len(actions) == 1
    a = actions[0]
    assert a.type == CHURN_SAVE and a.channel == "onsite"
    assert a.action_id == action_id(CHURN_SAVE, "call1")
    assert a.payload == {
        "session_id": "s9",
        "anonymous_id": "cookie9",
        "offer": "retention",
        "reason": "cancel_intent",
        "call_event_id": "call1",
    }
    assert a.event_ts == 110 and a.created_at == 2000
    assert s.churn is None
    assert apply(s, visit(120)) == []


def test_churn_ignores_non_trigger_web_types_and_other_sources() -> None:
    s = customer()
    apply(s, cancel_call(100))
    assert apply(s, visit(110, "cart_remove")) == []
    assert apply(s, ev("email", "open", 111)) == []
    assert s.churn is not None


def test_churn_without_consent_keeps_flag_until_consent() -> None:
    s = customer(consent=None)
    apply(s, cancel_call(100))
    sup: list[Suppressed] = []
    ev1 = visit(110)
    apply_event(s, ev1, list(ev1.identifiers), 0, WINDOW)
    assert on_event(s, ev1, 0, CFG, sup) == []
    assert [x.reason for x in sup] == [NO_CONSENT]
    assert s.churn is not None
    apply(s, ev("web", "consent_update", 120, consent={"marketing": True}))
    assert len(apply(s, visit(130))) == 1


def test_redelivered_call_after_save_does_not_reopen_the_flag() -> None:
    s = customer()
    apply(s, cancel_call(100))
    assert len(apply(s, visit(110))) == 1
    sup: list[Suppressed] = []
    call = cancel_call(100)  # redelivered: its offer is in ``fired``, so it flags nothing
    apply_event(s, call, list(call.identifiers), 1000, WINDOW)
    assert s.churn is None
    assert on_event(s, call, 1000, CFG, sup) == [] and sup == []
    assert apply(s, visit(200), now=5000) == []


def test_visit_processed_before_the_call_still_saves() -> None:
    """Sources are consumed in parallel: the later visit may overtake the call."""
    s = customer()
    assert apply(s, visit(110), now=1000) == []  # no flag yet
    actions = apply(s, cancel_call(100), now=1002)
    assert [a.type for a in actions] == [CHURN_SAVE]
    assert actions[0].trigger_event_id == s.last_visit["event_id"]  # type: ignore[index]
    assert actions[0].payload["anonymous_id"] == "cookie9"
    assert actions[0].event_ts == 110
    assert s.churn is None


def test_visit_before_the_call_in_event_time_does_not_save() -> None:
    s = customer()
    apply(s, visit(90), now=1000)
    assert apply(s, cancel_call(100), now=1002) == []
    assert s.churn is not None


def test_stale_visit_waits_for_the_next_one() -> None:
    s = customer()
    apply(s, visit(110), now=1000)
    late = 1000 + CFG.churn_visit_grace_s + 1
    assert apply(s, cancel_call(100), now=late) == []  # that visit is over
    assert s.churn is not None
    assert len(apply(s, visit(120), now=late + 1)) == 1


def test_consent_granted_just_after_the_visit_still_saves() -> None:
    """The grant may be processed after the visit it came with (another source)."""
    s = customer(consent=None)
    apply(s, cancel_call(100), now=1000)
    assert apply(s, visit(110), now=1001) == []  # no consent yet: the flag stays
    grant = ev("email", "subscribe", 111, [("email", "x@y.com")], consent={"marketing": True})
    assert [a.type for a in apply(s, grant, now=1002)] == [CHURN_SAVE]
    assert s.churn is None


def test_merge_joins_a_call_and_a_later_visit() -> None:
    called, visited = customer("pA"), customer("pB")
    apply(called, cancel_call(100), now=1000)
    apply(visited, visit(110), now=1000)
    absorb(called, visited)
    actions = pending_churn(called, 1001, CFG)
    assert [a.type for a in actions] == [CHURN_SAVE]
    assert pending_churn(called, 1002, CFG) == []


def test_churn_fired_on_b_not_again_after_merge() -> None:
    b = customer("pB")
    apply(b, cancel_call(100))
    assert len(apply(b, visit(110))) == 1
    a = customer("pA")
    apply(a, cancel_call(100))  # same call reached A too
    absorb(a, b)
    assert apply(a, visit(130)) == []
    assert a.churn is None


def test_churn_flag_expires() -> None:
    cfg = TriggerConfig(churn_max_age_s=50)
    s = customer()
    apply(s, cancel_call(100))
    e = visit(200)
    apply_event(s, e, list(e.identifiers), 0, WINDOW)
    sup: list[Suppressed] = []
    assert on_event(s, e, 0, cfg, sup) == []
    assert [x.reason for x in sup] == [EXPIRED] and s.churn is None


def test_state_round_trip_keeps_idempotency() -> None:
    s = customer()
    apply(s, cart_ev(10, "k1"), now=0)
    assert len(due(s, WINDOW, CFG)) == 1
    back = ProfileState.from_dict(s.to_dict())
    assert back.fired == [action_id(ABANDONED_CART, "k1")]
    assert ABANDONED_CART in back.last_action_ts


def bare_cart_ev(ts: float, cart_id: str, product: dict[str, Any] | None) -> NormalizedEvent:
    """A cart_add without ``items`` (the schema makes them optional)."""
    payload: dict[str, Any] = {"cart": {"cart_id": cart_id, "currency": "GBP"}}
    if product is not None:
        payload["product"] = product
    return ev("web", "cart_add", ts, [("anonymous_id", "cookie1")], payload=payload)


def test_cart_without_items_fires_with_what_is_known() -> None:
    s = customer()
    apply(s, bare_cart_ev(10, "k1", {"sku": "A", "name": "Kettle", "price": 20.0}), now=100)
    apply(s, bare_cart_ev(11, "k1", {"sku": "B"}), now=101)  # no price: counts 0
    [a] = due(s, 101 + WINDOW, CFG)
    assert a.action_id == action_id(ABANDONED_CART, "k1")
    assert a.payload["items"] == [
        {"sku": "A", "qty": 1, "name": "Kettle", "price": 20.0},
        {"sku": "B", "qty": 1},
    ]
    assert (a.payload["value"], a.payload["currency"]) == (20.0, "GBP")
    assert a.payload["items_complete"] is False
    assert a.trigger_event_id == s.carts["k1"]["event_id"]

    nothing_named = customer("p2")
    apply(nothing_named, bare_cart_ev(10, "k2", None), now=100)
    [b] = due(nothing_named, 100 + WINDOW, CFG)  # an empty line list, still a reminder
    assert (b.payload["items"], b.payload["value"], b.payload["items_complete"]) == ([], 0.0, False)


def test_listed_cart_says_its_items_are_complete() -> None:
    s = customer()
    apply(s, cart_ev(10, "k1"), now=0)
    [a] = due(s, WINDOW, CFG)
    assert a.payload["items_complete"] is True


LIVE = 1_750_000_000.0  # "now" in the staleness tests
MONTHS = 120 * 86400.0
FRESH = TriggerConfig(churn_visit_max_lag_s=1800.0, cart_max_lag_s=7 * 86400.0)


def test_replayed_months_old_cart_is_stale_and_decided_once() -> None:
    """A backfill opens old carts with a window from when they are seen (so their orders can
    still close them) but sends no reminder for them: the cart changed months ago."""
    s = customer()
    apply(s, cart_ev(LIVE - MONTHS, "old"), now=LIVE)
    sup: list[Suppressed] = []
    assert due(s, LIVE + WINDOW, FRESH, sup) == []
    assert sup == [Suppressed(action_id(ABANDONED_CART, "old"), ABANDONED_CART, STALE, "old")]
    assert s.carts["old"]["status"] == "abandoned" and next_due(s) is None
    assert ABANDONED_CART not in s.last_action_ts  # no cooldown started by it

    apply(s, cart_ev(LIVE + 5, "live"), now=LIVE + 5)  # live traffic still fires
    [a] = due(s, LIVE + 5 + WINDOW, FRESH)
    assert a.payload["cart_id"] == "live"


def test_cart_bound_and_order_of_reasons() -> None:
    s = customer()
    apply(s, cart_ev(LIVE - 7 * 86400.0 + 100, "k1"), now=LIVE)  # a week minus 100 s ago
    assert len(due(s, LIVE + 99, FRESH)) == 1  # just inside the bound

    again = customer("p2")  # a backfill re-reading a cart that was reminded at the time
    apply(again, cart_ev(LIVE - MONTHS, "k2"), now=LIVE)
    again.fired.append(action_id(ABANDONED_CART, "k2"))
    sup: list[Suppressed] = []
    assert due(again, LIVE + WINDOW, FRESH, sup) == []
    assert [x.reason for x in sup] == [DUPLICATE]  # reported as what it is


def test_replayed_months_old_visit_gets_no_offer_but_a_live_one_does() -> None:
    s = customer()
    call_ts = LIVE - MONTHS
    apply(s, cancel_call(call_ts), now=LIVE)
    sup: list[Suppressed] = []
    old = visit(call_ts + 3600)  # the visit after the call, replayed months later
    apply_event(s, old, list(old.identifiers), LIVE + 1, WINDOW)
    assert on_event(s, old, LIVE + 1, FRESH, sup) == []
    assert sup == [Suppressed(action_id(CHURN_SAVE, "call1"), CHURN_SAVE, STALE, "call1")]
    assert s.churn is not None  # the flag waits for a visit of today ...
    live = visit(LIVE + 60)
    apply_event(s, live, list(live.identifiers), LIVE + 61, WINDOW)
    sup.clear()
    assert on_event(s, live, LIVE + 61, FRESH, sup) == []
    assert [x.reason for x in sup] == [EXPIRED]  # ... which months later is past the max age

    recent = customer("p2")  # a call of a week ago and a visit now: the offer is made
    apply(recent, cancel_call(LIVE - 7 * 86400.0), now=LIVE)
    e = visit(LIVE - 10)
    apply_event(recent, e, list(e.identifiers), LIVE, WINDOW)
    assert [a.type for a in on_event(recent, e, LIVE, FRESH)] == [CHURN_SAVE]


def test_visit_lag_is_event_time_not_when_it_was_seen() -> None:
    """A call processed shortly after a visit that happened 40 minutes ago: that session is
    over even though the worker saw the visit a second ago."""
    s = customer()
    apply(s, visit(LIVE - 2400), now=LIVE)
    sup: list[Suppressed] = []
    call = cancel_call(LIVE - 2500)
    apply_event(s, call, list(call.identifiers), LIVE + 1, WINDOW)
    assert on_event(s, call, LIVE + 1, FRESH, sup) == []
    assert [x.reason for x in sup] == [STALE] and s.churn is not None
    assert [a.type for a in pending_churn(s, LIVE + 1, CFG)] == [CHURN_SAVE]  # no bound


def test_visit_types_are_configurable() -> None:
    logins_only = TriggerConfig(visit_types=frozenset({"login"}))
    s = customer()
    apply(s, cancel_call(100))
    view = visit(110)
    apply_event(s, view, list(view.identifiers), 1000, WINDOW, logins_only.visit_types)
    assert s.last_visit is None or s.last_visit["ts"] < 100  # a page view is no visit now
    assert on_event(s, view, 1000, logins_only) == []
    login = visit(120, "login")
    apply_event(s, login, list(login.identifiers), 1001, WINDOW, logins_only.visit_types)
    assert [a.type for a in on_event(s, login, 1001, logins_only)] == [CHURN_SAVE]
