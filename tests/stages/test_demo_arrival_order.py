"""Generated demo traffic through the real stages in
event-time order and in interleavings a seeded random choice picks (as raw topics consumed
in parallel, a restarted worker or two workers splitting the stages deliver them): the
identity graph and the values found shared must be the same.

Found the typo case: a person's own values declared shared because two different letters
were dropped from their name on two calls (Gace, Grae), in one order but not the other.
The realistic profile is not yet order-free (docs/identity-graph.md, "Arrival order"):
about 1-2 % of its identifiers land in other groups in some interleavings.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
import pytest
from householdkit import Scenario, run

from scv.connectors.demo import generate


@pytest.mark.parametrize(
    ("seed", "profile", "orders"),
    [(3, "demo", (0, 1)), (7, "demo", (2,)), (7, "realistic", (0, 1))],
)
def test_graph_does_not_depend_on_arrival_order(
    seed: int, profile: str, orders: tuple[int, ...]
) -> None:
    events = generate(1500, seed, start_ts=1_790_000_000.0, profile=profile)
    scenario = Scenario([(e.source, orjson.loads(e.value)) for e in events if not e.malformed])
    with tempfile.TemporaryDirectory() as tmp:
        reference = run(scenario, Path(tmp), None)
    for order in orders:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(scenario, Path(tmp), order)
        assert result.groups == reference.groups, f"order {order}"
        assert result.generic == reference.generic, f"order {order}"
