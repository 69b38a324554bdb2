"""Support tickets (raw.callcenter.v1 type ``ticket``): kept on the profile in any arrival
order, shown as open tickets, and a critical open one holds back every marketing action, the
core's and the activation layer's, until it is solved."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from examples import ev
from test_triggers import CFG, WINDOW, apply, cancel_call, customer, visit

from scv.activation import decide as act
from scv.activation.programmes import load_programmes
from scv.domain.model import NormalizedEvent
from scv.domain.normalize import normalize
from scv.domain.profile import (
    ProfileState,
    absorb,
    apply_event,
    critical_ticket_open,
    new_state,
    snapshot,
)
from scv.domain.triggers import CRITICAL_TICKET, Suppressed, on_event


def ticket(ts: float, tid: str, status: str, priority: str = "normal") -> NormalizedEvent:
    body = {"ticket_id": tid, "status": status, "priority": priority}
    eid = f"{tid}-{status}-{ts}"
    return ev(
        "callcenter", "ticket", ts, [("phone", "+441234")], payload={"ticket": body}, event_id=eid
    )


def fold(events: list[NormalizedEvent]) -> ProfileState:
    state = new_state("p1", 0.0)
    for e in events:
        apply_event(state, e, list(e.identifiers), 1000.0, WINDOW)
    return state


STORY = [
    ticket(10.0, "T1", "opened", "high"),
    ticket(20.0, "T1", "updated", "critical"),
    ticket(30.0, "T2", "opened", "low"),
    ticket(40.0, "T1", "solved", "critical"),
]


def test_the_latest_update_wins_in_any_order() -> None:
    expected = fold(STORY)
    assert snapshot(expected)["open_tickets"] == [
        {"ticket_id": "T2", "priority": "low", "opened_ts": 30.0, "updated_ts": 30.0}
    ]
    assert expected.tickets["T1"]["opened_ts"] == 10.0 and not critical_ticket_open(expected)
    for order in itertools.permutations(STORY):
        assert fold(list(order)).tickets == expected.tickets


def test_two_profiles_merged_keep_each_ticket_s_latest_update() -> None:
    a, b = fold(STORY[:2]), fold(STORY[2:])
    for survivor, absorbed in ((a, b), (b, a)):
        merged = ProfileState.from_dict(survivor.to_dict())
        absorb(merged, absorbed)
        assert merged.tickets == fold(STORY).tickets


def test_a_ticket_event_is_normalised_with_its_ticket() -> None:
    raw = {"event_id": "t-1", "timestamp": "2026-03-02T12:00:00Z", "type": "ticket",
           "phone": "07700 900123", "ticket": {"ticket_id": "T9", "status": "opened",
           "priority": "critical", "category": "delivery"}}  # fmt: skip
    event = normalize("callcenter", orjson.dumps(raw))
    assert event.payload["ticket"]["priority"] == "critical"
    state = fold([event])
    assert critical_ticket_open(state)


def test_a_critical_ticket_holds_back_the_core_s_actions_until_solved() -> None:
    s = customer()
    apply(s, ticket(50.0, "T1", "opened", "critical"))
    apply(s, cancel_call(100))
    held: list[Suppressed] = []
    call_visit = visit(110)
    apply_event(s, call_visit, list(call_visit.identifiers), 1000.0, WINDOW)
    assert on_event(s, call_visit, 1000.0, CFG, held) == []
    assert [x.reason for x in held] == [CRITICAL_TICKET]
    assert s.churn is not None  # kept: the offer waits for the ticket, as for consent
    # solved while the visit is still fresh: the offer goes out at once
    [action] = apply(s, ticket(120.0, "T1", "solved", "critical"))
    assert action.type == "churn_save" and s.churn is None


def test_a_critical_ticket_excludes_the_person_from_every_marketing_programme() -> None:
    rules = load_programmes()
    base: dict[str, Any] = {
        "profile_id": "p1",
        "updated_ts": 1000.0,
        "identifiers": {"email": ["ann@acme.co.uk"], "customer_id": ["C1"]},
        "consent": {"marketing": {"granted": True, "ts": 1.0, "source": "web"}},
        "orders": {"count": 1, "total": 40.0, "last_order_id": "O-1", "last_ts": 1000.0},
    }
    critical = {"ticket_id": "T1", "priority": "critical", "opened_ts": 1.0, "updated_ts": 1.0}
    decision = act.decide(act.Memory(), base | {"open_tickets": [critical]}, rules, 1000.0, 0.0)
    assert decision.actions == []
    assert {(x.programme, x.reason) for x in decision.skipped} == {
        ("welcome", act.EXCLUDED),
        ("cross_sell", act.EXCLUDED),
    }
    calm = critical | {"priority": "high"}
    decision = act.decide(act.Memory(), base | {"open_tickets": [calm]}, rules, 1000.0, 0.0)
    assert [a.type for a in decision.actions] == ["welcome", "cross_sell"]


def test_the_callcenter_schema_takes_tickets_and_refuses_broken_ones() -> None:
    import fastjsonschema
    import pytest

    from scv.schemas import validator

    check = validator("raw.callcenter.v1")
    good = {"event_id": "t-1", "timestamp": 1.0, "type": "ticket", "customer_id": "C1",
            "ticket": {"ticket_id": "T1", "status": "solved", "priority": "critical"}}  # fmt: skip
    check(good)
    for broken in (
        {k: v for k, v in good.items() if k != "ticket"},  # a ticket event without its ticket
        good | {"ticket": {"ticket_id": "T1", "status": "closed"}},
        good | {"ticket": {"ticket_id": "T1", "status": "opened", "priority": "urgent"}},
        good | {"ticket": {"ticket_id": "T1", "status": "opened", "notes": "free text"}},
    ):
        with pytest.raises(fastjsonschema.JsonSchemaValueException):
            check(broken)
