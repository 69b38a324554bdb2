"""The activity timeline and the action list a profile keeps for the single customer view."""

from __future__ import annotations

import random

from examples import ev
from test_parts import ANN, ANN_COOKIE, ANN_KEYS, BOB_KEYS, SHOP_PHONE, _fused_state, file

from scv.domain.graph import ProfileNode
from scv.domain.model import Action, NormalizedEvent, ident_key
from scv.domain.parts import adopt, split_state
from scv.domain.profile import (
    ACTIONS_CAP,
    ACTIVITY_CAP,
    ProfileState,
    absorb,
    merge_actions,
    new_state,
    note_actions,
    timeline,
)
from scv.domain.view import graph_view, profile_view, state_view


def _events(n: int) -> list[NormalizedEvent]:
    sources = [("web", "page_view"), ("email", "click"), ("callcenter", "call")]
    return [
        ev(sources[i % 3][0], sources[i % 3][1], 100.0 + i, [ANN], event_id=f"e{i:03d}")
        for i in range(n)
    ]


def _file_all(events: list[NormalizedEvent]) -> ProfileState:
    state = new_state("p1", 0.0)
    for event in events:
        file(state, event)
    return state


def test_timeline_is_the_newest_events_whatever_the_arrival_order() -> None:
    events = _events(ACTIVITY_CAP + 15)
    in_order = timeline(_file_all(events))
    shuffled = events[:]
    random.Random(3).shuffle(shuffled)
    redelivered = shuffled + shuffled[:10]  # at-least-once: some arrive twice
    assert timeline(_file_all(redelivered)) == in_order
    assert len(in_order) == ACTIVITY_CAP
    assert in_order[-1] == [134.0, "email", "click", "e034"]
    assert [e[3] for e in in_order] == [f"e{i:03d}" for i in range(15, 35)]


def test_the_timeline_is_kept_once_per_part_and_joined_across_parts() -> None:
    state = new_state("p1", 0.0)
    file(state, ev("web", "page_view", 100.0, [ANN_COOKIE], event_id="w1"))
    file(state, ev("email", "click", 200.0, [ANN], event_id="m1"))
    assert state.activity == []  # nothing on the aggregate: the parts hold it
    assert [len(p.activity) for p in state.parts.values()] == [1, 1]
    assert [e[3] for e in timeline(state)] == ["w1", "m1"]


def test_merging_two_timelines_keeps_the_newest_of_both_either_way() -> None:
    events = _events(30)
    a = _file_all(events[::2])
    b = _file_all(events[1::2])
    ab = ProfileState.from_dict(a.to_dict())
    absorb(ab, b)
    ba = ProfileState.from_dict(b.to_dict())
    absorb(ba, a)
    assert timeline(ab) == timeline(ba) == timeline(_file_all(events))


def _action(aid: str, at: float, kind: str = "abandoned_cart") -> Action:
    return Action(aid, kind, "p1", "email", {}, f"trigger-{aid}", 1.0, at)


def test_actions_are_kept_once_newest_last_and_capped() -> None:
    state = new_state("p1", 0.0)
    note_actions(state, [_action("a1", 10.0), _action("a2", 20.0, "churn_save")])
    assert state.actions == [
        [10.0, "abandoned_cart", "email", "a1", "trigger-a1"],
        [20.0, "churn_save", "email", "a2", "trigger-a2"],
    ]
    other = [[5.0, "abandoned_cart", "email", "a1", "trigger-a1"]]  # the same action, earlier
    merged = merge_actions(state.actions, other)
    assert merged == merge_actions(other, state.actions)
    assert [a[3] for a in merged] == ["a1", "a2"] and merged[0][0] == 5.0
    many = [[float(i), "x", "sms", f"id{i}", "t"] for i in range(ACTIONS_CAP + 5)]
    kept = merge_actions([], many)
    assert len(kept) == ACTIONS_CAP and kept[0][3] == "id5"


def test_a_split_gives_every_part_the_person_s_actions_and_its_own_timeline() -> None:
    fused = _fused_state()
    fused.actions = [[1.0, "churn_save", "onsite", "act-bob", "b2"]]
    removed = [ident_key(SHOP_PHONE)]  # the shop phone turned out generic
    kept, [adoption] = split_state(fused, {"pA": ANN_KEYS, "pNew": BOB_KEYS}, removed)
    assert kept is not None
    assert kept.actions == fused.actions
    assert [e[3] for e in timeline(kept)] == ["a1", "a2"]  # Ann's own events only
    assert kept.activity == []
    bob, _ = adopt(None, adoption)
    assert bob.actions == fused.actions
    assert [e[3] for e in timeline(bob)] == ["b1"]
    assert adoption.from_dict(adoption.to_dict()).actions == fused.actions


def test_state_view_shows_the_timeline_newest_first_and_hides_bookkeeping() -> None:
    state = new_state("p1", 100.0)
    file(state, ev("web", "signup", 100.0, [ANN], consent={"marketing": True}, event_id="w1"))
    file(state, ev("callcenter", "call", 200.0, [ANN], event_id="c1"))
    note_actions(state, [_action("a1", 300.0)])
    view = state_view(state)
    assert [(a["source"], a["event_id"]) for a in view["activity"]] == [
        ("callcenter", "c1"),
        ("web", "w1"),
    ]
    assert view["actions"]["recent"][0]["action_id"] == "a1"
    assert view["consent"]["marketing"]["granted"] is True
    assert "parts" not in view and "fired" not in view and "trait_ts" not in view


def test_graph_view_gives_each_identifier_its_reason_and_every_link() -> None:
    node = ProfileNode("p1", 100.0, {"email": ["ann@x.co"], "anonymous_id": ["ck1"]})
    node.add_origin("anonymous_id:ck1", 100.0, "w1")
    node.add_origin("email:ann@x.co", 150.0, "w2")
    node.add_link("email:ann@x.co", "anonymous_id:ck1", "deterministic", "w2", 150.0, None)
    graph = graph_view(node)
    assert graph["keeper"] == "anonymous_id:ck1"
    by_key = {i["identifier"]: i for i in graph["identifiers"]}
    assert by_key["email:ann@x.co"]["type"] == "email"
    assert by_key["email:ann@x.co"]["path"][0]["rule"] == "deterministic"
    assert graph["links"] == [
        {
            "a": "anonymous_id:ck1",
            "b": "email:ann@x.co",
            "rule": "deterministic",
            "event_id": "w2",
            "ts": 150.0,
            "score": None,
        }
    ]
    assert profile_view(node, None)["profile"] is None
