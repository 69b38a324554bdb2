"""Households through the real worker and broker, replayed from four files at once (issue 22).

The stage-level property (tests/stages/test_household_arrival_order.py) draws interleavings
in process; here the interleaving is what a real worker makes of four ``scv replay``
processes producing at full speed. The run must drain (a hand-over loop used to keep two
profiles busy for ever), stay within the internal-message bound, raise no hand-over storm,
and end with the profiles of the event-time reference run through the stages in process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import pytest
from pipeline import Pipeline

from scv.bench.backfill import replay_at_once, storms
from scv.runner import read_topic

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stages"))
from householdkit import LIMIT_PER_EVENT, RAW_KEY, run, seeded

pytestmark = pytest.mark.integration


def test_households_replayed_from_four_files_at_once_end_as_in_event_time_order(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    scenario = seeded(22, households=40)
    files = {}
    for source in ("web", "email", "transactions", "callcenter"):
        path = files[source] = tmp_path / f"{source}.jsonl"
        mine = [payload for s, payload in scenario.events if s == source]
        path.write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in mine))
    assert set(RAW_KEY) <= set(files)

    replay_at_once(pipeline.settings, files, tmp_path)
    pipeline.drain(timeout=240, stall=30)

    events = len(scenario.events)
    internal = len(read_topic(pipeline.settings, pipeline.topics.identity_events))
    internal += len(read_topic(pipeline.settings, pipeline.topics.profile_events))
    assert internal <= LIMIT_PER_EVENT * events, f"{internal} internal messages, {events} events"
    status, metrics = pipeline.get("/metrics")
    assert status == 200 and storms(metrics.decode()) == 0

    live: dict[frozenset[str], tuple[int, int]] = {}
    for profile in pipeline.profiles().values():
        if not profile["event_count"]:
            continue  # a part without events of its own (see householdkit._profiles)
        ids = frozenset(f"{t}:{v}" for t, vs in profile["identifiers"].items() for v in vs)
        assert ids not in live, f"two live profiles hold {sorted(ids)}"
        live[ids] = (profile["event_count"], profile["orders"]["count"])
    reference = run(scenario, tmp_path / "reference", None)
    expected = {ids: (n, len(orders)) for ids, (n, orders) in reference.profiles.items()}
    assert live == expected
