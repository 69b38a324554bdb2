"""Wire forms of the value types: hand-written ``to_dict`` gives what ``dataclasses.asdict``
gave, byte for byte once encoded, and an event's bytes can be embedded instead of re-encoded."""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from typing import Any

import orjson
import pytest

from scv.connectors.demo import generate
from scv.domain.model import Action, LinkReason, NormalizedEvent
from scv.domain.normalize import InvalidEvent, normalize


def _legacy(event: NormalizedEvent) -> dict[str, Any]:
    """``NormalizedEvent.to_dict`` as it was (``asdict``): the reference for the wire form."""
    d = asdict(event)
    d["identifiers"] = [list(i) for i in event.identifiers]
    return d


@pytest.fixture(scope="module")
def demo_events() -> list[NormalizedEvent]:
    out = []
    for raw in generate(400, 7, start_ts=1_700_000_000.0):
        with contextlib.suppress(InvalidEvent):
            out.append(normalize(raw.source, raw.value))
    assert len(out) > 350
    return out


def test_event_to_dict_matches_asdict_byte_for_byte(demo_events: list[NormalizedEvent]) -> None:
    for event in demo_events:
        d = event.to_dict()
        assert list(d) == list(_legacy(event))
        assert orjson.dumps(d) == orjson.dumps(_legacy(event))


def test_event_round_trip_is_canonical(demo_events: list[NormalizedEvent]) -> None:
    """What the resolver relies on to forward ``identity.events.v1`` bytes unchanged: decoding
    and encoding again gives the same bytes, so an embedded Fragment equals re-encoding."""
    for event in demo_events:
        wire = orjson.dumps(event.to_dict())
        again = NormalizedEvent.from_dict(orjson.loads(wire))
        assert orjson.dumps(again.to_dict()) == wire
        body = {"kind": "event", "profile_id": "p1"}
        embedded = orjson.dumps(body | {"event": orjson.Fragment(wire), "anchor": None})
        encoded = orjson.dumps(body | {"event": again.to_dict(), "anchor": None})
        assert embedded == encoded


def test_event_to_dict_identifiers_are_fresh_lists() -> None:
    event = NormalizedEvent("e1", "web", "page_view", 1.5, [("email", "a@b.co")])
    d = event.to_dict()
    d["identifiers"].append(["phone", "+1"])
    assert event.identifiers == [("email", "a@b.co")]


@pytest.mark.parametrize("score", [None, 12.5])
def test_link_reason_to_dict_matches_asdict(score: float | None) -> None:
    reason = LinkReason("email", ["email:a@b.co"], "e1", 10.0, score)
    d = reason.to_dict()
    assert d == asdict(reason) and list(d) == list(asdict(reason))
    d["identifiers"].append("x")
    assert reason.identifiers == ["email:a@b.co"]


def test_action_to_dict_matches_asdict_and_copies_payload() -> None:
    payload = {"cart_id": "c1", "items": [{"sku": "A", "qty": 1}], "currency": None}
    action = Action("a1", "abandoned_cart", "p1", "email", payload, "e1", 5.0, 6.0)
    d = action.to_dict()
    assert orjson.dumps(d) == orjson.dumps(asdict(action))
    d["payload"]["items"][0]["qty"] = 9
    assert action.payload["items"][0]["qty"] == 1
