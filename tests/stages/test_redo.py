"""What a stage does with work redone after a crash (docs/guarantees.md): repeats dropped by
origin, a repeated merge ignored, actions already on the topic not sent again, and nothing
of processing time in what a merge hands over."""

from __future__ import annotations

import time
from typing import Any

import orjson
from stagekit import Outbox, load_examples
from test_profiles_stage import CART_ADD, A, B, event_msg, stored, to_profiles, web_event

from scv.domain.profile import ProfileState
from scv.domain.triggers import CHURN_SAVE, action_id
from scv.streams.dlq import LocalMsg
from scv.streams.origin import ORIGIN
from scv.streams.worker import Pipeline
from scv.topics import Topics

WEB = load_examples().WEB


class Stamped(LocalMsg):
    """A consumed message with headers (the origin stamp of the stage that sent it)."""

    def __init__(self, *args: Any, headers: list[tuple[str, bytes]]) -> None:
        super().__init__(*args)
        self._headers = headers

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers


def test_a_repeat_from_an_upstream_redo_is_applied_once(
    pipeline: Pipeline, topics: Topics, sent: Outbox
) -> None:
    value = event_msg(A, web_event(WEB[0]))
    first = Stamped(
        topics.profile_events,
        value,
        A.encode(),
        0,
        10,
        headers=[(ORIGIN, b"identity.events.v1/0@500.0")],
    )
    pipeline.process([first])
    # the resolver crashed after sending it and redid the input: same origin, new offset
    again = Stamped(
        topics.profile_events,
        value,
        A.encode(),
        0,
        11,
        headers=[(ORIGIN, b"identity.events.v1/0@500.0")],
    )
    later = Stamped(
        topics.profile_events,
        value,
        A.encode(),
        0,
        12,
        headers=[(ORIGIN, b"identity.events.v1/0@501.0")],
    )
    pipeline.process([again, later])

    assert stored(pipeline, A)["event_count"] == 2  # 500.0 and 501.0, not 500.0 twice
    unit, name = pipeline.unit_of[(topics.profile_events, 0)]
    assert unit.progress.positions[name] == 13  # the repeat still moves the input on
    assert unit.progress.origins["identity.events.v1/0"] == [501, 0]


def test_what_a_stage_sends_on_names_the_input_it_follows_from(
    pipeline: Pipeline, topics: Topics, sent: Outbox
) -> None:
    merge = {"kind": "merge", "profile_id": B, "survivor": A, "reason": {}}
    to_profiles(pipeline, event_msg(B, web_event(CART_ADD)), key=B.encode())
    to_profiles(pipeline, orjson.dumps(merge), key=B.encode())  # offset 0 of its batch
    [absorb] = [m for m in sent.to(topics.profile_events) if m.json()["kind"] == "absorb"]
    assert absorb.header_map[ORIGIN] == f"{topics.profile_events}/0@0.0".encode()
    assert ORIGIN not in sent.to(topics.profiles)[-1].header_map  # not for activation


def test_a_repeated_merge_does_not_hand_the_survivor_to_itself(
    pipeline: Pipeline, topics: Topics, sent: Outbox
) -> None:
    """Before: the second merge was forwarded to A as a merge of A into A, which marked A
    as moved to itself and forwarded everything for A to A, forever."""
    merge = {"kind": "merge", "profile_id": B, "survivor": A, "reason": {}}
    to_profiles(pipeline, event_msg(A, web_event(WEB[0])), key=A.encode())
    to_profiles(pipeline, event_msg(B, web_event(CART_ADD)), key=B.encode())
    to_profiles(pipeline, orjson.dumps(merge), key=B.encode())
    n = len(sent)
    to_profiles(pipeline, orjson.dumps(merge), key=B.encode())
    assert sent[n:] == []
    assert stored(pipeline, B) == {"moved_to": A}
    assert "profile_id" in stored(pipeline, A)  # A is a live profile, not a marker


def test_a_merge_before_the_state_arrived_hands_over_no_processing_time(
    pipeline: Pipeline, topics: Topics, sent: Outbox
) -> None:
    to_profiles(pipeline, event_msg(A, web_event(WEB[0])), key=A.encode())
    before = stored(pipeline, A)
    merge = {"kind": "merge", "profile_id": B, "survivor": A, "reason": {}}
    to_profiles(pipeline, orjson.dumps(merge), key=B.encode())  # B's state is not here yet
    [absorb] = [m for m in sent.to(topics.profile_events) if m.json()["kind"] == "absorb"]
    to_profiles(pipeline, absorb.value or b"", key=absorb.key)
    after = stored(pipeline, A)
    assert (after["created_ts"], after["updated_ts"]) == (
        before["created_ts"],
        before["updated_ts"],
    )


def test_an_action_found_on_the_topic_after_a_crash_is_not_sent_again(
    pipeline: Pipeline, topics: Topics, sent: Outbox
) -> None:
    call = {
        "kind": "event",
        "profile_id": A,
        "accepted": ["customer_id:C-1"],
        "dropped": [],
        "event": {
            "event_id": "call-1",
            "source": "callcenter",
            "type": "call",
            "ts": time.time() - 100,  # live: a visit months old gets no offer
            "identifiers": [["customer_id", "C-1"]],
            "traits": {},
            "consent": {"marketing": True},
            "payload": {"disposition": {"cancel_intent": True}},
        },
    }
    visit = orjson.loads(event_msg(A, web_event(WEB[0])))
    visit["event"]["ts"] = time.time() - 10
    visit["accepted"].append("customer_id:C-1")
    ledger = pipeline.profiles.ledger(0)
    aid = action_id(CHURN_SAVE, "call-1")
    ledger.recovered(40, 41, [aid])  # what recovery read back from actions.v1[0]

    to_profiles(pipeline, orjson.dumps(call), key=A.encode())
    to_profiles(pipeline, orjson.dumps(visit), key=A.encode())

    assert sent.to(topics.actions) == []  # fired again by the redo, but already out
    assert aid in ProfileState.from_dict(stored(pipeline, A)).fired  # and recorded
    assert ledger.on_topic == set()
    assert ledger.floor() == 41  # every id came round: the read-back point may move on
