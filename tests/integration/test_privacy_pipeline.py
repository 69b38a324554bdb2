"""Consent gating, objection and erasure on a real worker and broker, including a replay of
the erased person's raw events before and after a restart with an empty state directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from pipeline import Pipeline, now_iso, uid, web_event

from scv.brokers import free_port
from scv.runner import WorkerProcess, read_topic
from scv.settings import Settings
from scv.steward import build_command, send_command
from scv.topics import create_topics

pytestmark = pytest.mark.integration


def web(cookie: str, etype: str = "page_view", **fields: Any) -> dict[str, Any]:
    return web_event(etype, cookie, **fields)


def cart(cookie: str, cart_id: str, **fields: Any) -> dict[str, Any]:
    items = [{"sku": "SKU-1", "name": "Kettle", "qty": 1, "price": 29.99}]
    body = {"cart_id": cart_id, "items": items, "currency": "GBP"}
    return web(cookie, "cart_add", cart=body, **fields)


def email_of(prefix: str) -> str:
    # Not @example.*: the default governance rules block those (placeholder addresses).
    return f"{uid(prefix)}@acme-corp.co.uk"


def abandoned(pipeline: Pipeline, email: str, events: int) -> dict[str, Any]:
    """The profile owning ``email`` once it counted ``events`` and its carts fell due."""

    def probe() -> dict[str, Any] | None:
        found = pipeline.profile_with("email", email)
        ok = found is not None and found["event_count"] == events and not found["open_carts"]
        return found if ok else None

    return pipeline.wait_for(probe)


def command(pipeline: Pipeline, kind: str, email: str, **fields: Any) -> None:
    send_command(pipeline.settings, build_command(kind, [f"email:{email}"], **fields))


def test_no_marketing_consent_no_action_then_a_granted_consent_command_fires(
    pipeline: Pipeline,
) -> None:
    email, cookie = email_of("gate"), uid("ck")
    pipeline.send("web", cart(cookie, uid("cart"), email=email))
    pid = abandoned(pipeline, email, 1)["profile_id"]
    assert pipeline.actions(pid) == []  # missing consent means no

    command(pipeline, "consent", email, consent={"marketing": True}, source="preference_centre")
    pipeline.wait_for(
        lambda: (
            True
            if ((p := pipeline.profile_with("email", email)) and "marketing" in p["consent"])
            else None
        )
    )
    second = uid("cart")
    pipeline.send("web", cart(cookie, second, email=email))
    action = pipeline.wait_for(lambda: next(iter(pipeline.actions(pid)), None))
    assert (action["type"], action["payload"]["cart_id"]) == ("abandoned_cart", second)


def test_an_objection_stops_later_actions_even_after_a_new_grant(pipeline: Pipeline) -> None:
    email, cookie = email_of("objector"), uid("ck")
    pipeline.send("web", web(cookie, "login", email=email, consent={"marketing": True}))
    command(pipeline, "object", email, source="letter")
    command(pipeline, "consent", email, consent={"marketing": True})  # after the objection
    pipeline.wait_for(
        lambda: (
            True
            if (
                (p := pipeline.profile_with("email", email))
                and (p.get("objection") or {}).get("active")
                and p["consent"]["marketing"]["source"] == "command"
            )
            else None
        )
    )
    pipeline.send("web", cart(cookie, uid("cart"), email=email))
    pid = abandoned(pipeline, email, 2)["profile_id"]
    assert pipeline.actions(pid) == []
    assert 'scv_actions_suppressed_total{reason="objected",type="abandoned_cart"}' in (
        pipeline.worker.metrics()
    )


def _worker(settings: Settings, state: Path, log: Path) -> tuple[WorkerProcess, Pipeline]:
    worker = WorkerProcess(
        settings.model_copy(update={"data_dir": state, "web_port": free_port()}), log
    ).start()
    worker.wait_ready(90)
    return worker, Pipeline(worker.settings, worker)


def test_erasure_and_a_replay_before_and_after_a_restart(
    settings: Settings, tmp_path: Path
) -> None:
    create_topics(settings)
    email, cookie, customer = email_of("alice"), uid("ck"), uid("C")
    values = [email, cookie, customer]
    story = [
        ("web", web(cookie)),
        (
            "transactions",
            {
                "event_id": uid("ord"),
                "timestamp": now_iso(),
                "type": "order",
                "order_id": uid("o"),
                "customer_id": customer,
                "email": email,
                "items": [{"sku": "SKU-1", "qty": 1, "price": 29.99}],
                "total": 29.99,
                "currency": "GBP",
            },
        ),
        ("web", web(cookie, "login", email=email, customer_id=customer)),
        ("web", cart(cookie, uid("cart"))),
    ]
    new_device = web(uid("ck-new"), "login", email=email)

    worker, pipeline = _worker(settings, tmp_path / "a", tmp_path / "a.log")
    try:
        for source, event in story[:2]:  # two profiles first, then the login merges them
            pipeline.send(source, event)
        pipeline.wait_for(lambda: pipeline.profile_with("anonymous_id", cookie))
        pipeline.wait_for(lambda: pipeline.profile_with("customer_id", customer))
        for source, event in story[2:]:
            pipeline.send(source, event)
        profile = pipeline.wait_for(
            lambda: (
                p
                if (p := pipeline.profile_with("email", email)) and p["event_count"] == 4
                else None
            )
        )
        pid, merged = profile["profile_id"], profile["merged_from"]
        assert merged, "the login merged the cookie's profile into hers"
        assert pipeline.get(f"/profiles/{pid}/explain")[0] == 200

        erase = build_command("erase", [f"email:{email}"], requested_by="dpo")
        send_command(pipeline.settings, erase)
        pipeline.wait_for(lambda: True if pid not in pipeline.profiles() else None)
        assert pipeline.get(f"/profiles/{pid}/explain")[0] == 404
        assert pipeline.profiles_with("anonymous_id", cookie) == []
        assert pipeline.profiles_with("customer_id", customer) == []
        pipeline.drain()
        audit = _audit(pipeline, values)
        erased = [a for a in audit if a["command_id"] == erase["command_id"]]
        assert {(a["stage"], a.get("profile_id")) for a in erased} == {
            ("resolve", None),
            ("profiles", pid),
            *(("profiles", m) for m in merged),
        }

        # The same raw events again, and a new device with her email: nobody comes back.
        for source, event in [*story, ("web", new_device)]:
            pipeline.send(source, event)
        pipeline.drain()
        _assert_gone(pipeline, values, new_device)
    finally:
        pipeline.close()
        worker.stop()

    # A new worker with an empty state directory: the list comes back from its changelog.
    worker, pipeline = _worker(settings, tmp_path / "b", tmp_path / "b.log")
    try:
        for source, event in story:
            pipeline.send(source, event)
        pipeline.drain()
        _assert_gone(pipeline, values, new_device)
        dropped = [a for a in _audit(pipeline, values) if a["kind"] == "suppressed_event"]
        ids = [a["event_id"] for a in dropped]
        for _, event in story:
            assert ids.count(event["event_id"]) == 2  # once per worker
        assert 'scv_suppressed_input_total{kind="event"} 4.0' in worker.metrics()
    finally:
        pipeline.close()
        worker.stop()


def _audit(pipeline: Pipeline, values: list[str]) -> list[dict[str, Any]]:
    """Every audit record, after checking that none names the person."""
    records = read_topic(pipeline.settings, pipeline.topics.audit)
    for record in records:
        for value in values:
            assert value.encode() not in (record.value or b"")
    return [orjson.loads(r.value or b"") for r in records]


def _assert_gone(pipeline: Pipeline, values: list[str], new_device: dict[str, Any]) -> None:
    email, cookie, customer = values
    assert pipeline.profiles_with("email", email) == []
    assert pipeline.profiles_with("anonymous_id", cookie) == []
    assert pipeline.profiles_with("customer_id", customer) == []
    assert pipeline.profiles_with("anonymous_id", new_device["anonymous_id"]) == []
    for topic in [*pipeline.topics.raw_topics, pipeline.topics.identity_events]:
        assert pipeline.dlq(topic) == []
