"""The profiles stage: profile events → state table, snapshots, actions, merge hand-overs,
and the due-cart check (:meth:`ProfilesStage.check_due`) the worker runs between batches."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import REGISTRY
from stagekit import Msg, Outbox, feed, load_examples

from scv.domain.model import NormalizedEvent, ident_key
from scv.domain.normalize import normalize
from scv.domain.profile import ProfileState, snapshot
from scv.domain.triggers import ABANDONED_CART, CHURN_SAVE, action_id
from scv.streams.worker import Pipeline
from scv.topics import Topics

WEB = load_examples().WEB
A, B = "p_survivor", "p_absorbed"

#: The ``make_pipeline`` fixture (conftest): a pipeline with other settings.
MakePipeline = Callable[..., Pipeline]

#: Live traffic: a cart changed a minute ago. (A cart from 2024 is a replay of old traffic,
#: suppressed as stale: see test_replayed_old_cart_is_stale_and_counted.)
CART_ADD: dict[str, Any] = {
    "event_id": "web-cart",
    "timestamp": time.time() - 60,
    "type": "cart_add",
    "anonymous_id": "ck-b",
    "session_id": "sess-b",
    "email": "jane.doe@acme-corp.co.uk",
    "consent": {"marketing": True},
    "cart": {
        "cart_id": "cart-1",
        "items": [{"sku": "SKU-1", "name": "Kettle", "qty": 2, "price": 29.99}],
        "currency": "GBP",
    },
}


def web_event(raw: dict[str, Any]) -> NormalizedEvent:
    """A real normalised event (the shape the resolver forwards), from a raw web event."""
    return normalize("web", orjson.dumps(raw))


def event_msg(pid: str, event: NormalizedEvent) -> bytes:
    """``kind=event`` as the resolver sends it, every identifier accepted."""
    body = {
        "kind": "event",
        "profile_id": pid,
        "event": event.to_dict(),
        "accepted": [ident_key(i) for i in event.identifiers],
        "dropped": [],
    }
    return orjson.dumps(body)


def tick(pid: str) -> bytes:
    return orjson.dumps({"kind": "tick", "profile_id": pid})


def stored(pipeline: Pipeline, pid: str, partition: int = 0) -> Any:
    raw = pipeline.profile_table[partition].get(pid.encode())
    return None if raw is None else orjson.loads(raw)


def to_profiles(pipeline: Pipeline, value: bytes, key: bytes | None, partition: int = 0) -> None:
    """One message on ``profiles.events.v1`` through the pipeline (a batch of its own)."""
    feed(pipeline, Topics(pipeline.settings).profile_events, value, key=key, partition=partition)


def test_events_build_state_and_publish_snapshots(
    pipeline: Pipeline, topics: Topics, sent: Outbox
) -> None:
    page_view, signup = web_event(WEB[0]), web_event(WEB[4])

    to_profiles(pipeline, event_msg(A, page_view), key=A.encode())
    to_profiles(pipeline, event_msg(A, signup), key=A.encode())

    state = ProfileState.from_dict(stored(pipeline, A))
    assert state.event_count == 2
    assert state.identifiers == {
        "anonymous_id": ["ck-jane-1"],
        "customer_id": ["C-1001"],
        "email": ["jane.doe@example.com"],
    }
    assert state.traits["first_name"] == "Jane"
    assert state.consent["marketing"]["granted"] is True

    t = topics
    assert [(m.topic, m.key) for m in sent] == [(t.profiles, A.encode())] * 2
    assert sent[0].json()["event_count"] == 1
    assert sent[1].json() == orjson.loads(orjson.dumps(snapshot(state)))
    assert sent.to(t.actions) == []
    assert pipeline.carts_due[0].get(A.encode()) is None  # no cart, nothing due


def test_due_cart_fires_one_abandoned_cart_action(
    make_pipeline: MakePipeline, sent: Outbox
) -> None:
    # The cart is due as soon as it is added: the next tick finds it past its window.
    pipeline = make_pipeline(cart_window_s=0.0)
    t = Topics(pipeline.settings)
    key = B.encode()

    to_profiles(pipeline, event_msg(B, web_event(CART_ADD)), key=key)
    due_at = float(pipeline.carts_due[0][key])
    assert due_at <= time.time()
    [cart] = sent.to(t.profiles)[-1].json()["open_carts"]
    assert (cart["cart_id"], cart["due_at"]) == ("cart-1", due_at)
    assert sent.to(t.actions) == []  # adding a cart fires nothing by itself

    # Tick messages on the topic still work, alongside the inline check_due.
    to_profiles(pipeline, tick(B), key=key)
    to_profiles(pipeline, tick(B), key=key)  # a second tick must not fire again

    [action_msg] = sent.to(t.actions)
    assert action_msg.key == key
    action = action_msg.json()
    assert action["action_id"] == action_id(ABANDONED_CART, "cart-1")
    assert (action["type"], action["profile_id"], action["channel"]) == (
        ABANDONED_CART,
        B,
        "email",
    )
    assert action["payload"]["cart_id"] == "cart-1"
    assert action["payload"]["value"] == 59.98
    assert action["trigger_event_id"] == "web-cart"

    assert pipeline.carts_due[0].get(key) is None  # decided: no longer due
    assert sent.to(t.profiles)[-1].json()["open_carts"] == []
    assert stored(pipeline, B)["carts"]["cart-1"]["status"] == "abandoned"


def test_check_due_ticks_due_carts_once_and_fires_the_action(
    make_pipeline: MakePipeline, sent: Outbox
) -> None:
    pipeline = make_pipeline(cart_window_s=0.0)
    t = Topics(pipeline.settings)
    key = B.encode()
    # A has no cart (nothing to tick); B's cart is due at once, in another partition.
    to_profiles(pipeline, event_msg(A, web_event(WEB[0])), key=A.encode(), partition=0)
    to_profiles(pipeline, event_msg(B, web_event(CART_ADD)), key=key, partition=2)
    assert pipeline.carts_due[0].get(A.encode()) is None
    assert pipeline.carts_due[2].get(key) is not None
    n = len(sent)

    # As the worker loop does between batches: the check, then the table flush.
    assert pipeline.profiles.check_due(time.time()) == 1  # B only
    pipeline.flush_tables()
    assert pipeline.profiles.check_due(time.time()) == 0  # decided: not ticked again
    pipeline.flush_tables()

    # Applied inline: no tick message on the topic, one action, one snapshot, all for B.
    assert [(m.topic, m.key) for m in sent[n:]] == [(t.actions, key), (t.profiles, key)]
    action = sent[n].json()
    assert (action["type"], action["profile_id"]) == (ABANDONED_CART, B)
    assert action["action_id"] == action_id(ABANDONED_CART, "cart-1")
    assert pipeline.carts_due[2].get(key) is None
    assert stored(pipeline, B, partition=2)["carts"]["cart-1"]["status"] == "abandoned"
    assert stored(pipeline, A)["event_count"] == 1  # A untouched


def test_check_due_decides_by_the_clock_it_is_given(pipeline: Pipeline, sent: Outbox) -> None:
    # The default window: the cart is due ``cart_window_s`` from now, not yet.
    t = Topics(pipeline.settings)
    key = B.encode()
    to_profiles(pipeline, event_msg(B, web_event(CART_ADD)), key=key)
    due_at = float(pipeline.carts_due[0][key])
    assert due_at > time.time() + 60

    assert pipeline.profiles.check_due(due_at - 1.0) == 0  # one second early: nothing
    assert pipeline.profiles.check_due() == 0  # the wall clock: not due either
    pipeline.flush_tables()
    assert sent.to(t.actions) == []

    assert pipeline.profiles.check_due(due_at) == 1  # at its due time: ticked, and fires
    pipeline.flush_tables()
    assert [m.json()["type"] for m in sent.to(t.actions)] == [ABANDONED_CART]
    assert pipeline.carts_due[0].get(key) is None
    assert pipeline.profiles.check_due(due_at + 1.0) == 0


def test_merge_hands_state_over_and_forwards_late_messages(
    pipeline: Pipeline, topics: Topics, sent: Outbox
) -> None:
    t = topics
    key = B.encode()
    merge = {
        "kind": "merge",
        "profile_id": B,
        "survivor": A,
        "reason": {"rule": "deterministic", "identifiers": [], "event_id": "e", "ts": 1.0},
    }

    to_profiles(pipeline, event_msg(B, web_event(CART_ADD)), key=key)
    state_before = stored(pipeline, B)
    assert pipeline.carts_due[0].get(key) is not None
    n = len(sent)

    to_profiles(pipeline, orjson.dumps(merge), key=key)
    handover = sent[n:]
    assert [(m.topic, m.key) for m in handover] == [
        (t.profile_events, A.encode()),  # the state, to the survivor's partition
        (t.profiles, key),  # and a tombstone for the absorbed profile
    ]
    assert handover[0].json() == {
        "kind": "absorb",
        "profile_id": A,
        "absorbed": B,
        "state": state_before,
        "seq": 0,  # the resolver's decision number travels with the hand-over
    }
    assert handover[1].value is None
    assert stored(pipeline, B) == {"moved_to": A}
    assert pipeline.carts_due[0].get(key) is None
    n = len(sent)

    # Late messages for B (a hand-over of a profile merged into B, an event) follow it.
    late_absorb = {"kind": "absorb", "profile_id": B, "absorbed": "p_c", "state": {"x": 1}}
    to_profiles(pipeline, orjson.dumps(late_absorb), key=key)
    late_event = orjson.loads(event_msg(B, web_event(WEB[0])))
    to_profiles(pipeline, orjson.dumps(late_event), key=key)

    forwarded = sent[n:]
    assert [(m.topic, m.key) for m in forwarded] == [(t.profile_events, A.encode())] * 2
    assert forwarded[0].json() == late_absorb | {"profile_id": A}
    assert forwarded[1].json() == late_event | {"profile_id": A}
    assert stored(pipeline, B) == {"moved_to": A}  # still only the marker


def test_handover_folds_into_the_survivor(pipeline: Pipeline, topics: Topics, sent: Outbox) -> None:
    t = topics
    merge = {"kind": "merge", "profile_id": B, "survivor": A, "reason": {}}

    to_profiles(pipeline, event_msg(A, web_event(WEB[5])), key=A.encode())  # login, C-1001
    to_profiles(pipeline, event_msg(B, web_event(CART_ADD)), key=B.encode())
    to_profiles(pipeline, orjson.dumps(merge), key=B.encode())
    [absorb] = [m for m in sent.to(t.profile_events) if m.json()["kind"] == "absorb"]
    n = len(sent)
    to_profiles(pipeline, absorb.value or b"", key=absorb.key)  # what Kafka would deliver

    assert [(m.topic, m.key) for m in sent[n:]] == [(t.profiles, A.encode())]
    state = ProfileState.from_dict(stored(pipeline, A))
    assert state.merged_from == [B]
    assert state.identifiers["customer_id"] == ["C-1001"]
    assert state.identifiers["email"] == ["jane.doe@acme-corp.co.uk"]
    assert set(state.identifiers["anonymous_id"]) == {"ck-jane-2", "ck-b"}
    assert state.carts["cart-1"]["status"] == "open"
    assert pipeline.carts_due[0].get(A.encode()) is not None  # A now owns the due cart
    assert sent[-1].json()["merged_from"] == [B]


def test_bad_messages_cost_only_themselves(
    pipeline: Pipeline, topics: Topics, sent: Outbox
) -> None:
    events = topics.profile_events
    # One batch: the bad messages must not stop the good one behind them.
    pipeline.process(
        [
            Msg(events, b"{not json", offset_=0),
            Msg(events, orjson.dumps({"kind": "bogus", "profile_id": A}), offset_=1),
            Msg(events, tick("p_nobody"), offset_=2),  # a tick for a profile that is gone
            Msg(events, event_msg(A, web_event(WEB[0])), A.encode(), offset_=3),
        ]
    )

    dlq = topics.dlq(events)
    assert [(m.topic, m.key) for m in sent] == [
        (dlq, None),
        (dlq, None),
        (topics.profiles, A.encode()),
    ]
    assert sent[0].value == b"{not json"
    assert sent[0].header_map["scv.error.stage"] == b"profiles"
    assert sent[1].header_map["scv.error.reason"] == b"profile_step: ValueError"
    assert sent[1].header_map["scv.error.offset"] == b"1"
    assert stored(pipeline, "p_nobody") is None
    assert stored(pipeline, A)["event_count"] == 1


def test_a_step_failing_half_way_leaves_nothing_behind(
    pipeline: Pipeline, topics: Topics, sent: Outbox
) -> None:
    """The failing message's half-applied change is undone; the batch's other messages for
    the same profile, before and after it, all count, and nothing is sent twice."""
    events = topics.profile_events
    ok = event_msg(A, web_event(WEB[0]))
    # ``identifiers`` is read after the event was filed into the state: the step fails late.
    broken = orjson.dumps(orjson.loads(ok) | {"identifiers": [5], "seq": 1})
    pipeline.profiles.process(
        [
            Msg(events, ok, A.encode(), offset_=0),
            Msg(events, broken, A.encode(), offset_=1),
            Msg(events, ok, A.encode(), offset_=2),
        ]
    )
    pipeline.flush_tables()

    assert stored(pipeline, A)["event_count"] == 2
    dlq = sent.to(topics.dlq(events))
    assert [m.header_map["scv.error.offset"] for m in dlq] == [b"1"]
    [snap] = sent.to(topics.profiles)
    assert snap.json()["event_count"] == 2
    assert len(sent) == 2  # the replay of the first message sent nothing


def anchored(pid: str, event: NormalizedEvent, anchor: str) -> bytes:
    """``kind=event`` with the anchor the resolver chose."""
    body = orjson.loads(event_msg(pid, event))
    return orjson.dumps(body | {"anchor": anchor})


def test_split_rebuilds_the_kept_part_and_hands_the_rest_over(
    pipeline: Pipeline, topics: Topics, sent: Outbox
) -> None:
    ann = web_event(WEB[4])  # signup: ck-jane-1, C-1001, jane.doe@example.com, Jane, consent
    eve = web_event(
        {**WEB[5], "event_id": "web-eve", "customer_id": "C-2", "traits": {"first_name": "Eve"}}
    )
    split = {
        "kind": "split",
        "profile_id": A,
        "parts": {A: ["anonymous_id:ck-jane-1", "customer_id:C-1001"], B: ["customer_id:C-2"]},
        "removed": [],
        "reason": {"rule": "unmerge", "identifiers": ["customer_id:C-2"], "event_id": "c", "ts": 1},
    }
    to_profiles(pipeline, anchored(A, ann, "customer_id:C-1001"), key=A.encode())
    to_profiles(pipeline, anchored(A, eve, "customer_id:C-2"), key=A.encode())
    assert stored(pipeline, A)["event_count"] == 2
    before = len(sent)
    to_profiles(pipeline, orjson.dumps(split), key=A.encode())
    adoption = sent[before]
    assert (adoption.topic, adoption.key) == (topics.profile_events, B.encode())
    to_profiles(pipeline, adoption.value or b"", key=B.encode())  # as B's owner receives it

    kept, moved = stored(pipeline, A), stored(pipeline, B)
    assert kept["event_count"] == 1 and moved["event_count"] == 1
    assert kept["traits"]["first_name"] == "Jane"
    assert moved["traits"]["first_name"] == "Eve"
    assert kept["identifiers"] == {"anonymous_id": ["ck-jane-1"], "customer_id": ["C-1001"]}
    assert moved["identifiers"] == {"customer_id": ["C-2"]}
    snapshots = {m.key: m.json() for m in sent[before:] if m.topic == topics.profiles}
    assert snapshots[A.encode()]["event_count"] == 1
    assert snapshots[B.encode()]["traits"]["first_name"] == "Eve"


def test_cart_without_items_still_leads_to_abandoned_cart(
    make_pipeline: MakePipeline, sent: Outbox
) -> None:
    """The schema makes ``cart.items`` optional: a collector that sends only the cart id and
    the product added must still get its reminder, carrying what is known."""
    pipeline = make_pipeline(cart_window_s=0.0)
    t = Topics(pipeline.settings)
    key = B.encode()
    bare = {k: v for k, v in CART_ADD.items() if k != "cart"}
    now = time.time()
    first = bare | {
        "event_id": "web-bare-1",
        "timestamp": now - 60,
        "cart": {"cart_id": "cart-bare", "currency": "GBP"},
        "product": {"sku": "SKU-9", "name": "Toaster", "price": 24.5},
    }
    second = bare | {
        "event_id": "web-bare-2",
        "timestamp": now - 30,
        "cart": {"cart_id": "cart-bare"},
        "product": {"sku": "SKU-9", "price": 24.5},
    }
    to_profiles(pipeline, event_msg(B, web_event(first)), key=key)
    to_profiles(pipeline, event_msg(B, web_event(second)), key=key)
    [cart] = sent.to(t.profiles)[-1].json()["open_carts"]
    assert cart["cart_id"] == "cart-bare"

    to_profiles(pipeline, tick(B), key=key)
    [action_msg] = sent.to(t.actions)
    action = action_msg.json()
    assert action["action_id"] == action_id(ABANDONED_CART, "cart-bare")
    assert action["trigger_event_id"] == "web-bare-2"
    payload = action["payload"]
    assert payload["items"] == [{"sku": "SKU-9", "name": "Toaster", "qty": 2, "price": 24.5}]
    assert (payload["value"], payload["currency"], payload["items_complete"]) == (
        49.0,
        "GBP",
        False,
    )


def suppressed(action_type: str, reason: str) -> float:
    labels = {"type": action_type, "reason": reason}
    return REGISTRY.get_sample_value("scv_actions_suppressed_total", labels) or 0.0


def test_replayed_old_cart_is_stale_and_counted(make_pipeline: MakePipeline, sent: Outbox) -> None:
    """A backfill of 2024 traffic today: the cart is opened (its order may still follow) but
    no reminder goes out for it, and the suppression is counted with its reason."""
    pipeline = make_pipeline(cart_window_s=0.0)
    t = Topics(pipeline.settings)
    before = suppressed(ABANDONED_CART, "stale")
    old = CART_ADD | {"timestamp": "2024-05-01T09:02:00Z", "event_id": "web-cart-2024"}
    to_profiles(pipeline, event_msg(B, web_event(old)), key=B.encode())
    to_profiles(pipeline, tick(B), key=B.encode())
    assert sent.to(t.actions) == []
    assert suppressed(ABANDONED_CART, "stale") - before == 1
    assert stored(pipeline, B)["carts"]["cart-1"]["status"] == "abandoned"  # decided once

    # The bound is a setting: 0 turns it off (the reminder then goes out today).
    off = make_pipeline(cart_window_s=0.0, cart_max_lag_s=0)
    to_profiles(off, event_msg(A, web_event(old)), key=A.encode())
    to_profiles(off, tick(A), key=A.encode())
    assert [m.json()["profile_id"] for m in sent.to(t.actions)] == [A]


def churn_story(call_ts: float, visit_ts: float, visit_type: str = "page_view") -> list[bytes]:
    """A cancellation call, then a visit by the same customer (as resolved events)."""
    ident = [("customer_id", "C-77")]
    call = NormalizedEvent(
        "call-77",
        "callcenter",
        "call",
        call_ts,
        ident,
        consent={"marketing": True},
        payload={"disposition": {"cancel_intent": True}},
    )
    visit = NormalizedEvent(
        f"visit-{visit_type}", "web", visit_type, visit_ts, ident, payload={"session_id": "s-77"}
    )
    return [event_msg(A, call), event_msg(A, visit)]


def test_replayed_old_visit_gets_no_churn_offer_and_a_live_one_does(
    make_pipeline: MakePipeline, sent: Outbox
) -> None:
    pipeline = make_pipeline()
    t = Topics(pipeline.settings)
    before = suppressed(CHURN_SAVE, "stale")
    months_ago = time.time() - 120 * 86400
    for msg in churn_story(months_ago, months_ago + 3600):  # a replay of that day
        to_profiles(pipeline, msg, key=A.encode())
    assert sent.to(t.actions) == []
    assert suppressed(CHURN_SAVE, "stale") - before == 1
    assert stored(pipeline, A)["churn"] is not None  # waits for a visit of today

    live = make_pipeline()
    for msg in churn_story(time.time() - 600, time.time() - 5):
        to_profiles(live, msg, key=A.encode())
    [action] = sent.to(t.actions)
    assert action.json()["type"] == CHURN_SAVE


def test_visit_types_come_from_the_settings(make_pipeline: MakePipeline, sent: Outbox) -> None:
    t = Topics(make_pipeline().settings)
    now = time.time()
    logins = make_pipeline(churn_visit_types="login")
    for msg in churn_story(now - 600, now - 5, "page_view"):
        to_profiles(logins, msg, key=A.encode())
    assert sent.to(t.actions) == []  # a page view is no visit with these settings
    for msg in churn_story(now - 600, now - 4, "login")[1:]:
        to_profiles(logins, msg, key=A.encode())
    assert [m.json()["type"] for m in sent.to(t.actions)] == [CHURN_SAVE]
