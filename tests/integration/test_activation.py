"""The activation layer's Faust worker (``scv activation``) next to the core, on the test broker.

Events go in on the raw topics as a source system sends them; the core publishes profiles;
the activation worker, a separate process, reads ``profiles.v1`` and writes the programmes'
actions to ``actions.v1``, where these tests read them as an activation service would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pipeline import Pipeline, http_get, now_iso, uid
from pipeline import web_event as web

from scv.brokers import free_port
from scv.domain.model import action_id
from scv.runner import ActivationProcess, read_topic

pytestmark = pytest.mark.integration

CONSENT = {"marketing": True}


@pytest.fixture(scope="module")
def activation(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    settings = pipeline.settings.model_copy(update={"activation_web_port": free_port()})
    log = Path(tmp_path_factory.mktemp("activation")) / "activation.log"
    worker = ActivationProcess(settings, log).start()
    try:
        worker.wait_ready(120)
        yield worker
    finally:
        worker.stop()


def order(email: str, total: float) -> dict[str, Any]:
    return {
        "event_id": uid("tx"),
        "timestamp": now_iso(),
        "type": "order",
        "order_id": uid("O"),
        "email": email,
        "items": [{"sku": "SKU-1", "name": "Kettle", "qty": 1, "price": total}],
        "total": total,
        "currency": "GBP",
    }


def of_type(pipeline: Pipeline, kind: str, subject: str) -> list[dict[str, Any]]:
    return [
        a
        for a in pipeline.actions()
        if a["type"] == kind and a["payload"].get("subject") == subject
    ]


def test_a_new_account_is_welcomed_once_even_when_a_merge_registers_a_profile_again(
    pipeline: Pipeline, activation: ActivationProcess
) -> None:
    cid, address = uid("C"), f"{uid('ann')}@acme-corp.co.uk"
    phone_cookie, laptop_cookie = uid("ck"), uid("ck")
    pipeline.send("web", web("page_view", laptop_cookie))  # an anonymous profile first
    pipeline.send(
        "web", web("signup", phone_cookie, customer_id=cid, email=address, consent=CONSENT)
    )
    welcome = pipeline.wait_for(lambda: of_type(pipeline, "welcome", cid) or None, timeout=60)
    assert [a["channel"] for a in welcome] == ["email"]
    assert welcome[0]["action_id"] == action_id("welcome", cid)
    # She logs in on the laptop: the anonymous profile and hers merge. Whichever survives,
    # "registered" may read as new on it; the welcome's id is the customer id's, sent once.
    pipeline.send("web", web("login", laptop_cookie, customer_id=cid))

    def merged() -> dict[str, Any] | None:
        p = pipeline.profile_with("customer_id", cid)
        return p if p and laptop_cookie in p["identifiers"].get("anonymous_id", []) else None

    pipeline.wait_for(merged)
    pipeline.drain()
    time.sleep(3.0)  # the activation worker's share of the drain: it is not in the core's group
    assert len(of_type(pipeline, "welcome", cid)) == 1


def test_a_purchase_worth_following_up_gets_one_cross_sell_and_a_small_one_none(
    pipeline: Pipeline, activation: ActivationProcess
) -> None:
    address, cookie = f"{uid('bo')}@acme-corp.co.uk", uid("ck")
    pipeline.send("web", web("signup", cookie, email=address, consent=CONSENT))
    pipeline.wait_for(lambda: pipeline.profile_with("email", address))
    small = order(address, 9.5)
    pipeline.send("transactions", small)
    below = b'scv_activation_skipped_total{programme="cross_sell",reason="condition"}'
    pipeline.wait_for(lambda: below in activation_get(activation, "/metrics")[1] or None)
    big = order(address, 45.0)
    pipeline.send("transactions", big)
    sent = pipeline.wait_for(
        lambda: of_type(pipeline, "cross_sell", big["order_id"]) or None, timeout=60
    )
    assert [a["channel"] for a in sent] == ["email"]
    assert not of_type(pipeline, "cross_sell", small["order_id"])  # spent 9.50: below 20
    # the profile's trail says why: one order below the condition, one sent
    status, body = activation_get(activation, f"/profiles/{sent[0]['profile_id']}/programmes")
    assert status == 200
    trail = [(d["programme"], d["outcome"]) for d in orjson.loads(body)["decisions"]]
    assert ("cross_sell", "condition") in trail and ("cross_sell", "sent:email") in trail
    assert activation_get(activation, "/profiles/p_nobody/programmes")[0] in (404, 421)


def members(pipeline: Pipeline, audience: str) -> set[str]:
    """The audience as a tool syncing from audiences.v1 holds it: each profile's last
    change (the topic is keyed by profile id, so per profile it is in order)."""
    last: dict[str, str] = {}
    for record in read_topic(pipeline.settings, pipeline.topics.audiences):
        change = orjson.loads(record.value or b"{}")
        if change["audience"] == audience:
            last[change["profile_id"]] = change["change"]
    return {pid for pid, change in last.items() if change == "entered"}


def test_an_audience_follows_the_person_through_a_merge(
    pipeline: Pipeline, activation: ActivationProcess
) -> None:
    """A phone order of 640 puts a profile in ``high_value``; the person's next order names
    the phone and their email, so their two profiles merge. Synced from audiences.v1, the
    audience then holds the survivor alone: the merged-away id left it."""
    address, cookie, typed = f"{uid('cy')}@acme-corp.co.uk", uid("ck"), "07700 900417"
    pipeline.send("web", web("signup", cookie, email=address, consent=CONSENT))
    pipeline.wait_for(lambda: pipeline.profile_with("email", address))
    big = order(address, 640.0)
    del big["email"]
    pipeline.send("transactions", big | {"phone": typed})
    spender = pipeline.wait_for(lambda: pipeline.profile_with("phone", "+447700900417"))
    assert address not in spender["identifiers"].get("email", [])  # two profiles so far
    pipeline.wait_for(lambda: spender["profile_id"] in members(pipeline, "high_value") or None)

    pipeline.send("transactions", order(address, 12.0) | {"phone": typed})

    def merged() -> dict[str, Any] | None:
        p = pipeline.profile_with("email", address)
        return p if p and p["orders"]["count"] == 2 else None

    survivor = pipeline.wait_for(merged)
    ids = {survivor["profile_id"], *survivor["merged_from"]}
    assert spender["profile_id"] in ids
    pipeline.wait_for(
        lambda: members(pipeline, "high_value") & ids == {survivor["profile_id"]} or None
    )


def test_a_critical_ticket_holds_back_marketing_until_it_is_solved(
    pipeline: Pipeline, activation: ActivationProcess
) -> None:
    address, ticket = f"{uid('dee')}@acme-corp.co.uk", uid("T")

    def ticket_event(status: str) -> dict[str, Any]:
        body = {"ticket_id": ticket, "status": status, "priority": "critical"}
        return {"event_id": uid("cc"), "timestamp": now_iso(), "type": "ticket",
                "email": address, "ticket": body}  # fmt: skip

    pipeline.send("web", web("signup", uid("ck"), email=address, consent=CONSENT))
    pipeline.send("callcenter", ticket_event("opened"))

    def tickets() -> list[Any] | None:
        profile = pipeline.profile_with("email", address)
        return None if profile is None else profile["open_tickets"]

    pipeline.wait_for(tickets)
    held = order(address, 80.0)
    pipeline.send("transactions", held)
    excluded = b'scv_activation_skipped_total{programme="cross_sell",reason="excluded"}'
    pipeline.wait_for(lambda: excluded in activation_get(activation, "/metrics")[1] or None)

    assert not of_type(pipeline, "cross_sell", held["order_id"])
    # solved: the cross-sell it held back goes out with that change
    pipeline.send("callcenter", ticket_event("solved"))
    pipeline.wait_for(lambda: of_type(pipeline, "cross_sell", held["order_id"]) or None)


def test_no_consent_no_message(pipeline: Pipeline, activation: ActivationProcess) -> None:
    cid = uid("C")
    pipeline.send("web", web("signup", uid("ck"), customer_id=cid, email=f"{cid}@acme-corp.co.uk"))
    pipeline.wait_for(lambda: pipeline.profile_with("customer_id", cid))
    pipeline.drain()
    time.sleep(3.0)
    assert not of_type(pipeline, "welcome", cid)


def test_the_activation_worker_serves_probes_and_metrics_but_no_tables(
    activation: ActivationProcess,
) -> None:
    assert activation_get(activation, "/livez")[0] == 200
    assert activation_get(activation, "/readyz")[0] == 200
    assert activation_get(activation, "/table/activation-memory")[0] == 404


def activation_get(worker: ActivationProcess, path: str) -> tuple[int, bytes]:
    return http_get(worker.url + path)
