"""The whole pipeline on the embedded broker: raw events in, profiles, merges and actions out.

One ``scv worker`` subprocess serves the module (see ``conftest.py``); every test invents
its own identifiers, so their outcomes cannot mix. Phones use Ofcom's drama range and emails
made-up companies: nothing here is real personal data.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import orjson
import pytest
from conftest import CART_WINDOW_S
from pipeline import Pipeline, now_iso, uid
from pipeline import web_event as web
from prometheus_client.parser import text_string_to_metric_families

from scv.schemas import validator

pytestmark = pytest.mark.integration

_phones = itertools.count(100)
#: Every email and phone a test sent: the log test checks none of them reached the log.
SENT_PII: list[str] = []


def email() -> str:
    """A mixed-case address; the pipeline must store it lower-cased."""
    address = f"Jane.{uid('d')}@Acme-Corp.co.uk"
    SENT_PII.append(address.lower())
    return address


def phone() -> tuple[str, str]:
    """(as a person types it, E.164) for a fresh number in 07700 900xxx."""
    n = next(_phones)
    SENT_PII.extend([f"+447700900{n}", f"7700900{n}", f"07700 900{n}"])
    return f"07700 900{n}", f"+447700900{n}"


def order(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": uid("tx"),
        "timestamp": now_iso(),
        "type": "order",
        "order_id": uid("O"),
        "items": [{"sku": "SKU-1", "name": "Kettle", "qty": 1, "price": 29.99}],
        "total": 29.99,
        "currency": "GBP",
        **fields,
    }


def call(phone_number: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": uid("cc"),
        "timestamp": now_iso(),
        "type": "call",
        "phone": phone_number,
        "agent_id": "agent-7",
        **fields,
    }


def cart(cart_id: str) -> dict[str, Any]:
    return {
        "cart_id": cart_id,
        "items": [{"sku": "SKU-2", "name": "Toaster", "qty": 2, "price": 15.5}],
        "currency": "GBP",
    }


def test_login_stitches_cookie_and_email(pipeline: Pipeline) -> None:
    cookie, address = uid("ck"), email()
    canonical = address.lower()
    sent = {"event_id": uid("em"), "timestamp": now_iso(), "type": "sent", "email": address}
    pipeline.send("email", {**sent, "campaign_id": "spring"})
    pipeline.send("web", web("page_view", cookie))
    by_email = pipeline.wait_for(lambda: pipeline.profile_with("email", canonical))
    by_cookie = pipeline.wait_for(lambda: pipeline.profile_with("anonymous_id", cookie))
    assert by_email["profile_id"] != by_cookie["profile_id"]  # strangers until the login

    login = web("login", cookie, email=address, customer_id=uid("C"))
    pipeline.send("web", login)

    def stitched() -> dict[str, Any] | None:
        p = pipeline.profile_with("anonymous_id", cookie)
        return p if p is not None and canonical in p["identifiers"].get("email", []) else None

    profile = pipeline.wait_for(stitched)
    pipeline.drain()
    profile = pipeline.profile_with("email", canonical)
    assert profile is not None
    assert profile["identifiers"]["anonymous_id"] == [cookie]
    assert profile["identifiers"]["customer_id"] == [login["customer_id"]]
    assert set(profile["channels"]) == {"web", "email"}
    assert profile["event_count"] == 3
    both = {by_email["profile_id"], by_cookie["profile_id"]}
    absorbed = (both - {profile["profile_id"]}).pop()
    assert absorbed not in pipeline.profiles()  # tombstoned on the compacted topic
    assert profile["merged_from"] == [absorbed]

    merges = [m for m in pipeline.merges() if m["absorbed"] == absorbed]
    assert len(merges) == 1
    merge = merges[0]
    validator("profiles.merges.v1")(merge)
    assert merge["survivor"] == profile["profile_id"]
    assert merge["reason"]["event_id"] == login["event_id"]
    assert {f"email:{canonical}", f"anonymous_id:{cookie}"} & set(merge["reason"]["identifiers"])
    validator("profiles.v1")(profile)


def test_transaction_links_by_email_then_phone(pipeline: Pipeline) -> None:
    cookie, address = uid("ck"), email()
    typed, e164 = phone()
    pipeline.send("web", web("signup", cookie, email=address))
    pipeline.wait_for(lambda: pipeline.profile_with("email", address.lower()))
    # The order brings a phone; the email (in another case) is what links it.
    pipeline.send("transactions", order(email=address.upper(), phone=typed, first_name="Jane"))
    pipeline.wait_for(lambda: pipeline.profile_with("phone", e164))
    # The caller gives only the phone, formatted differently again.
    pipeline.send("callcenter", call(f"+44 (0) 7700-900-{e164[-3:]}"))

    def heard_on_the_phone() -> dict[str, Any] | None:
        p = pipeline.profile_with("phone", e164)
        return p if p is not None and "callcenter" in p["channels"] else None

    pipeline.wait_for(heard_on_the_phone)
    pipeline.drain()
    profile = pipeline.profile_with("phone", e164)
    assert profile is not None
    assert profile["identifiers"]["email"] == [address.lower()]
    assert profile["identifiers"]["anonymous_id"] == [cookie]
    assert set(profile["channels"]) == {"web", "transactions", "callcenter"}
    assert profile["orders"]["count"] == 1
    assert profile["event_count"] == 3
    assert pipeline.profiles_with("email", address.lower()) == [profile]


def test_cancellation_then_anonymous_visit_fires_one_churn_save(pipeline: Pipeline) -> None:
    cookie, customer = uid("ck"), uid("C")
    typed, e164 = phone()
    pipeline.send("web", web("login", cookie, customer_id=customer))
    pipeline.wait_for(lambda: pipeline.profile_with("anonymous_id", cookie))
    cancel = call(
        typed,
        customer_id=customer,
        disposition={"code": "cancel_request", "notes": "moving to a competitor"},
        consent={"marketing": True},
    )
    pipeline.send("callcenter", cancel)

    def flagged() -> dict[str, Any] | None:
        p = pipeline.profile_with("customer_id", customer)
        return p if p is not None and p["churn_risk"] else None

    profile = pipeline.wait_for(flagged)
    assert pipeline.actions(profile["profile_id"]) == []  # a call alone offers nothing

    # Next visit: not logged in, only the cookie the login linked earlier.
    visit = web("page_view", cookie, page={"url": "https://shop.example/account"})
    pipeline.send("web", visit)
    actions = pipeline.wait_for(lambda: pipeline.actions(profile["profile_id"]) or None)
    pipeline.send("web", web("product_view", cookie))  # a second visit: no second offer
    pipeline.drain()

    actions = pipeline.actions(profile["profile_id"])
    assert [a["type"] for a in actions] == ["churn_save"]
    action = actions[0]
    validator("actions.v1")(action)
    assert action["trigger_event_id"] == visit["event_id"]
    assert action["payload"]["anonymous_id"] == cookie
    assert action["payload"]["call_event_id"] == cancel["event_id"]
    assert action["channel"] == "onsite"
    after = pipeline.profile_with("customer_id", customer)
    assert after is not None and after["churn_risk"] is None
    assert after["identifiers"]["phone"] == [e164]


def test_visit_that_overtakes_the_call_still_gets_one_churn_save(pipeline: Pipeline) -> None:
    """Raw topics are consumed in parallel: the later visit may be processed first."""
    cookie, customer = uid("ck"), uid("C")
    typed, _ = phone()
    pipeline.send("web", web("login", cookie, customer_id=customer))
    profile = pipeline.wait_for(lambda: pipeline.profile_with("anonymous_id", cookie))
    cancel = call(typed, customer_id=customer, consent={"marketing": True})
    cancel["disposition"] = {"code": "cancel_request"}
    visit = web("page_view", cookie, timestamp=now_iso(5))  # five seconds after the call
    pipeline.send("web", visit)
    pipeline.wait_for(
        lambda: (p := pipeline.profile_with("anonymous_id", cookie)) and p["event_count"] == 2
    )
    pipeline.send("callcenter", cancel)
    actions = pipeline.wait_for(lambda: pipeline.actions(profile["profile_id"]) or None)
    pipeline.drain()

    assert actions == pipeline.actions(profile["profile_id"])
    assert [a["type"] for a in actions] == ["churn_save"]
    assert actions[0]["trigger_event_id"] == visit["event_id"]
    assert actions[0]["payload"]["call_event_id"] == cancel["event_id"]


def test_abandoned_cart_fires_once_and_an_order_cancels_it(pipeline: Pipeline) -> None:
    consent = {"marketing": True}
    ck_a, ck_b, cart_a, cart_b = uid("ck"), uid("ck"), uid("cart"), uid("cart")
    email_a, email_b = email(), email()
    pipeline.send("web", web("signup", ck_a, email=email_a, consent=consent))
    pipeline.send("web", web("cart_add", ck_a, cart=cart(cart_a)))
    pipeline.send("web", web("signup", ck_b, email=email_b, consent=consent))
    pipeline.send("web", web("cart_add", ck_b, cart=cart(cart_b)))
    pipeline.send("transactions", order(email=email_b, cart_id=cart_b))
    sent_at = time.time()

    profile_a = pipeline.wait_for(lambda: pipeline.profile_with("email", email_a.lower()))
    fired = pipeline.wait_for(lambda: pipeline.actions(profile_a["profile_id"]) or None)
    # B's cart was due at the same moment; give its check time to run, then drain.
    time.sleep(max(0.0, sent_at + CART_WINDOW_S + 2.0 - time.time()))
    pipeline.drain()

    fired = pipeline.actions(profile_a["profile_id"])
    assert [a["type"] for a in fired] == ["abandoned_cart"]
    action = fired[0]
    validator("actions.v1")(action)
    assert action["payload"]["cart_id"] == cart_a
    assert action["payload"]["value"] == 31.0
    assert action["channel"] == "email"
    assert email_a.lower() not in orjson.dumps(action).decode()  # no address on actions.v1

    profile_b = pipeline.profile_with("email", email_b.lower())
    assert profile_b is not None
    assert profile_b["orders"]["count"] == 1
    assert profile_b["open_carts"] == []
    assert pipeline.actions(profile_b["profile_id"]) == []


def test_blocked_value_never_merges_two_people(pipeline: Pipeline) -> None:
    shop_phone = "020 7946 0000"  # the call centre's own number, blocked in the default rules
    one, two = email(), email()
    pipeline.send("transactions", order(email=one, phone=shop_phone, customer_id="null"))
    pipeline.send("transactions", order(email=two, phone=shop_phone, customer_id="null"))
    pipeline.send("callcenter", call("+44 20 7946 0000", first_name="Someone"))
    pipeline.wait_for(lambda: pipeline.profile_with("email", one.lower()))
    pipeline.wait_for(lambda: pipeline.profile_with("email", two.lower()))
    pipeline.drain()

    first = pipeline.profile_with("email", one.lower())
    second = pipeline.profile_with("email", two.lower())
    assert first is not None and second is not None
    assert first["profile_id"] != second["profile_id"]
    for profile in (first, second):
        assert set(profile["identifiers"]) == {"email"}  # neither the phone nor "null"
        assert profile["merged_from"] == []
    ids = {first["profile_id"], second["profile_id"]}
    assert not [m for m in pipeline.merges() if {m["survivor"], m["absorbed"]} & ids]
    assert pipeline.profiles_with("phone", "+442079460000") == []


def test_malformed_events_land_in_the_dlq_and_processing_goes_on(pipeline: Pipeline) -> None:
    t = pipeline.topics
    key = uid("bad").encode()
    pipeline.send("web", b'{"event_id": "broken', key=key)
    no_address = {"event_id": uid("em"), "timestamp": now_iso(), "type": "open", "campaign_id": "x"}
    pipeline.send("email", no_address, key=key)
    pipeline.send("transactions", b"[1, 2, 3]", key=key)
    cookie = uid("ck")
    pipeline.send("web", web("page_view", cookie))
    pipeline.wait_for(lambda: pipeline.profile_with("anonymous_id", cookie))
    pipeline.drain()

    def rejected(source: str) -> dict[str, bytes]:
        records = [r for r in pipeline.dlq(t.raw(source)) if r.key == key]
        assert len(records) == 1, source
        return {**records[0].headers, "value": records[0].value or b""}

    broken = rejected("web")
    assert broken["value"] == b'{"event_id": "broken'  # the original bytes
    assert broken["scv.error.stage"] == b"normalize"
    assert broken["scv.error.topic"] == t.raw("web").encode()
    assert int(broken["scv.error.offset"]) >= 0
    assert broken["scv.error.reason"]
    assert b"email" in rejected("email")["scv.error.reason"]
    assert rejected("transactions")["scv.error.reason"]


def test_foreign_message_on_an_internal_topic_is_dead_lettered(pipeline: Pipeline) -> None:
    """Only scv writes ``identity.events.v1``; a stray message must not stop the resolver."""
    from confluent_kafka import Producer

    from scv.kafka import producer_config

    t = pipeline.topics
    key = uid("stray").encode()
    producer = Producer(producer_config(pipeline.settings))
    producer.produce(t.identity_events, key=key, value=b"not an identity event")
    assert producer.flush(10) == 0
    cookie = uid("ck")
    pipeline.send("web", web("page_view", cookie))
    pipeline.wait_for(lambda: pipeline.profile_with("anonymous_id", cookie))
    pipeline.drain()

    records = [r for r in pipeline.dlq(t.identity_events) if r.key == key]
    assert len(records) == 1
    assert records[0].value == b"not an identity event"
    assert records[0].headers["scv.error.stage"] == b"resolve"
    assert records[0].headers["scv.error.reason"].startswith(b"unreadable")


def test_http_endpoints_serve_health_and_metrics_but_no_tables(pipeline: Pipeline) -> None:
    assert pipeline.get("/livez") == (200, b'{"live":true}')
    assert pipeline.get("/readyz") == (200, b'{"ready":true}')
    status, body = pipeline.get("/metrics")
    assert status == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert samples[("scv_events_in_total", (("stage", "normalize"),))] > 0
    assert samples[("scv_events_in_total", (("stage", "profiles"),))] > 0
    for path in ("/table/profiles/", "/table/", "/router/", "/graph/", "/stats/"):
        assert pipeline.get(path)[0] == 404, path


def test_info_log_holds_no_raw_identifiers(pipeline: Pipeline) -> None:
    """Runs last in the module: the worker's log then covers every test above."""
    typed, _ = phone()
    address = email()
    pipeline.send("transactions", order(email=address, phone=typed))
    pipeline.send("web", b'{"email": "' + address.encode() + b'", "broken')
    pipeline.wait_for(lambda: pipeline.profile_with("email", address.lower()))
    pipeline.drain()

    log = pipeline.worker.log_path.read_text(errors="replace")
    assert "-> dlq" in log  # the DLQ warnings above were logged: it is the right log
    leaked = [value for value in SENT_PII if value.lower() in log.lower()]
    assert leaked == []
