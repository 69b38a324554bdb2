"""FEBRL records as source events: valid, opaque, shuffled, truth kept outside."""

from __future__ import annotations

from collections import Counter

import orjson

from scv.connectors.febrl import febrl_events, load_records
from scv.domain.normalize import normalize


def test_every_record_is_a_valid_event_that_leaks_nothing_of_the_truth() -> None:
    events = list(febrl_events("febrl4", seed=5))
    records = {r.rec_id for r in load_records("febrl4")}
    assert len(events) == len(records) == 10_000
    assert Counter(e.source for e in events) == {"callcenter": 5000, "transactions": 5000}
    customer_ids = set()
    for event in events[:2000]:
        assert b"rec-" not in event.value
        normalized = normalize(event.source, event.value)
        [(kind, value)] = normalized.identifiers
        assert kind == "customer_id"
        customer_ids.add(value)
        assert "national_id" in normalized.traits
    assert len(customer_ids) == 2000  # one of its own per record


def test_the_truth_is_the_record_number_and_the_order_depends_on_the_seed() -> None:
    first = [e.event_id for e in febrl_events("febrl1", seed=1)]
    again = [e.event_id for e in febrl_events("febrl1", seed=1)]
    other = [e.event_id for e in febrl_events("febrl1", seed=2)]
    assert first == again and first != other and sorted(first) == sorted(other)
    persons = Counter(e.person_id for e in febrl_events("febrl1"))
    assert len(persons) == 500 and set(persons.values()) == {2}  # an original and a copy


def test_no_ssn_drops_the_national_id_and_dates_become_iso() -> None:
    event = next(febrl_events("febrl3", with_ssn=False, limit=1))
    doc = orjson.loads(event.value)
    assert "national_id" not in doc
    assert len(list(febrl_events("febrl3", limit=7))) == 7
    dates = [orjson.loads(e.value).get("birth_date") for e in febrl_events("febrl2", limit=200)]
    assert all(d is None or (len(d) == 10 and d[4] == "-") for d in dates)
