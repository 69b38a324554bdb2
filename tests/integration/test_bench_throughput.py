"""``scv bench throughput``, ``latency`` and ``memory`` on small inputs: they run end to end
and report what they claim to (the figures themselves are ``make bench``'s business)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scv.bench.memory import PER_EVENT, run_memory
from scv.bench.throughput import run_latency, run_throughput
from scv.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


def test_throughput_counts_what_came_out(broker: EmbeddedBroker, tmp_path: Path) -> None:
    report = run_throughput(1500, seed=3, bootstrap=broker.bootstrap, work_dir=tmp_path)
    assert report["events"] == 1500 and report["events_per_second"] > 0
    assert report["profiles"] > 0 and report["identifiers"] >= report["profiles"]
    assert report["messages_out_per_event"]["identity.events"] > 0.9  # ~1 % are malformed
    assert report["peak_rss_mb"][0] > 0 and report["state_bytes_per_identifier"] > 0


def test_latency_is_measured_from_the_visit_to_the_action(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    report = run_latency(400, 3000, seed=11, bootstrap=broker.bootstrap, work_dir=tmp_path)
    assert report["achieved_rate"] == pytest.approx(400, rel=0.1)
    assert report["churn_save_actions"] > 0
    quantiles = report["churn_save_latency_ms"]
    assert 0 < quantiles["p50"] <= quantiles["p95"] <= quantiles["p99"]


def test_memory_is_read_at_both_sizes(broker: EmbeddedBroker, tmp_path: Path) -> None:
    report = run_memory(600, 3000, bootstrap=broker.bootstrap, work_dir=tmp_path)
    small, large = report["points"]
    assert (small["profiles"], large["profiles"]) == (600 // PER_EVENT, 3000 // PER_EVENT)
    assert 0 < small["rss_mb"] <= small["peak_rss_mb"] and large["state_mb"] > 0
    assert report["rss_growth"] is not None
