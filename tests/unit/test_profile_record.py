"""The profiles table's record: a state's JSON, then its parts framed apart and decoded only
when used (``encode_state``, ``decode_record``, ``Parts``)."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_profile import WINDOW, events, states

from scv.domain.model import NormalizedEvent, parse_ident
from scv.domain.parts import file_event
from scv.domain.profile import Parts, ProfileState, decode_record, encode_state, new_state

ANCHORS = st.sampled_from(["email:a@b.co", "cookie:ck-1", "phone:+4420", 'odd:"\x00\\'])


@st.composite
def with_parts(draw: st.DrawFn) -> ProfileState:
    s = draw(states("pA"))
    for anchor in draw(st.lists(ANCHORS, unique=True, max_size=4)):
        s.parts[anchor] = draw(states("pA"))
    return s


def reread(s: ProfileState) -> ProfileState:
    return ProfileState.from_dict(decode_record(encode_state(s)), False)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(with_parts())
def test_a_state_reads_back_equal_and_writes_back_the_same_bytes(s: ProfileState) -> None:
    record = encode_state(s)
    back = reread(s)
    assert back == s
    assert encode_state(back) == record  # untouched parts go back as they were read
    assert back.to_dict() == s.to_dict()
    assert decode_record(record, lazy=False) == orjson.loads(orjson.dumps(s.to_dict()))
    # the hand-over message carries the parts inline, as one JSON document
    assert orjson.loads(orjson.dumps(back.to_dict(copy=False))) == s.to_dict()


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(with_parts(), events(), ANCHORS)
def test_filing_an_event_into_a_read_back_state_is_filing_it_into_the_original(
    s: ProfileState, event: NormalizedEvent, anchor: str
) -> None:
    back = reread(s)
    for state in (s, back):
        file_event(state, parse_ident(anchor), event, list(event.identifiers), 5.0, WINDOW)
    assert back == s
    assert encode_state(back) == encode_state(s)
    assert reread(back) == s


def test_only_the_part_an_event_touches_is_decoded_and_encoded_again() -> None:
    s = new_state("p1", 1.0)
    s.parts["email:a@b.co"] = new_state("p1", 1.0)
    s.parts["cookie:ck-1"] = new_state("p1", 2.0)
    back = reread(s)
    raw = dict(back.parts._items)
    assert all(type(v) is bytes for v in raw.values())  # nothing decoded on read
    back.parts["cookie:ck-1"].event_count += 1  # an event filed under the cookie
    assert back.parts._items["email:a@b.co"] is raw["email:a@b.co"]  # still bytes
    encoded = dict(back.parts.encoded())
    assert encoded["email:a@b.co"] is raw["email:a@b.co"]
    assert orjson.loads(encoded["cookie:ck-1"])["event_count"] == 1
    assert dict(back.parts.encoded())["cookie:ck-1"] is encoded["cookie:ck-1"]  # kept


def test_records_written_before_parts_were_framed_still_read() -> None:
    s = new_state("p1", 1.0)
    s.parts["email:a@b.co"] = new_state("p1", 3.0)
    old = orjson.dumps(s.to_dict())  # one JSON document, parts inline
    assert b"\x00" not in old
    back = ProfileState.from_dict(decode_record(old), False)
    assert back == s and back.parts["email:a@b.co"].created_ts == 3.0
    assert decode_record(encode_state(new_state("p2", 1.0))) == new_state("p2", 1.0).to_dict()


def test_markers_are_plain_json() -> None:
    assert decode_record(orjson.dumps({"moved_to": "p9"})) == {"moved_to": "p9"}


def test_parts_compare_by_content() -> None:
    a, b = (
        Parts({"x:1": new_state("p", 1.0)}),
        Parts({"x:1": orjson.dumps(new_state("p", 1.0).to_dict())}),
    )
    assert a == b and a == {"x:1": new_state("p", 1.0)} and a != Parts()
