"""Hostile input through the real stages (no broker): nothing escapes, every bad message is
dead-lettered with a reason, every good one comes out on ``profiles.v1``, and what is
accepted cannot corrupt the identity graph (see ``fuzzkit`` and ``hostile``).

The default run keeps to a modest number of examples; ``make fuzz`` runs the same property
over at least 100,000 bad events (``fuzz_run.py``).
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from fuzzkit import COMMANDS, Case, Outcome, check, fuzz_settings, new_pipeline, run_cases
from hostile import batches, example_docs
from hypothesis import HealthCheck, given, settings
from stagekit import Outbox

from scv.domain.normalize import normalize

SETTINGS = fuzz_settings(Path("unused-with-memory-store"))


def run_batch(cases: list[Case]) -> Outcome:
    out = Outbox()
    pipeline = new_pipeline(SETTINGS, out)
    run_cases(pipeline, out, cases)
    return check(pipeline, out, cases)


def test_hostile_batches_cost_only_themselves() -> None:
    totals = Outcome()

    @settings(
        max_examples=400,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(cases=batches())
    def each_batch(cases: list[Case]) -> None:
        totals.add(run_batch(cases))

    each_batch()
    # The run was real: bad events of every kind for every target, and good ones came out.
    bad = {k: n for k, n in totals.kinds.items() if k.startswith("bad:")}
    assert sum(bad.values()) >= 3000
    assert totals.counts["bad_dead_lettered"] == sum(bad.values())
    assert totals.counts["good_on_profiles"] >= 400
    assert totals.counts["weird_accepted"] > 0 and totals.counts["weird_dead_lettered"] > 0
    assert {k.split(":")[1] for k in bad} == {
        "web",
        "email",
        "transactions",
        "callcenter",
        COMMANDS,
    }
    assert len({k.split(":")[2] for k in bad}) == 12  # every kind of bad case


@pytest.mark.parametrize(("target", "doc"), example_docs())
def test_the_fuzzer_starts_from_valid_events(target: str, doc: dict) -> None:
    """A bad case is only bad if its template was good."""
    if target == COMMANDS:
        outcome = run_batch(
            [
                Case("web", "valid", orjson.dumps(example_docs()[0][1]), "good", "fz-web-0"),
                Case(COMMANDS, "ban_link", orjson.dumps(doc), "good"),
            ]
        )
        assert outcome.counts["good_accepted"] == 2  # the event, and the command carried out
        return
    normalize(target, orjson.dumps(doc))
    assert run_batch([Case(target, "valid", orjson.dumps(doc), "good", doc["event_id"])])
