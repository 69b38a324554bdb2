"""Households in any arrival order: the stages reach quiescence, and agree (issue 22).

Two profiles of a household that shared a family email used to hand state to each other
for ever on ``profiles.events.v1`` when events reached the stages in some orders. Here
hypothesis draws households (2-4 people with their own customer ids, sharing a family
email, a landline or a tablet) and interleavings of the raw, resolver and profile
partitions, and checks every run against the event-time reference:

* it ends, with at most ``LIMIT_PER_EVENT`` internal messages per input event;
* the resolver forms the same identifier groups and finds the same generic values;
* every profile state with events has the identifiers of one resolver group, and holds the
  same events and orders as in the reference.

``tests/stages/households_run.py`` runs the same property over more scenarios and prints
the most internal messages per event it saw.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
from householdkit import Result, Scenario, run, scenarios
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stagekit import Outbox, feed, load_examples

from scv.domain.parts import Adoption, file_event
from scv.domain.profile import ProfileState, new_state
from scv.streams.worker import Pipeline
from scv.topics import Topics

ev = load_examples().ev


def check(scenario: Scenario, order: int) -> Result:
    """One interleaving against the reference; returns the interleaved run's result."""
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        reference = run(scenario, Path(a), None)
        result = run(scenario, Path(b), order)
    assert reference.profiles.keys() <= reference.groups, "the reference's stages disagree"
    assert result.groups == reference.groups
    assert result.generic == reference.generic
    assert result.profiles.keys() <= result.groups, "profile states differ from the graph"
    assert result.profiles == reference.profiles
    return result


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=scenarios(), order=st.integers(0, 2**32))
def test_households_reach_the_same_profiles_in_any_order(scenario: Scenario, order: int) -> None:
    check(scenario, order)


def test_a_split_that_overtakes_the_profile_s_state_still_routes_what_comes_later(
    pipeline: Pipeline, topics: Topics, sent: Outbox
) -> None:
    """pB was made by one split (decision 2); its adoption is still in flight when a second
    split (decision 4) moves Bob's email on to pN. The second split used to be ignored
    (no state yet), so the adoption, once it came, left Bob's email and events on pB."""
    split = {
        "kind": "split",
        "profile_id": "pB",
        "parts": {"pB": ["customer_id:C1"], "pN": ["email:bob@mail.de"]},
        "removed": [],
        "seq": 4,
    }
    feed(pipeline, topics.profile_events, orjson.dumps(split), key=b"pB")
    partials: dict[str, ProfileState] = {}
    for key, event in (("customer_id:C1", "e-c1"), ("email:bob@mail.de", "e-bob")):
        state = new_state("pB", 10.0)
        kind, _, value = key.partition(":")
        happened = ev("web", "login", 10.0, [(kind, value)], event_id=event)
        file_event(state, (kind, value), happened, [(kind, value)], 10.0, 60.0)
        partials[key] = state.parts[key]
    adoption = Adoption("pB", "pA", list(partials), partials, [], {}, 2)
    n = len(sent)
    feed(pipeline, topics.profile_events, orjson.dumps(adoption.to_dict()), key=b"pB")

    [forward] = [m.json() for m in sent[n:] if m.topic == topics.profile_events]
    assert (forward["kind"], forward["profile_id"], forward["seq"]) == ("adopt", "pN", 4)
    assert list(forward["partials"]) == ["email:bob@mail.de"]
    kept = orjson.loads(pipeline.profile_table[0].get(b"pB"))
    assert kept["identifiers"] == {"customer_id": ["C1"]}
    assert kept["event_count"] == 1
