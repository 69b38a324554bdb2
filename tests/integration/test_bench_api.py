"""``scv bench api`` on a small input: it runs end to end and times what it claims to."""

from __future__ import annotations

from pathlib import Path

import pytest

from scv.bench.api import run_api_bench
from scv.brokers import Broker

pytestmark = pytest.mark.integration


def test_api_bench_times_every_lookup_idle_and_under_load(broker: Broker, tmp_path: Path) -> None:
    report = run_api_bench(
        600, 50, workers=1, seed=3, under_load=True, bootstrap=broker.bootstrap, work_dir=tmp_path
    )
    assert report["events"] == 600 and report["profiles"] > 0
    for phase in (report, report["under_load"]):
        assert phase["statuses"] == {"200": 50}
        assert phase["by_hops"]["0"]["lookups"] == 50  # one worker: it holds everything
        q = phase["latency_ms"]
        assert 0 < q["p50"] <= q["p95"] <= q["p99"] <= q["max"]
