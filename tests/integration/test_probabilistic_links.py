"""Probabilistic matching on the broker: a withheld-number caller is recognised from what
they say, a doubtful one goes to ``identity.review.v1``, and a steward's ``link`` joins them.

The worker runs with ``SCV_MATCHING`` on and the shipped demo model.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pipeline import Pipeline, now_iso, uid

from scv.runner import read_topic
from scv.steward import build_command, send_command

pytestmark = pytest.mark.integration

WORKER_SETTINGS = {"matching": True}


def order(email: str, first: str, last: str, postcode: str) -> dict[str, Any]:
    return {
        "event_id": uid("tx"),
        "timestamp": now_iso(),
        "type": "order",
        "order_id": uid("o"),
        "items": [{"sku": "sku-1", "qty": 1, "price": 20.0}],
        "total": 20.0,
        "email": email,
        "first_name": first,
        "last_name": last,
        "birth_date": "1984-03-17",
        "address": {"street": "12 High Street", "city": "Leeds", "postcode": postcode},
    }


def withheld_call(customer: str, first: str, last: str, **stated: Any) -> dict[str, Any]:
    """A call without a number: the CRM reference and what the caller says."""
    return {
        "event_id": uid("cc"),
        "timestamp": now_iso(),
        "type": "call",
        "customer_id": customer,
        "first_name": first,
        "last_name": last,
        **stated,
    }


def test_a_caller_who_withholds_the_number_is_recognised_by_name_birth_date_and_postcode(
    pipeline: Pipeline,
) -> None:
    email = f"{uid('ann')}@fastmail.com"
    pipeline.send("transactions", order(email, "Annabel", "Featherstone", "LS4 2AB"))
    ann = pipeline.wait_for(lambda: pipeline.profile_with("email", email))

    crm = uid("crm")
    call = withheld_call(crm, "ANNABEL", "Featherstone", birth_date="1984-03-17", postcode="ls42ab")
    pipeline.send("callcenter", call)
    joined = pipeline.wait_for(lambda: pipeline.profile_with("customer_id", crm))
    assert joined["profile_id"] == ann["profile_id"]
    assert email in joined["identifiers"]["email"]

    status, body = pipeline.get(f"/profiles/{ann['profile_id']}/explain")
    assert status == 200
    steps = [
        step
        for ident in orjson.loads(body)["identifiers"]
        if ident["identifier"] == f"customer_id:{crm}"
        for step in ident["path"]
    ]
    assert [s["rule"] for s in steps] == ["probabilistic"]
    assert steps[0]["event_id"] == call["event_id"] and steps[0]["score"] > 0


def test_a_doubtful_caller_goes_to_review_and_a_steward_link_joins_them(
    pipeline: Pipeline,
) -> None:
    email = f"{uid('rosa')}@fastmail.com"
    pipeline.send("transactions", order(email, "Rosalind", "Quenneville", "BD7 1DP"))
    rosa = pipeline.wait_for(lambda: pipeline.profile_with("email", email))

    # Same name and town, nothing else: possible, not sure.
    crm = uid("crm")
    call = withheld_call(crm, "Rosalind", "Quenneville", address={"city": "Leeds"})
    pipeline.send("callcenter", call)
    caller = pipeline.wait_for(lambda: pipeline.profile_with("customer_id", crm))
    assert caller["profile_id"] != rosa["profile_id"]

    def review() -> dict[str, Any] | None:
        for rec in read_topic(pipeline.settings, pipeline.topics.review):
            request = orjson.loads(rec.value or b"{}")
            if request["event_id"] == call["event_id"]:
                return dict(request)
        return None

    request = pipeline.wait_for(review)
    assert request["profile_id"] == caller["profile_id"]
    assert request["candidate"] == rosa["profile_id"]
    assert request["candidate_identifier"] == f"email:{email}"
    assert request["lower"] <= request["score"] < request["upper"]
    assert request["weights"]["surname"] > 0 and request["weights"]["suburb"] > 0

    send_command(
        pipeline.settings,
        build_command(
            "link",
            [request["candidate_identifier"]],
            profile_id=request["profile_id"],
            reason="same person: confirmed on the phone",
            requested_by="steward@test",
        ),
    )

    def linked() -> dict[str, Any] | None:
        found = pipeline.profile_with("customer_id", crm)
        return found if found and email in found["identifiers"].get("email", []) else None

    merged = pipeline.wait_for(linked)
    assert merged["profile_id"] in (rosa["profile_id"], caller["profile_id"])
    reasons = [
        m["reason"]
        for m in pipeline.merges()
        if m["kind"] == "merge"
        and {m["survivor"], m["absorbed"]} == {rosa["profile_id"], caller["profile_id"]}
    ]
    assert [r["rule"] for r in reasons] == ["review"]
