"""The processing guarantee under SIGKILL, small: ``make chaos`` runs the full version.

Two workers take the demo workload while one is killed twice (the second time while it is
restoring its tables after the first); the outcome must equal a run without faults, and
``/readyz`` must answer 503 until the restarted worker's tables are restored.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scv.bench.chaos import run_chaos
from scv.brokers import Broker

pytestmark = pytest.mark.integration

FAILURES = (
    "lost_profile_updates",
    "duplicate_actions",
    "differing_profiles",
    "missing_actions",
    "extra_actions",
    "differing_actions",
    "double_counted_events",
    "ready_before_restore",
    "reference_empty",
    "stale_snapshots",
)


def test_killed_workers_lose_nothing_and_repeat_nothing(broker: Broker, tmp_path: Path) -> None:
    report = run_chaos(
        1500, kills=2, workers=2, rate=120.0, bootstrap=broker.bootstrap, work_dir=tmp_path
    )
    assert {key: report[key] for key in FAILURES} == dict.fromkeys(FAILURES, 0), report
    assert report["ok"]
    assert report["kills"] == 2
    assert report["killed_in_recovery"] == 1, report["restarts"]
    assert report["profiles"]["profiles"] > 100
    [restarted] = [r for r in report["restarts"] if r["time_to_ready_s"] is not None]
    assert restarted["not_ready_answers"] > 0  # 503 while it joined and restored
    assert restarted["restore_s"], "the worker logs how long its restore took"
