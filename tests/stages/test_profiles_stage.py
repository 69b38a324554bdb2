"""The profiles agent: profile events → state table, snapshots, actions, merge hand-overs."""

from __future__ import annotations

import inspect
import time
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from agentkit import Outbox, feed, load_examples

from scv.domain.model import NormalizedEvent, ident_key
from scv.domain.normalize import normalize
from scv.domain.profile import ProfileState, snapshot
from scv.domain.triggers import ABANDONED_CART, action_id

WEB = load_examples().WEB
A, B = "p_survivor", "p_absorbed"

CART_ADD: dict[str, Any] = {
    "event_id": "web-cart",
    "timestamp": "2024-05-01T09:02:00Z",
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


def stored(stages: SimpleNamespace, pid: str) -> Any:
    raw = stages.wiring.profile_table.get(pid.encode())
    return None if raw is None else orjson.loads(raw)


async def test_events_build_state_and_publish_snapshots(
    stages: SimpleNamespace, sent: Outbox
) -> None:
    page_view, signup = web_event(WEB[0]), web_event(WEB[4])

    async with stages.profiles.profiles_agent.test_context() as agent:
        await feed(agent, event_msg(A, page_view), key=A.encode())
        await feed(agent, event_msg(A, signup), key=A.encode())

    state = ProfileState.from_dict(stored(stages, A))
    assert state.event_count == 2
    assert state.identifiers == {
        "anonymous_id": ["ck-jane-1"],
        "customer_id": ["C-1001"],
        "email": ["jane.doe@example.com"],
    }
    assert state.traits["first_name"] == "Jane"
    assert state.consent["marketing"]["granted"] is True

    t = stages.topics
    assert [(m.topic, m.key) for m in sent] == [(t.profiles, A.encode())] * 2
    assert sent[0].json()["event_count"] == 1
    assert sent[1].json() == orjson.loads(orjson.dumps(snapshot(state)))
    assert sent.to(t.actions) == []
    assert stages.wiring.carts_due.get(A.encode()) is None  # no cart, nothing due


async def test_due_cart_fires_one_abandoned_cart_action(
    stages: SimpleNamespace, sent: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cart is due as soon as it is added: the next tick finds it past its window.
    monkeypatch.setattr(stages.settings, "cart_window_s", 0.0)
    t = stages.topics
    key = B.encode()

    async with stages.profiles.profiles_agent.test_context() as agent:
        await feed(agent, event_msg(B, web_event(CART_ADD)), key=key)
        due_at = float(stages.wiring.carts_due[key])
        assert due_at <= time.time()
        [cart] = sent.to(t.profiles)[-1].json()["open_carts"]
        assert (cart["cart_id"], cart["due_at"]) == ("cart-1", due_at)
        assert sent.to(t.actions) == []  # adding a cart fires nothing by itself

        await feed(agent, tick(B), key=key)
        await feed(agent, tick(B), key=key)  # a second tick must not fire again

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

    assert stages.wiring.carts_due.get(key) is None  # decided: no longer due
    assert sent.to(t.profiles)[-1].json()["open_carts"] == []
    assert stored(stages, B)["carts"]["cart-1"]["status"] == "abandoned"


async def test_timer_ticks_due_carts_once_and_the_tick_fires_the_action(
    stages: SimpleNamespace, sent: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stages.settings, "cart_window_s", 0.0)
    t = stages.topics
    key = B.encode()
    # ``@app.timer`` wraps the body in an endless itertimer loop (and that in an app task);
    # both use functools.wraps, so unwrapping reaches the body: one check of the real table.
    check_due_carts = inspect.unwrap(stages.profiles.check_due_carts)
    assert check_due_carts.__code__.co_filename == stages.profiles.__file__

    async with stages.profiles.profiles_agent.test_context() as agent:
        await feed(agent, event_msg(A, web_event(WEB[0])), key=A.encode())  # no cart: no tick
        await feed(agent, event_msg(B, web_event(CART_ADD)), key=key)
        await check_due_carts()
        await check_due_carts()  # the first tick is still in flight: not sent again
        ticks = sent.to(t.profile_events)
        assert [(m.key, m.json()) for m in ticks] == [(key, {"kind": "tick", "profile_id": B})]

        await feed(agent, ticks[0].value or b"", key=ticks[0].key)

    assert [m.json()["type"] for m in sent.to(t.actions)] == [ABANDONED_CART]


async def test_merge_hands_state_over_and_forwards_late_messages(
    stages: SimpleNamespace, sent: Outbox
) -> None:
    t = stages.topics
    key = B.encode()
    merge = {
        "kind": "merge",
        "profile_id": B,
        "survivor": A,
        "reason": {"rule": "deterministic", "identifiers": [], "event_id": "e", "ts": 1.0},
    }

    async with stages.profiles.profiles_agent.test_context() as agent:
        await feed(agent, event_msg(B, web_event(CART_ADD)), key=key)
        state_before = stored(stages, B)
        assert stages.wiring.carts_due.get(key) is not None
        n = len(sent)

        await feed(agent, orjson.dumps(merge), key=key)
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
        assert stored(stages, B) == {"moved_to": A}
        assert stages.wiring.carts_due.get(key) is None
        n = len(sent)

        # Late messages for B (a hand-over of a profile merged into B, an event) follow it.
        late_absorb = {"kind": "absorb", "profile_id": B, "absorbed": "p_c", "state": {"x": 1}}
        await feed(agent, orjson.dumps(late_absorb), key=key)
        late_event = orjson.loads(event_msg(B, web_event(WEB[0])))
        await feed(agent, orjson.dumps(late_event), key=key)

    forwarded = sent[n:]
    assert [(m.topic, m.key) for m in forwarded] == [(t.profile_events, A.encode())] * 2
    assert forwarded[0].json() == late_absorb | {"profile_id": A}
    assert forwarded[1].json() == late_event | {"profile_id": A}
    assert stored(stages, B) == {"moved_to": A}  # still only the marker


async def test_handover_folds_into_the_survivor(stages: SimpleNamespace, sent: Outbox) -> None:
    t = stages.topics
    merge = {"kind": "merge", "profile_id": B, "survivor": A, "reason": {}}

    async with stages.profiles.profiles_agent.test_context() as agent:
        await feed(agent, event_msg(A, web_event(WEB[5])), key=A.encode())  # login, C-1001
        await feed(agent, event_msg(B, web_event(CART_ADD)), key=B.encode())
        await feed(agent, orjson.dumps(merge), key=B.encode())
        [absorb] = [m for m in sent.to(t.profile_events) if m.json()["kind"] == "absorb"]
        n = len(sent)
        await feed(agent, absorb.value or b"", key=absorb.key)  # what Kafka would deliver

    assert [(m.topic, m.key) for m in sent[n:]] == [(t.profiles, A.encode())]
    state = ProfileState.from_dict(stored(stages, A))
    assert state.merged_from == [B]
    assert state.identifiers["customer_id"] == ["C-1001"]
    assert state.identifiers["email"] == ["jane.doe@acme-corp.co.uk"]
    assert set(state.identifiers["anonymous_id"]) == {"ck-jane-2", "ck-b"}
    assert state.carts["cart-1"]["status"] == "open"
    assert stages.wiring.carts_due.get(A.encode()) is not None  # A now owns the due cart
    assert sent[-1].json()["merged_from"] == [B]


async def test_bad_messages_cost_only_themselves(stages: SimpleNamespace, sent: Outbox) -> None:
    async with stages.profiles.profiles_agent.test_context() as agent:
        await feed(agent, b"{not json")
        await feed(agent, orjson.dumps({"kind": "bogus", "profile_id": A}))
        await feed(agent, tick("p_nobody"))  # a tick for a profile that is gone: ignored
        await feed(agent, event_msg(A, web_event(WEB[0])), key=A.encode())
        assert agent.crash_reason is None

    dlq = stages.topics.dlq(stages.topics.profile_events)
    assert [(m.topic, m.key) for m in sent] == [
        (dlq, None),
        (dlq, None),
        (stages.topics.profiles, A.encode()),
    ]
    assert sent[0].value == b"{not json"
    assert sent[0].header_map["scv.error.stage"] == b"profiles"
    assert sent[1].header_map["scv.error.reason"] == (
        b"profile_step: ValueError: unknown message kind 'bogus'"
    )
    assert stored(stages, "p_nobody") is None
    assert stored(stages, A)["event_count"] == 1


def anchored(pid: str, event: NormalizedEvent, anchor: str) -> bytes:
    """``kind=event`` with the anchor the resolver chose."""
    body = orjson.loads(event_msg(pid, event))
    return orjson.dumps(body | {"anchor": anchor})


async def test_split_rebuilds_the_kept_part_and_hands_the_rest_over(
    stages: SimpleNamespace, sent: Outbox
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
    async with stages.profiles.profiles_agent.test_context() as agent:
        await feed(agent, anchored(A, ann, "customer_id:C-1001"), key=A.encode())
        await feed(agent, anchored(A, eve, "customer_id:C-2"), key=A.encode())
        assert stored(stages, A)["event_count"] == 2
        before = len(sent)
        await feed(agent, orjson.dumps(split), key=A.encode())
        adoption = sent[before]
        assert (adoption.topic, adoption.key) == (stages.topics.profile_events, B.encode())
        await feed(agent, adoption.value, key=B.encode())  # as the owner of B receives it
        assert agent.crash_reason is None

    kept, moved = stored(stages, A), stored(stages, B)
    assert kept["event_count"] == 1 and moved["event_count"] == 1
    assert kept["traits"]["first_name"] == "Jane"
    assert moved["traits"]["first_name"] == "Eve"
    assert kept["identifiers"] == {"anonymous_id": ["ck-jane-1"], "customer_id": ["C-1001"]}
    assert moved["identifiers"] == {"customer_id": ["C-2"]}
    snapshots = {m.key: m.json() for m in sent[before:] if m.topic == stages.topics.profiles}
    assert snapshots[A.encode()]["event_count"] == 1
    assert snapshots[B.encode()]["traits"]["first_name"] == "Eve"
