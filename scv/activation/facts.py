"""The facts of a person that programmes may test, read from a ``profiles.v1`` snapshot.

The activation layer sees the person only as the core publishes them; it never reads the
core's tables. Each fact is named, documented (docs/activation.md, Facts) and derived here
from the snapshot, so a programme file names ``orders_count``, not a path into JSON that the
core may reshape.

Pure module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Snapshot = Mapping[str, Any]


def _first(kind: str) -> Callable[[Snapshot], Any]:
    def get(s: Snapshot) -> Any:
        values = (s.get("identifiers") or {}).get(kind) or []
        return min(values) if values else None  # the same one whatever the merge order

    return get


def _granted(purpose: str) -> Callable[[Snapshot], bool]:
    def get(s: Snapshot) -> bool:
        rec = (s.get("consent") or {}).get(purpose)
        return isinstance(rec, dict) and rec.get("granted") is True

    return get


def _orders(name: str) -> Callable[[Snapshot], Any]:
    return lambda s: (s.get("orders") or {}).get(name)


#: fact name -> (what it is, how to read it)
FACTS: dict[str, tuple[str, Callable[[Snapshot], Any]]] = {
    "registered": (
        "the person has a customer id (an account)",
        lambda s: bool((s.get("identifiers") or {}).get("customer_id")),
    ),
    "customer_id": (
        "their customer id (the smallest, if a merge gave them two)",
        _first("customer_id"),
    ),
    "email": ("an email address to write to", _first("email")),
    "phone": ("a phone number to text", _first("phone")),
    "marketing_consent": ("a recorded marketing grant (missing means no)", _granted("marketing")),
    "objected": (
        "an active objection to processing (GDPR Art. 21): no marketing, consent or not",
        lambda s: s.get("objection") is not None,
    ),
    "orders_count": ("orders placed", lambda s: int(_orders("count")(s) or 0)),
    "orders_total": ("their total value", lambda s: float(_orders("total")(s) or 0.0)),
    "last_order_id": ("the latest order's id", _orders("last_order_id")),
    "last_order_ts": ("when it was placed (event time)", _orders("last_ts")),
    "returns": ("returns made", lambda s: int(_orders("returns")(s) or 0)),
    "open_carts": ("carts open now", lambda s: len(s.get("open_carts") or [])),
    "churn_flagged": (
        "a cancellation announced and not yet answered",
        lambda s: s.get("churn_risk") is not None,
    ),
    "household_id": ("the household they belong to", lambda s: s.get("household_id")),
    "open_tickets": ("support tickets open now", lambda s: len(s.get("open_tickets") or [])),
    "critical_ticket_open": (
        "a critical support ticket is open",
        lambda s: any(t.get("priority") == "critical" for t in s.get("open_tickets") or ()),
    ),
    "first_name": ("first name", lambda s: (s.get("traits") or {}).get("first_name")),
    "updated_ts": ("the event time of their latest event", lambda s: s.get("updated_ts")),
}


def facts_of(snapshot: Snapshot) -> dict[str, Any]:
    """Every fact of ``snapshot``."""
    return {name: read(snapshot) for name, (_, read) in FACTS.items()}
