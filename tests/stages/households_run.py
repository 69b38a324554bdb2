"""The household arrival-order property of ``test_household_arrival_order.py`` over many
scenarios, with what the runs cost in internal messages, as JSON.

    .venv/bin/python tests/stages/households_run.py --scenarios 1000 --json var/households.json

Each hypothesis example is a set of households and one interleaving, checked against the
event-time reference (``test_household_arrival_order.check``). A failure stops the run with
``"ok": false`` and the falsifying example on stderr; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path
from statistics import median
from typing import Any

from householdkit import Scenario, scenarios
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from stagekit import report
from test_household_arrival_order import check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    ratios: list[float] = []
    sizes: list[int] = []
    failure: str | None = None
    started = time.monotonic()

    @seed(args.seed)
    @settings(
        max_examples=args.scenarios,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(scenario=scenarios(), order=st.integers(0, 2**32))
    def prop(scenario: Scenario, order: int) -> None:
        result = check(scenario, order)
        ratios.append(result.internal_per_event)
        sizes.append(len(scenario.events))

    try:
        prop()
    except Exception as exc:
        failure = "".join(traceback.format_exception(exc))[-6000:]
    out: dict[str, Any] = {
        "scenarios": len(ratios),
        "seed": args.seed,
        "events_per_scenario": {
            "median": median(sizes) if sizes else 0,
            "max": max(sizes, default=0),
        },
        "internal_messages_per_event": {
            "median": round(median(ratios), 3) if ratios else 0,
            "max": round(max(ratios, default=0.0), 3),
        },
        "seconds": round(time.monotonic() - started, 1),
        "ok": failure is None,
    }
    report(out, args.json)
    if failure:
        print(failure, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
