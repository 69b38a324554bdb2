"""The activation layer's decisions (scv.activation.decide): pure, on profile snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from scv.activation import decide as d
from scv.activation.programmes import Cap, Programmes, QuietHours, load_programmes
from scv.domain.model import action_id

RULES = load_programmes()
#: 2026-03-02 12:00 UTC (13:00 in Berlin): outside the built-in quiet hours
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC).timestamp()


def snap(pid: str = "p1", ts: float = NOON, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "profile_id": pid,
        "updated_ts": ts,
        "identifiers": {"email": ["ann@acme.co.uk"]},
        "traits": {"first_name": "Ann"},
        "consent": {"marketing": {"granted": True, "ts": ts, "source": "web"}},
        "open_carts": [],
        "orders": {"count": 0, "total": 0.0, "last_order_id": None, "last_ts": None},
        "churn_risk": None,
        "household_id": None,
    }
    return base | over


def registered(cid: str = "C1", **over: Any) -> dict[str, Any]:
    return snap(identifiers={"email": ["ann@acme.co.uk"], "customer_id": [cid]}, **over)


def ordered(n: int, total: float, last: str, **over: Any) -> dict[str, Any]:
    orders = {"count": n, "total": total, "last_order_id": last, "last_ts": NOON}
    return snap(orders=orders, **over)


def run(memory: d.Memory, s: dict[str, Any], rules: Programmes = RULES) -> d.Decision:
    return d.decide(memory, s, rules, stream_ts=float(s["updated_ts"]), now=NOON + 1)


def test_a_registration_is_welcomed_once_by_customer_id() -> None:
    memory = d.Memory()
    assert run(memory, snap()).actions == []
    [action] = run(memory, registered()).actions
    assert (action.type, action.channel, action.action_id) == (
        "welcome",
        "email",
        action_id("welcome", "C1"),
    )
    assert action.payload["subject"] == "C1" and action.payload["not_before"] is None
    assert run(memory, registered(updated_ts=NOON + 5)).actions == []  # no change, no message


def test_a_first_snapshot_is_compared_with_an_empty_profile() -> None:
    """The order that created a profile counts."""
    [action] = run(d.Memory(), ordered(1, 30.0, "O-1")).actions
    assert action.type == "cross_sell" and action.action_id == action_id("cross_sell", "O-1")


def test_reasons_not_to_send_in_order() -> None:
    def reasons(s: dict[str, Any]) -> list[tuple[str, str]]:
        return [(x.programme, x.reason) for x in run(d.Memory(), s).skipped]

    assert reasons(ordered(1, 9.5, "O-1")) == [("cross_sell", d.CONDITION)]
    flagged = {"flagged_ts": NOON, "event_id": "ev-call"}
    assert reasons(ordered(1, 30.0, "O-1", churn_risk=flagged)) == [("cross_sell", d.EXCLUDED)]
    objection = {"ts": NOON, "source": "callcenter"}
    assert reasons(ordered(1, 30.0, "O-1", objection=objection)) == [("cross_sell", d.OBJECTED)]
    assert reasons(ordered(1, 30.0, "O-1", consent={})) == [("cross_sell", d.NO_CONSENT)]
    denied = {"marketing": {"granted": False, "ts": NOON, "source": "web"}}
    assert reasons(ordered(1, 30.0, "O-1", consent=denied)) == [("cross_sell", d.NO_CONSENT)]
    assert reasons(ordered(1, 30.0, "O-1", identifiers={})) == [("cross_sell", d.NO_CHANNEL)]


def test_sms_when_there_is_no_email() -> None:
    s = registered()
    s["identifiers"] = {"customer_id": ["C1"], "phone": ["+447700900123"]}
    [action] = run(d.Memory(), s).actions
    assert action.channel == "sms"


def test_the_caps_let_the_higher_priority_through_first() -> None:
    s = registered()
    s["orders"] = {"count": 1, "total": 40.0, "last_order_id": "O-1", "last_ts": NOON}
    assert [a.type for a in run(d.Memory(), s).actions] == ["welcome", "cross_sell"]
    one_a_day = Programmes(RULES.programmes, global_cap=Cap(1, 86400.0))
    memory = d.Memory()
    decision = run(memory, s, one_a_day)
    assert [a.type for a in decision.actions] == ["welcome"]
    assert [(x.programme, x.reason) for x in decision.skipped] == [("cross_sell", d.GLOBAL_CAP)]
    # the cross-sell waits for the cap's window: the next day's change sends it
    [later] = run(memory, s | {"updated_ts": NOON + 86401}, one_a_day).actions
    assert later.type == "cross_sell"


def test_caps_count_in_event_time() -> None:
    memory = d.Memory()
    assert len(run(memory, ordered(1, 30.0, "O-1")).actions) == 1
    day = 86400.0
    second = run(memory, ordered(2, 60.0, "O-2", updated_ts=NOON + day))
    assert [x.reason for x in second.skipped] == [d.PROGRAMME_CAP]  # once a week
    third = run(memory, ordered(3, 90.0, "O-3", updated_ts=NOON + 8 * day))
    assert [a.payload["subject"] for a in third.actions] == ["O-3"]
    # the global cap, across programmes
    tight = Programmes(RULES.programmes, global_cap=Cap(1, day))
    memory = d.Memory()
    assert len(run(memory, registered(), tight).actions) == 1
    s = registered(updated_ts=NOON + 60)
    s["orders"] = {"count": 1, "total": 40.0, "last_order_id": "O-9", "last_ts": NOON}
    assert [x.reason for x in run(memory, s, tight).skipped] == [d.GLOBAL_CAP]
    assert all(float(ts) > NOON + 60 - 8 * day for ts, _ in memory.sent)  # bounded memory


def test_quiet_hours_hold_the_message_until_morning_in_their_zone() -> None:
    late = datetime(2026, 3, 2, 22, 30, tzinfo=UTC).timestamp()  # 23:30 in Berlin
    [action] = run(d.Memory(), registered(updated_ts=late)).actions
    morning = datetime(2026, 3, 3, 7, 0, tzinfo=UTC).timestamp()  # 08:00 in Berlin
    assert action.payload["not_before"] == morning
    utc = Programmes(RULES.programmes, quiet_hours=QuietHours(time(21), time(8)))
    early = datetime(2026, 3, 3, 5, 0, tzinfo=UTC).timestamp()
    [action] = run(d.Memory(), registered(updated_ts=early), utc).actions
    assert action.payload["not_before"] == datetime(2026, 3, 3, 8, 0, tzinfo=UTC).timestamp()
    [action] = run(d.Memory(), registered(), utc).actions
    assert action.payload["not_before"] is None


def test_a_replayed_change_is_stale() -> None:
    old = registered(updated_ts=NOON)
    decision = d.decide(d.Memory(), old, RULES, stream_ts=NOON + 2 * 86400, now=NOON)
    assert decision.actions == [] and [x.reason for x in decision.skipped] == [d.STALE]


def test_the_gate_lets_an_action_id_through_once() -> None:
    sent: dict[str, float] = {}
    [action] = run(d.Memory(), registered()).actions
    assert d.gate(sent, action) is True
    # a merged profile that reads "registered" as new names the same customer id
    [again] = run(d.Memory(), registered(pid="p2")).actions
    assert again.action_id == action.action_id and d.gate(sent, again) is False


def test_memory_round_trips() -> None:
    memory = d.Memory()
    run(memory, registered())
    assert d.Memory.from_dict(memory.to_dict()) == memory
    assert d.Memory.from_dict(None) == d.Memory()


def test_audiences_are_entered_and_left_as_facts_change() -> None:
    memory = d.Memory()
    assert run(memory, registered()).audiences == [("registered_no_order", True)]
    big = registered(updated_ts=NOON + 60)
    big["orders"] = {"count": 1, "total": 620.0, "last_order_id": "O-1", "last_ts": NOON}
    decision = run(memory, big)
    assert decision.audiences == [("high_value", True), ("registered_no_order", False)]
    # entering an audience is a trigger too (before the cross-sell: a higher priority)
    assert [a.type for a in decision.actions] == ["high_value_thanks", "cross_sell"]
    assert run(memory, big | {"updated_ts": NOON + 120}).audiences == []
    assert d.forget(memory, RULES) == ["high_value"]  # what a tombstone takes it out of


def test_the_call_centre_segment_needs_a_number_to_call() -> None:
    flagged = {"flagged_ts": NOON, "event_id": "ev-call"}
    assert run(d.Memory(), snap(churn_risk=flagged)).audiences == []
    with_phone = snap(churn_risk=flagged, identifiers={"phone": ["+447700900123"]})
    assert run(d.Memory(), with_phone).audiences == [("callcentre_retention", True)]


def test_the_trail_keeps_the_latest_decisions_and_why() -> None:
    memory = d.Memory()
    run(memory, ordered(1, 9.5, "O-1"))
    run(memory, ordered(2, 40.0, "O-2", updated_ts=NOON + 60))
    outcomes = [(name, outcome) for _, name, outcome, _ in memory.trail]
    assert outcomes == [("cross_sell", d.CONDITION), ("cross_sell", "sent:email")]
    run(memory, ordered(3, 60.0, "O-3", updated_ts=NOON + 120))
    run(memory, ordered(4, 80.0, "O-4", updated_ts=NOON + 180))
    # the same deferral twice in a row is noted once (it comes on every change until it ends)
    assert [e[2] for e in memory.trail[-1:]] == [d.PROGRAMME_CAP] and len(memory.trail) == 3
    week = 8 * 86400.0
    for i in range(d.TRAIL_CAP):
        run(memory, ordered(5 + i, 90.0 + i, f"O-{5 + i}", updated_ts=NOON + (i + 1) * week))
    assert len(memory.trail) == d.TRAIL_CAP
    assert d.Memory.from_dict(memory.to_dict()) == memory


def test_a_deferred_message_goes_out_with_the_change_that_allows_it() -> None:
    """Registered before the consent came: the welcome waits for it, then goes once."""
    memory = d.Memory()
    first = run(memory, registered(consent={}))
    assert first.actions == [] and [x.reason for x in first.skipped] == [d.NO_CONSENT]
    [welcome] = run(memory, registered(updated_ts=NOON + 60)).actions
    assert welcome.action_id == action_id("welcome", "C1")
    assert run(memory, registered(updated_ts=NOON + 120)).actions == []


def test_what_a_person_gets_does_not_hang_on_the_order_of_their_changes() -> None:
    """Consent then registration, or registration then consent (parallel sources deliver
    them either way): one welcome both times."""
    consent_first = [snap(updated_ts=NOON), registered(updated_ts=NOON + 10)]
    consent_last = [registered(consent={}, updated_ts=NOON), registered(updated_ts=NOON + 10)]
    for history in (consent_first, consent_last):
        memory = d.Memory()
        sent = [a.action_id for s in history for a in run(memory, s).actions]
        assert sent == [action_id("welcome", "C1")]


def test_a_stale_subject_is_never_messaged_later() -> None:
    old = registered(updated_ts=NOON)
    memory = d.Memory()
    decision = d.decide(memory, old, RULES, stream_ts=NOON + 2 * 86400, now=NOON)
    assert [x.reason for x in decision.skipped] == [d.STALE]
    fresh = registered(updated_ts=NOON + 2 * 86400)
    assert run(memory, fresh).actions == []  # the registration's welcome was due last spring


def test_the_fast_and_paced_comparison() -> None:
    from scv.bench.activation import compare

    fast = {"actions": {"welcome": 200, "cross_sell": 100}, "audience_members": {"vip": 10}}
    paced = {"actions": {"welcome": 196, "churn_save": 2}, "audience_members": {"vip": 10}}
    got = compare(fast, paced)
    assert got["actions_apart"] == {"churn_save": 1.0, "cross_sell": 1.0, "welcome": 0.02}
    assert got["audiences_apart"] == {"vip": 0.0} and got["max_apart"] == 1.0
