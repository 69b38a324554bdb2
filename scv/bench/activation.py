"""``scv bench activation``: the same traffic fast and in real time through core and activation.

A pipeline that lags or replays a backlog must decide what a live one decides. This runs the
demo traffic twice on fresh brokers, with the core and an activation worker: once produced
as fast as possible, once paced so that the events' own timestamps (``DemoEvent`` times are
0.01 s apart) pass in real time. It reports the actions per type, the audiences' final
members and, per type, how far the two runs are apart (``|fast - paced| / max``).
"""

from __future__ import annotations

from typing import Any

from scv.connectors.demo import generate
from scv.demo import run_pipeline

#: Event-time spacing of the demo generator: pacing at its inverse is real time.
DEMO_EVENTS_PER_SECOND = 100.0


def run_activation_bench(events: int, seed: int) -> dict[str, Any]:
    runs = {}
    for mode, rate in (("fast", None), ("paced", DEMO_EVENTS_PER_SECOND)):
        # generated at the start of each run: the paced run's events happen as they are sent
        summary = run_pipeline(
            generate(events, seed),
            name=f"act{mode}",
            activation=True,
            rate=rate,
            timeout=max(600.0, 2.0 * events / DEMO_EVENTS_PER_SECOND),
        )
        runs[mode] = {
            "actions": summary["actions"],
            "duplicate_actions": summary["duplicate_actions"],
            "audience_members": {k: v["members"] for k, v in summary.get("audiences", {}).items()},
            "seconds": summary["seconds"],
        }
    return {"events": events, "seed": seed, **runs, **compare(runs["fast"], runs["paced"])}


def compare(fast: dict[str, Any], paced: dict[str, Any]) -> dict[str, Any]:
    """Per action type and audience, the relative difference of the two runs."""

    def apart(a: dict[str, int], b: dict[str, int]) -> dict[str, float]:
        return {
            k: round(abs(a.get(k, 0) - b.get(k, 0)) / max(a.get(k, 0), b.get(k, 0), 1), 4)
            for k in sorted(a.keys() | b.keys())
        }

    actions = apart(fast["actions"], paced["actions"])
    audiences = apart(fast["audience_members"], paced["audience_members"])
    return {
        "actions_apart": actions,
        "audiences_apart": audiences,
        "max_apart": max([*actions.values(), *audiences.values()], default=0.0),
    }
