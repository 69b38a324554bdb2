"""Hand-written valid raw events per source, shared by schema, normalisation and agent tests.

They model one small story so that cross-source tests can reuse them: Jane browses anonymously
(cookie ``ck-jane-1``), adds to a cart, clicks a campaign email that carries the same cookie,
orders, and later calls to cancel. Phone numbers use Ofcom's drama range (07700 900xxx) and
emails use reserved domains, so nothing here is real personal data.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from scv.domain.model import Identifier, NormalizedEvent

WEB: list[dict[str, Any]] = [
    {
        "event_id": "web-1",
        "timestamp": "2024-05-01T09:00:00Z",
        "type": "page_view",
        "anonymous_id": "ck-jane-1",
        "session_id": "sess-1",
        "page": {"url": "https://shop.example/", "title": "Home", "referrer": ""},
    },
    {
        "event_id": "web-2",
        "timestamp": "2024-05-01T09:01:00+01:00",
        "type": "product_view",
        "anonymous_id": "ck-jane-1",
        "session_id": "sess-1",
        "device_id": "dev-ios-42",
        "product": {"sku": "SKU-1", "name": "Kettle", "price": 29.99},
    },
    {
        "event_id": "web-3",
        "timestamp": 1714554120,
        "type": "cart_add",
        "anonymous_id": "ck-jane-1",
        "session_id": "sess-1",
        "cart": {
            "cart_id": "cart-1",
            "items": [{"sku": "SKU-1", "name": "Kettle", "qty": 1, "price": 29.99}],
            "currency": "GBP",
        },
    },
    {
        "event_id": "web-4",
        "timestamp": 1714554180000,
        "type": "cart_remove",
        "anonymous_id": "ck-jane-1",
        "session_id": "sess-1",
        "cart": {"cart_id": "cart-1", "items": []},
    },
    {
        "event_id": "web-5",
        "timestamp": "2024-05-01T09:05:00.250Z",
        "type": "signup",
        "anonymous_id": "ck-jane-1",
        "session_id": "sess-1",
        "customer_id": "C-1001",
        "email": "Jane.Doe@Example.com",
        "traits": {"first_name": "Jane", "last_name": "Doe"},
        "consent": {"marketing": True, "analytics": True},
    },
    {
        "event_id": "web-6",
        "timestamp": "2024-05-02T18:00:00Z",
        "type": "login",
        "anonymous_id": "ck-jane-2",
        "session_id": "sess-9",
        "customer_id": "C-1001",
    },
    {
        "event_id": "web-7",
        "timestamp": "2024-05-02T18:01:00Z",
        "type": "consent_update",
        "anonymous_id": "ck-jane-2",
        "session_id": "sess-9",
        "consent": {"marketing": False},
        "campaign": "extra top-level fields are allowed",
    },
]

EMAIL: list[dict[str, Any]] = [
    {
        "event_id": "em-1",
        "timestamp": "2024-05-01T08:00:00Z",
        "type": "sent",
        "email": "jane.doe@example.com",
        "campaign_id": "spring-sale",
    },
    {
        "event_id": "em-2",
        "timestamp": "2024-05-01T08:30:00Z",
        "type": "click",
        "email": "jane.doe@example.com",
        "campaign_id": "spring-sale",
        "link_url": "https://shop.example/kettles",
        "anonymous_id": "ck-jane-1",
    },
    {
        "event_id": "em-3",
        "timestamp": "2024-05-01T08:31:00Z",
        "type": "subscribe",
        "email": "Jane.Doe@Example.com",
        "customer_id": "C-1001",
    },
    {
        "event_id": "em-4",
        "timestamp": "2024-06-01T08:00:00Z",
        "type": "unsubscribe",
        "email": "jane.doe@example.com",
    },
    {
        "event_id": "em-5",
        "timestamp": "2024-06-02T08:00:00Z",
        "type": "bounce",
        "email": "old.address@example.org",
        "link_url": None,
    },
]

TRANSACTIONS: list[dict[str, Any]] = [
    {
        "event_id": "tx-1",
        "timestamp": "2024-05-01T09:20:00Z",
        "type": "order",
        "order_id": "O-5001",
        "items": [{"sku": "SKU-1", "name": "Kettle", "qty": 1, "price": 29.99}],
        "total": 29.99,
        "currency": "GBP",
        "customer_id": "C-1001",
        "email": "jane.doe@example.com",
        "phone": "07700 900123",
        "first_name": "Jane",
        "last_name": "Doe",
        "birth_date": "1985-03-14",
        "address": {
            "street": "1 High Street",
            "city": "London",
            "postcode": "sw1a 1aa",
            "country": "GB",
        },
        "cart_id": "cart-1",
        "anonymous_id": "ck-jane-1",
        "marketing_opt_in": True,
    },
    {
        "event_id": "tx-2",
        "timestamp": 1717228800,
        "type": "return",
        "order_id": "O-5001",
        "items": [{"sku": "SKU-1", "qty": 1, "price": 29.99}],
        "total": -29.99,
        "customer_id": "C-1001",
    },
    {
        "event_id": "tx-3",
        "timestamp": "2024-05-03T12:00:00+02:00",
        "type": "order",
        "order_id": "POS-77",
        "items": [{"sku": "SKU-9", "qty": 2, "price": 5}],
        "total": 10,
        "currency": "EUR",
        "phone": "06 12 34 56 78",
        "email": "",
        "customer_id": None,
        "address": {"city": "Paris", "country": "FR"},
    },
]

CALLCENTER: list[dict[str, Any]] = [
    {
        "event_id": "cc-1",
        "timestamp": "2024-06-10T14:00:00Z",
        "type": "call",
        "phone": "+44 7700 900123",
        "agent_id": "agent-7",
        "first_name": "jane",
        "last_name": "DOE",
        "birth_date": "1985-03-14",
        "postcode": "SW1A1AA",
        "disposition": {"code": "cancel_request", "notes": "Wants to cancel the subscription."},
        "duration_s": 312.5,
        "consent": {"marketing": True},
    },
    {
        "event_id": "cc-2",
        "timestamp": "2024-06-11T10:00:00Z",
        "type": "call",
        "phone": "0044 7700-900-456",
        "customer_id": "C-2002",
        "email": "someone@example.net",
        "disposition": {"code": "inquiry", "cancel_intent": False},
    },
    {
        "event_id": "cc-3",
        "timestamp": "2024-06-12T10:00:00Z",
        "type": "call",
        "phone": "(07700) 900789",
    },
]

#: Valid raw events keyed by source (the middle part of ``raw.<source>.v1``).
VALID_EXAMPLES: dict[str, list[dict[str, Any]]] = {
    "web": WEB,
    "email": EMAIL,
    "transactions": TRANSACTIONS,
    "callcenter": CALLCENTER,
}


def variant(source: str, pick: int | str, **changes: Any) -> dict[str, Any]:
    """A copy of one example (by index or event id) with fields replaced; ``...`` removes one."""
    events = VALID_EXAMPLES[source]
    chosen = (
        events[pick] if isinstance(pick, int) else next(e for e in events if e["event_id"] == pick)
    )
    event = copy.deepcopy(chosen)
    for key, value in changes.items():
        if value is ...:
            event.pop(key, None)
        else:
            event[key] = value
    return event


_ids = itertools.count()


def ev(
    source: str,
    type_: str,
    ts: float,
    identifiers: list[Identifier] | None = None,
    *,
    traits: dict[str, Any] | None = None,
    consent: dict[str, bool] | None = None,
    payload: dict[str, Any] | None = None,
    event_id: str | None = None,
) -> NormalizedEvent:
    """A normalised event as the normaliser would emit it, for profile and trigger tests."""
    return NormalizedEvent(
        event_id=event_id or f"e{next(_ids)}",
        source=source,
        type=type_,
        ts=ts,
        identifiers=identifiers or [],
        traits=traits or {},
        consent=consent or {},
        payload=payload or {},
    )
