"""Profile snapshots -> Parquet rows: every field lands, typed, and survives a file round trip.

The broker side (reading ``profiles.v1`` to its end, tombstones) is in the integration tier.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from scv.connectors.export import SCHEMA, profiles_table
from scv.schemas import validator

SNAPSHOT: dict[str, Any] = {
    "profile_id": "p_1",
    "created_ts": 1714554000.25,
    "updated_ts": 1714557600.0,
    "identifiers": {
        "customer_id": ["C-1"],
        "email": ["ann@acme-corp.co.uk", "ann.work@acme-corp.co.uk"],
    },
    "traits": {"first_name": "Ann", "loyalty_points": 120, "tags": ["vip"]},
    "consent": {"marketing": {"granted": True, "ts": 1714554000.0, "source": "web"}},
    "channels": {"web": 3, "email": 1},
    "last_activity": {"ts": 1714557600.0, "source": "web", "type": "cart_add"},
    "open_carts": [
        {
            "cart_id": "cart-1",
            "items": [{"sku": "SKU-1", "qty": 2, "price": 29.99}],
            "currency": "GBP",
            "updated_ts": 1714557600.0,
            "due_at": 1714559400.0,
        }
    ],
    "orders": {"count": 1, "total": 59.98, "last_order_id": "O-1", "last_ts": 1714555000.0},
    "churn_risk": None,
    "merged_from": ["p_2"],
    "event_count": 4,
}


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_snapshot_is_a_valid_profiles_v1_value() -> None:
    validator("profiles.v1")(SNAPSHOT)  # the fixture is what the topic carries


def test_every_field_lands_typed_and_round_trips(tmp_path: Path) -> None:
    later = SNAPSHOT | {"profile_id": "p_3", "future_field": {"x": 1}, "traits": {}}
    path = tmp_path / "profiles.parquet"
    pq.write_table(profiles_table([SNAPSHOT, later]), path)

    table = pq.read_table(path)
    assert table.schema.equals(SCHEMA)
    leaves = pq.ParquetFile(path).schema
    logical = {
        leaves.column(i).path: leaves.column(i).logical_type.type for i in range(len(leaves))
    }
    assert logical["traits"] == logical["open_carts.list.element.items"] == "JSON"
    assert logical["created_ts"] == "TIMESTAMP"
    first, second = table.to_pylist()
    assert first["profile_id"] == "p_1"
    assert first["created_ts"] == at(1714554000.25)
    assert first["identifiers"] == [
        {"type": "customer_id", "value": "C-1"},
        {"type": "email", "value": "ann@acme-corp.co.uk"},
        {"type": "email", "value": "ann.work@acme-corp.co.uk"},
    ]
    assert orjson.loads(first["traits"]) == SNAPSHOT["traits"]
    assert first["consent"] == [
        {"purpose": "marketing", "granted": True, "ts": at(1714554000.0), "source": "web"}
    ]
    assert dict(first["channels"]) == {"web": 3, "email": 1}
    assert first["last_activity"] == {"ts": at(1714557600.0), "source": "web", "type": "cart_add"}
    [cart] = first["open_carts"]
    assert orjson.loads(cart["items"]) == SNAPSHOT["open_carts"][0]["items"]
    assert (cart["cart_id"], cart["currency"], cart["due_at"]) == (
        "cart-1",
        "GBP",
        at(1714559400.0),
    )
    assert first["orders"] == {
        "count": 1,
        "total": 59.98,
        "last_order_id": "O-1",
        "last_ts": at(1714555000.0),
        "returns": 0,
    }
    assert first["churn_risk"] is None
    assert first["merged_from"] == ["p_2"]
    assert first["event_count"] == 4
    assert first["extra"] is None
    # a field the exporter does not know is kept, not dropped
    assert orjson.loads(second["extra"]) == {"future_field": {"x": 1}}


def test_an_empty_export_still_has_the_schema() -> None:
    table = profiles_table([])
    assert table.num_rows == 0 and table.schema.equals(SCHEMA)
    assert pa.types.is_timestamp(SCHEMA.field("created_ts").type)
