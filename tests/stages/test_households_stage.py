"""Households through the real stages (normalise → resolve → profiles), without a broker:
``household_id`` on each member's ``profiles.v1`` snapshot, the household's own snapshot on
``households.v1``, events that name only the household, and erasing one member."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from stagekit import Outbox
from test_privacy_stage import MakePipeline, Run, command

from scv.schemas import validator

FAMILY = "familie.brandt@web.de"
LANDLINE = "+49 30 4418273"
ADDRESS = {"street": "Schillerstraße 18", "city": "Berlin", "postcode": "10625", "country": "DE"}


def order(eid: str, minute: int, cid: str, first: str, **fields: Any) -> bytes:
    doc = {
        "event_id": eid,
        "timestamp": f"2026-05-01T09:{minute:02}:00Z",
        "type": "order",
        "order_id": f"O-{eid}",
        "items": [{"sku": "SKU-1", "name": "Kettle", "qty": 1, "price": 29.99}],
        "total": 29.99,
        "currency": "EUR",
        "customer_id": cid,
        "first_name": first,
        "last_name": "Brandt",
        **fields,
    }
    return orjson.dumps(doc)


def mail(eid: str, minute: int) -> bytes:
    doc = {
        "event_id": eid,
        "timestamp": f"2026-05-01T10:{minute:02}:00Z",
        "type": "sent",
        "email": FAMILY,
        "campaign_id": "cmp-1",
    }
    return orjson.dumps(doc)


@pytest.fixture
def run(make_pipeline: MakePipeline, sent: Outbox) -> Run:
    return Run(make_pipeline(default_region="DE"), sent)


def households(run: Run) -> dict[bytes, dict[str, Any] | None]:
    latest: dict[bytes, dict[str, Any] | None] = {}
    for m in run.sent.to(run.topics.households):
        assert m.key is not None
        latest[m.key] = m.json() if m.value is not None else None
        if m.value is not None:
            validator("households.v1")(m.json())
    return latest


def test_a_family_is_one_household_of_two_people(run: Run) -> None:
    t = run.topics
    run.feed(t.raw("transactions"), order("o1", 1, "C-ANNA", "Anna", email=FAMILY))
    run.feed(t.raw("transactions"), order("o2", 2, "C-JONAS", "Jonas", email=FAMILY))
    anna, jonas = run.owner("customer_id:C-ANNA"), run.owner("customer_id:C-JONAS")
    assert anna and jonas and anna != jonas  # two people
    [(hid, home)] = [(k, v) for k, v in households(run).items() if v is not None]
    assert home is not None and sorted(home["members"]) == sorted([anna, jonas])
    assert home["identifiers"] == {"email": [FAMILY]}
    for pid in (anna, jonas):
        profile = run.profile(pid)
        assert profile is not None and profile["household_id"] == hid.decode()
        validator("profiles.v1")(profile)
    # A mailing to the family inbox is the household's, not a guessed member's.
    run.feed(t.raw("email"), mail("m1", 1))
    home = households(run)[hid]
    assert home is not None and home["event_count"] == 1
    for pid in (anna, jonas):
        profile = run.profile(pid)
        assert profile is not None and profile["channels"].get("email") is None


def test_one_surname_at_one_address_is_a_household(run: Run) -> None:
    t = run.topics
    run.feed(t.raw("transactions"), order("o1", 1, "C-ANNA", "Anna", address=ADDRESS))
    run.feed(t.raw("transactions"), order("o2", 2, "C-JONAS", "Jonas", address=ADDRESS))
    live = {k: v for k, v in households(run).items() if v is not None}
    assert len(live) == 1
    [home] = live.values()
    assert home is not None and len(home["members"]) == 2
    assert home["address"]["postcode"] == "10625" and home["identifiers"] == {}


def test_erasing_one_member_leaves_the_others_and_the_household(run: Run) -> None:
    t = run.topics
    run.feed(t.raw("transactions"), order("o1", 1, "C-ANNA", "Anna", phone=LANDLINE))
    run.feed(t.raw("transactions"), order("o2", 2, "C-JONAS", "Jonas", phone=LANDLINE))
    run.feed(t.raw("transactions"), order("o3", 3, "C-MIA", "Mia", phone=LANDLINE))
    jonas = run.owner("customer_id:C-JONAS")
    [hid] = [k for k, v in households(run).items() if v is not None]
    by_cid = {"type": "customer_id", "value": "C-ANNA"}
    run.feed(t.commands, command("erase-anna", "erase", by_cid))
    home = households(run)[hid]
    assert home is not None and len(home["members"]) == 2 and jonas in home["members"]
    assert home["identifiers"] == {"phone": ["+49304418273"]}
    # Nothing of Anna's stays in the household's keys.
    assert all(b"C-ANNA" not in k for k in run.pipeline.owners[0].keys())
    # Erasing the others too: the household goes, its landline with it.
    for cid in ("C-JONAS", "C-MIA"):
        subject = {"type": "customer_id", "value": cid}
        run.feed(t.commands, command(f"erase-{cid}", "erase", subject))
    assert households(run)[hid] is None
    assert all(b"4418273" not in k for k in run.pipeline.owners[0].keys())
