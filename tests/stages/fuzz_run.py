"""``make fuzz``: the stage fuzz property of ``test_fuzz_stages.py`` until at least
``--bad-events`` bad events went through, then the counts as JSON.

    .venv/bin/python tests/stages/fuzz_run.py --bad-events 100000 --json var/fuzz.json

Each hypothesis example is one batch (good events of every source, bad and weird cases of
every source and of the command topic, shuffled) through fresh stages; ``fuzzkit.check``
asserts the outcome. Runs go in chunks of ``--chunk`` examples, each with its own seed
(``--seed`` + chunk number), so a failure is reproducible. A failure stops the run: the
JSON then says ``"ok": false`` and the falsifying batch is printed; the exit code is 1.
``crashes`` counts exceptions that escaped the stages (what would stop a worker).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from fuzzkit import Case, Outcome, check, fuzz_settings, new_pipeline, run_cases
from hostile import batches
from hypothesis import HealthCheck, given, seed, settings
from stagekit import Outbox, report

SETTINGS = fuzz_settings(Path("unused-with-memory-store"))


class Crash(Exception):
    """An exception escaped ``Pipeline.process``: in a worker, the loop would stop."""


def run_batch(cases: list[Case]) -> Outcome:
    out = Outbox()
    pipeline = new_pipeline(SETTINGS, out)
    try:
        run_cases(pipeline, out, cases)
    except Exception as exc:
        raise Crash(f"{type(exc).__name__}: {exc}") from exc
    return check(pipeline, out, cases)


def summary(totals: Outcome, batches_run: int, seconds: float) -> dict[str, Any]:
    def total(prefix: str) -> int:
        return sum(n for kind, n in totals.kinds.items() if kind.startswith(prefix))

    def by(prefix: str, part: int) -> dict[str, int]:
        out: dict[str, int] = {}
        for kind, n in totals.kinds.items():
            if kind.startswith(prefix):
                name = kind.split(":")[part]
                out[name] = out.get(name, 0) + n
        return dict(sorted(out.items()))

    c = totals.counts
    return {
        "bad_events": total("bad:"),
        "bad_dead_lettered": c["bad_dead_lettered"],
        "dlq_by_reason": dict(sorted(totals.reasons.items())),
        "bad_by_kind": by("bad:", 2),
        "bad_by_target": by("bad:", 1),
        "good_events": total("good:") - by("good:", 1).get("commands", 0),
        "good_on_profiles": c["good_on_profiles"],
        "good_commands": by("good:", 1).get("commands", 0),
        "good_accepted": c["good_accepted"],
        "weird_events": total("weird:"),
        "weird_accepted": c["weird_accepted"],
        "weird_dead_lettered": c["weird_dead_lettered"],
        "weird_by_kind": by("weird:", 2),
        "batches": batches_run,
        "seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bad-events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=250, help="examples per hypothesis run")
    parser.add_argument("--max-bad", type=int, default=60, help="most bad cases per batch")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    # A DLQ warning per bad event is the stages' job; a million of them is not the fuzzer's.
    logging.disable(logging.WARNING)

    totals = Outcome()
    batches_run = 0
    crashes = failures = 0
    failure: str | None = None
    started = time.monotonic()
    chunk = 0
    while sum(n for k, n in totals.kinds.items() if k.startswith("bad:")) < args.bad_events:

        @seed(args.seed + chunk)
        @settings(
            max_examples=args.chunk,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(cases=batches(max_bad=args.max_bad))
        def prop(cases: list[Case]) -> None:
            nonlocal batches_run
            totals.add(run_batch(cases))
            batches_run += 1

        try:
            prop()
        except Exception as exc:
            crashes += isinstance(exc, Crash) or isinstance(exc.__cause__, Crash)
            failures += 1
            failure = "".join(traceback.format_exception(exc))[-6000:]
            break
        chunk += 1
        done = sum(n for k, n in totals.kinds.items() if k.startswith("bad:"))
        print(f"  {done:,} bad events, {time.monotonic() - started:.0f}s", file=sys.stderr)

    result = summary(totals, batches_run, time.monotonic() - started)
    result |= {"crashes": crashes, "failures": failures, "seed": args.seed, "ok": not failures}
    report(result, args.json)
    if failure:
        print(failure, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
