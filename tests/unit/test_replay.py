"""File replay into a fake producer (a test double for the producer interface only; replay
against a real broker is covered by the integration tier)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scv.connectors.demo import generate
from scv.connectors.replay import read_records, replay


class FakeProducer:
    """Records what would have been sent; counts polls and flushes."""

    def __init__(self, buffer_errors: int = 0) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.polls = 0
        self.flushes = 0
        self._buffer_errors = buffer_errors

    def produce(
        self, topic: str, value: bytes, key: bytes | None = None, *, on_delivery: Any = None
    ) -> None:
        if self._buffer_errors:
            self._buffer_errors -= 1
            raise BufferError("queue full")
        self.sent.append((topic, value, key))

    def poll(self, timeout: float) -> int:
        self.polls += 1
        return 0

    def flush(self, timeout: float = -1) -> int:
        self.flushes += 1
        return 0


def test_jsonl_passes_bad_lines_through_as_raw_bytes(tmp_path: Path) -> None:
    path = tmp_path / "web.jsonl"
    good = {"event_id": "e1", "anonymous_id": "c-1", "cart": {"cart_id": "k1"}}
    path.write_bytes(
        orjson.dumps(good)
        + b"\n\n"
        + b'{"event_id": "e2", "anonymous_id": \n'
        + b"   \r\n"
        + b'{"event_id":"e3","anonymous_id":"c-3","total":1e400}\r\n'
        + b"[1, 2]\n"
    )
    producer = FakeProducer()
    seen: list[tuple[int, int]] = []
    n = replay(
        [path], "raw.web.v1", producer, key_field="anonymous_id", progress=lambda *a: seen.append(a)
    )
    assert n == 4 and seen[-1] == (4, path.stat().st_size) and producer.flushes == 1
    values = [v for _, v, _ in producer.sent]
    assert orjson.loads(values[0]) == good
    assert values[1] == b'{"event_id": "e2", "anonymous_id": '  # as it was, for the DLQ
    assert values[2] == b'{"event_id":"e3","anonymous_id":"c-3","total":1e400}'  # not re-encoded
    assert values[3] == b"[1, 2]"
    assert [k for _, _, k in producer.sent] == [b"c-1", None, None, None]
    assert {t for t, _, _ in producer.sent} == {"raw.web.v1"}
    with pytest.raises(ValueError, match=r"web\.jsonl:3"):
        list(read_records(path))


def test_jsonl_replay_of_demo_traffic_is_byte_exact(tmp_path: Path) -> None:
    events = list(generate(3000, 2, start_ts=1_800_000_000.0))
    path = tmp_path / "mixed.ndjson"
    path.write_bytes(b"".join(e.value.replace(b"\n", b" ") + b"\n" for e in events))
    producer = FakeProducer()
    assert replay([path], "t", producer) == 3000
    assert [v for _, v, _ in producer.sent] == [e.value.replace(b"\n", b" ") for e in events]
    assert producer.polls >= 3  # served callbacks while producing


def test_csv_dotted_columns_and_cell_typing(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        "event_id,type,order_id,total,items,phone,cart.cart_id,cart.currency,address.city,"
        "marketing_opt_in,email\n"
        'o1,order,ORD-1,12.5,"[{""sku"":""S1"",""qty"":1,""price"":12.5}]",07700 900123,'
        "k1,GBP,Leeds,true,  A@B.COM\n"
        "o2,order,ORD-2,3,[],+447700900123,,,,,\n",
        encoding="utf-8",
    )
    records = list(read_records(path))
    assert records[0] == {
        "event_id": "o1",
        "type": "order",
        "order_id": "ORD-1",
        "total": 12.5,
        "items": [{"sku": "S1", "qty": 1, "price": 12.5}],
        "phone": "07700 900123",
        "cart": {"cart_id": "k1", "currency": "GBP"},
        "address": {"city": "Leeds"},
        "marketing_opt_in": True,
        "email": "  A@B.COM",
    }
    assert records[1] == {
        "event_id": "o2",
        "type": "order",
        "order_id": "ORD-2",
        "total": 3,
        "items": [],
        "phone": "+447700900123",
    }
    producer = FakeProducer()
    assert replay([path], "raw.transactions.v1", producer, key_field="cart.cart_id") == 2
    assert [orjson.loads(v) for _, v, _ in producer.sent] == records
    assert [k for _, _, k in producer.sent] == [b"k1", None]


def test_csv_conflicting_columns_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("cart,cart.cart_id\nx,k1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="clashes"):
        list(read_records(path))


def test_parquet_nested_structs_and_nulls(tmp_path: Path) -> None:
    rows = [
        {
            "event_id": "w1",
            "type": "cart_add",
            "anonymous_id": "c-1",
            "customer_id": None,
            "cart": {
                "cart_id": "k1",
                "items": [{"sku": "S1", "name": "Hat", "qty": 2, "price": 9.5}],
                "currency": "GBP",
            },
        },
        {
            "event_id": "w2",
            "type": "login",
            "anonymous_id": "c-1",
            "customer_id": "C1",
            "cart": None,
        },
    ]
    path = tmp_path / "web.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=1)
    expected = [
        {k: v for k, v in rows[0].items() if v is not None},
        {k: v for k, v in rows[1].items() if v is not None},
    ]
    assert list(read_records(path)) == expected
    producer = FakeProducer()
    n = replay([path, path], "raw.web.v1", producer, key_field="customer_id", fmt="parquet")
    assert n == 4
    assert [orjson.loads(v) for _, v, _ in producer.sent] == expected * 2
    assert [k for _, _, k in producer.sent] == [None, b"C1", None, b"C1"]


def test_full_queue_is_waited_out_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"event_id": "e1"}\n{"event_id": "e2"}\n', encoding="utf-8")
    producer = FakeProducer(buffer_errors=3)
    assert replay([path], "t", producer, key_field="event_id") == 2
    assert [k for _, _, k in producer.sent] == [b"e1", b"e2"]
    assert producer.polls >= 3


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.xml"
    path.write_text("<x/>", encoding="utf-8")
    with pytest.raises(ValueError, match="format"):
        list(read_records(path))
    with pytest.raises(ValueError, match="unknown format"):
        list(read_records(path, fmt="xml"))
