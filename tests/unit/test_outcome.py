"""The chaos comparison: blind to what arrival order may change, not to lost or repeated work."""

from __future__ import annotations

import copy
from typing import Any

from scv.bench.outcome import (
    Outcome,
    compare,
    compare_actions,
    compare_profiles,
    stale_snapshots,
)
from scv.domain.profile import new_state, snapshot


def profile(pid: str, *idents: str, events: int = 3, **fields: Any) -> dict[str, Any]:
    by_type: dict[str, list[str]] = {}
    for ident in idents:
        kind, _, value = ident.partition(":")
        by_type.setdefault(kind, []).append(value)
    body: dict[str, Any] = {
        "profile_id": pid,
        "created_ts": 100.0,
        "updated_ts": 200.0,
        "identifiers": by_type,
        "traits": {"first_name": "Ava"},
        "consent": {},
        "channels": {"web": events},
        "last_activity": {"ts": 200.0, "source": "web", "type": "page_view"},
        "open_carts": [
            {"cart_id": "c1", "items": [], "currency": "GBP", "updated_ts": 150.0, "due_at": 9000.0}
        ],
        "orders": {
            "count": 1,
            "total": 10.1,
            "last_order_id": "o1",
            "last_ts": 160.0,
            "returns": 0,
        },
        "churn_risk": None,
        "merged_from": [],
        "event_count": events,
    }
    return body | fields


def by_id(*profiles: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["profile_id"]: p for p in profiles}


REFERENCE = by_id(
    profile("p_a", "email:a@x.com", "anonymous_id:1"),
    profile("p_b", "customer_id:C2", events=5),
)


def test_ids_merge_history_due_times_and_float_sums_are_not_differences() -> None:
    other = by_id(
        profile(
            "p_zz",
            "anonymous_id:1",
            "email:a@x.com",
            merged_from=["p_q"],
            open_carts=[
                {
                    "cart_id": "c1",
                    "items": [],
                    "currency": "GBP",
                    "updated_ts": 150.0,
                    "due_at": 1234.5,
                }
            ],
            orders={
                "count": 1,
                "total": 10.100000000000001,
                "last_order_id": "o1",
                "last_ts": 160.0,
                "returns": 0,
            },
        ),
        profile("p_yy", "customer_id:C2", events=5),
    )
    report = compare_profiles(REFERENCE, other)
    assert report["differing_profiles"] == 0
    assert report["missing_profiles"] == report["extra_profiles"] == 0
    assert report["lost_events"] == report["double_counted_events"] == 0


def test_an_event_applied_twice_or_lost_is_seen() -> None:
    twice = copy.deepcopy(REFERENCE)
    twice["p_b"] |= {"event_count": 6, "channels": {"web": 6}}
    report = compare_profiles(REFERENCE, twice)
    assert report["differing_profiles"] == 1
    assert report["double_counted_events"] == 1
    assert list(report["examples"][0]["fields"]) == ["channels", "event_count"]

    lost = {"p_a": REFERENCE["p_a"]}
    report = compare_profiles(REFERENCE, lost)
    assert report["missing_profiles"] == 1 and report["lost_events"] == 5


def test_a_profile_left_unmerged_is_missing_and_extra() -> None:
    split = by_id(
        profile("p_a", "email:a@x.com", events=2),
        profile("p_c", "anonymous_id:1", events=1),
        profile("p_b", "customer_id:C2", events=5),
    )
    report = compare_profiles(REFERENCE, split)
    assert (report["missing_profiles"], report["extra_profiles"]) == (1, 2)


def test_consent_differs_by_arrival_only_when_a_denial_meets_a_later_grant() -> None:
    deny = {"granted": False, "ts": 150.0, "source": "email"}
    later_grant = {"granted": True, "ts": 180.0, "source": "web"}
    earlier_grant = {"granted": True, "ts": 120.0, "source": "web"}
    ref = {"p_a": profile("p_a", "email:a@x.com", consent={"marketing": deny})}
    explained = compare_profiles(
        ref, {"p_a": profile("p_a", "email:a@x.com", consent={"marketing": later_grant})}
    )
    assert explained["differing_profiles"] == 0
    assert explained["order_sensitive_consent"] == 1
    wrong = compare_profiles(
        ref, {"p_a": profile("p_a", "email:a@x.com", consent={"marketing": earlier_grant})}
    )
    assert wrong["differing_profiles"] == 1
    gone = compare_profiles(ref, {"p_a": profile("p_a", "email:a@x.com")})
    assert gone["differing_profiles"] == 1


def action(aid: str, **fields: Any) -> dict[str, Any]:
    return {
        "action_id": aid,
        "type": "churn_save",
        "profile_id": "p_a",
        "channel": "onsite",
        "payload": {"call_event_id": "ev-1", "session_id": "s1", "anonymous_id": "a1"},
        "trigger_event_id": "ev-9",
        "event_ts": 300.0,
        "created_at": 1000.0,
    } | fields


def test_actions_duplicates_missing_extra_and_content() -> None:
    ref = [action("act_1"), action("act_2")]
    got = [
        action("act_1", profile_id="p_other", created_at=2000.0),
        action("act_1"),
        action("act_3"),
    ]
    report = compare_actions(ref, got)
    assert report["duplicate_actions"] == 1
    assert (report["missing_actions"], report["extra_actions"]) == (1, 1)
    assert report["differing_actions"] == 0

    other_visit = action(
        "act_2",
        trigger_event_id="ev-8",
        payload={"call_event_id": "ev-1", "session_id": "s2", "anonymous_id": "a1"},
    )
    report = compare_actions(ref, [ref[0], other_visit])
    assert report["differing_actions"] == 0 and report["order_sensitive_visit"] == 1
    other_call = action(
        "act_2", payload={"call_event_id": "ev-2", "session_id": "s1", "anonymous_id": "a1"}
    )
    assert compare_actions(ref, [ref[0], other_call])["differing_actions"] == 1


def test_a_state_whose_snapshot_never_reached_the_topic_is_stale() -> None:
    state = new_state("p_a", 100.0)
    state.identifiers = {"email": ["a@x.com"]}
    published = snapshot(state)
    states = {"p_a": state.to_dict(), "p_old": {"moved_to": "p_a"}}
    assert stale_snapshots(Outcome({"p_a": published}, [], states)) == 0
    state.event_count = 4
    assert stale_snapshots(Outcome({"p_a": published}, [], {"p_a": state.to_dict()})) == 1
    assert stale_snapshots(Outcome({"p_a": published, "p_old": published}, [], states)) == 1


def test_what_consent_gates_may_differ_only_where_consent_differs_by_arrival() -> None:
    deny = {"granted": False, "ts": 150.0, "source": "transactions"}
    grant = {"granted": True, "ts": 180.0, "source": "web"}
    flag = {"flagged_ts": 170.0, "event_id": "call-1"}
    ref = Outcome(
        by_id(
            profile("p_a", "email:a@x.com", consent={"marketing": deny}, churn_risk=flag),
            profile("p_b", "customer_id:C2", churn_risk=flag),
        ),
        [],
    )
    offer_a = action("act_a", profile_id="p_x")  # sent by a profile merged into p_a since
    offer_b = action("act_b", profile_id="p_b")
    got = Outcome(
        by_id(
            profile("p_a", "email:a@x.com", consent={"marketing": grant}, merged_from=["p_x"]),
            profile("p_b", "customer_id:C2"),
        ),
        [offer_a, offer_b],
    )
    profiles, actions = compare(ref, got)
    assert profiles["order_sensitive_consent"] == 1
    assert profiles["differing_profiles"] == 1  # p_b: its flag went without a reason
    assert [e["identifiers"] for e in profiles["examples"]] == [["customer_id:C2"]]
    assert actions["order_sensitive_consent"] == 1  # act_a
    assert actions["extra_actions"] == 1  # act_b


def test_repeated_records_are_counted_without_their_processing_time() -> None:
    from scv.bench.outcome import repeated

    a = b'{"kind":"erasure","command_id":"c1","processed_at":1.0}'
    redo = b'{"processed_at":2.5,"command_id":"c1","kind":"erasure"}'  # same record, later
    other = b'{"kind":"erasure","command_id":"c2","processed_at":1.0}'
    assert repeated([a, other]) == 0
    assert repeated([a, redo, other]) == 1
    assert repeated([b"raw bytes", b"raw bytes", None, b"\xff"]) == 1
    # the same malformed bytes from two inputs: two dead letters, no repeat
    offsets = [{"scv.error.offset": b"7"}, {"scv.error.offset": b"9"}]
    assert repeated([b"[]", b"[]"], offsets) == 0
    assert repeated([b"[]", b"[]"], [offsets[0], offsets[0]]) == 1
