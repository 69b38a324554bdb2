"""Consent commands and objections in the profile state: what they record, how merges and
splits keep them, and that the action gate honours them."""

from __future__ import annotations

from typing import Any

from examples import ev

from scv.domain.model import NormalizedEvent, ident_key
from scv.domain.parts import adopt, file_consent, file_event, split_state
from scv.domain.profile import (
    ProfileState,
    absorb,
    apply_consent,
    new_state,
    objected,
    set_objection,
    snapshot,
)
from scv.domain.triggers import OBJECTED, Suppressed, TriggerConfig, due
from scv.schemas import validator

CFG = TriggerConfig()
NOW = 10_000.0
ANN = ("email", "ann@acme-corp.co.uk")
ANN_COOKIE = ("anonymous_id", "ck-ann")
BOB = ("email", "bob@acme-corp.co.uk")


def cart_event(ts: float, cart_id: str, *idents: tuple[str, str]) -> NormalizedEvent:
    cart = {"cart_id": cart_id, "items": [{"sku": "A", "qty": 1, "price": 10.0}]}
    return ev("web", "cart_add", ts, [*idents], payload={"cart": cart})


def with_due_cart(state: ProfileState, cart_id: str = "cart-1") -> None:
    """An open cart past its window (and an email to send the reminder to)."""
    event = cart_event(100.0, cart_id, ANN)
    file_event(state, ANN, event, [ANN], NOW - 100, 60.0)


def reminders(state: ProfileState) -> tuple[list[Any], list[Suppressed]]:
    suppressed: list[Suppressed] = []
    return due(state, NOW, CFG, suppressed), suppressed


def test_an_objection_stops_actions_even_with_marketing_consent() -> None:
    state = new_state("p1", 0.0)
    apply_consent(state, {"marketing": True}, 50.0, "preference_centre")
    set_objection(state, True, 60.0, "obj-1", "letter")
    apply_consent(state, {"marketing": True}, 70.0, "preference_centre")  # later grant
    with_due_cart(state)
    actions, suppressed = reminders(state)
    assert actions == []
    assert [s.reason for s in suppressed] == [OBJECTED]


def test_withdrawing_the_objection_lets_actions_fire_again() -> None:
    state = new_state("p1", 0.0)
    apply_consent(state, {"marketing": True}, 50.0, "preference_centre")
    set_objection(state, True, 60.0, "obj-1", "letter")
    set_objection(state, False, 80.0, "obj-2", "call")
    assert not objected(state)
    with_due_cart(state)
    actions, _ = reminders(state)
    assert [a.type for a in actions] == ["abandoned_cart"]


def test_the_later_statement_wins_and_a_tie_goes_to_the_objection() -> None:
    state = new_state("p1", 0.0)
    set_objection(state, True, 60.0, "obj-1", "letter")
    set_objection(state, False, 50.0, "late-but-older", "call")  # older: ignored
    assert objected(state)
    set_objection(state, False, 60.0, "same-instant", "call")
    assert objected(state)


def test_a_merge_keeps_an_active_objection_whichever_side_survives() -> None:
    objecting = new_state("p1", 0.0)
    set_objection(objecting, True, 60.0, "obj-1", "letter")
    withdrawn = new_state("p2", 0.0)
    set_objection(withdrawn, True, 10.0, "obj-0", "letter")
    set_objection(withdrawn, False, 90.0, "obj-9", "call")
    for survivor, other in ((objecting, withdrawn), (withdrawn, objecting)):
        s = ProfileState.from_dict(survivor.to_dict())
        absorb(s, ProfileState.from_dict(other.to_dict()))
        assert objected(s) and s.objection is not None
        assert s.objection["command_id"] == "obj-1"
    fresh = new_state("p3", 0.0)
    absorb(fresh, objecting)
    assert objected(fresh)


def test_a_split_gives_the_objection_to_every_part() -> None:
    state = new_state("p1", 0.0)
    file_event(state, ANN, ev("web", "login", 10.0, [ANN, ANN_COOKIE]), [ANN, ANN_COOKIE], 0, 60)
    file_event(state, BOB, ev("web", "login", 20.0, [BOB]), [BOB], 0, 60)
    set_objection(state, True, 30.0, "obj-1", "letter")
    parts = {"p1": [ident_key(ANN), ident_key(ANN_COOKIE)], "p2": [ident_key(BOB)]}
    kept, adoptions = split_state(state, parts, [], seq=1)
    assert kept is not None and objected(kept)
    [adoption] = adoptions
    again = type(adoption).from_dict(adoption.to_dict())  # as it travels
    part, _ = adopt(None, again)
    assert objected(part)


def test_a_consent_command_is_filed_under_its_identifier_and_follows_it_on_a_split() -> None:
    state = new_state("p1", 0.0)
    file_event(state, ANN, ev("web", "login", 10.0, [ANN]), [ANN], 0, 60)
    file_event(state, BOB, ev("web", "login", 20.0, [BOB]), [BOB], 0, 60)
    file_consent(state, ident_key(BOB), {"marketing": True, "profiling": False}, 30.0, "call")
    assert state.consent["marketing"] == {"granted": True, "ts": 30.0, "source": "call"}
    parts = {"p1": [ident_key(ANN)], "p2": [ident_key(BOB)]}
    kept, [adoption] = split_state(state, parts, [], seq=1)
    assert kept is not None and "marketing" not in kept.consent
    bob, _ = adopt(None, adoption)
    assert bob.consent["marketing"]["granted"] is True
    assert bob.consent["profiling"]["granted"] is False


def test_a_consent_command_for_a_new_profile_lists_its_identifier() -> None:
    state = new_state("p1", 30.0)
    file_consent(state, ident_key(ANN), {"marketing": False}, 30.0, "preference_centre")
    assert state.identifiers == {"email": [ANN[1]]}
    # An older grant from an event arriving later loses to the command's denial.
    file_event(
        state, ANN, ev("email", "subscribe", 20.0, [ANN], consent={"marketing": True}), [ANN], 0, 60
    )
    assert state.consent["marketing"]["granted"] is False


def test_the_objection_survives_serialisation_and_is_in_the_snapshot() -> None:
    state = new_state("p1", 0.0)
    assert "objection" not in state.to_dict() and "objection" not in snapshot(state)
    set_objection(state, True, 60.0, "obj-1", "letter")
    again = ProfileState.from_dict(state.to_dict())
    assert again.objection == state.objection
    assert ProfileState.from_dict(state.to_dict(copy=False), False).objection == state.objection
    snap = snapshot(state)
    assert snap["objection"] == {
        "active": True,
        "ts": 60.0,
        "command_id": "obj-1",
        "source": "letter",
    }
    validator("profiles.v1")(snap)
