"""``scv bench throughput``, ``latency`` and ``memory`` on small inputs: they run end to end
and report what they claim to (the figures themselves are ``make bench``'s business)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scv.bench.memory import PER_EVENT, run_memory
from scv.bench.throughput import run_latency, run_throughput, split_stages, throughput_report
from scv.brokers import Broker

pytestmark = pytest.mark.integration


def test_throughput_counts_what_came_out(broker: Broker, tmp_path: Path) -> None:
    report = run_throughput(1500, seed=3, bootstrap=broker.bootstrap, work_dir=tmp_path)
    assert report["events"] == 1500 and report["events_per_second"] > 0
    assert report["profiles"] > 0 and report["identifiers"] >= report["profiles"]
    assert report["messages_out_per_event"]["identity.events"] > 0.9  # ~1 % are malformed
    assert report["peak_rss_mb"][0] > 0 and report["state_bytes_per_identifier"] > 0
    # read from the worker's /metrics: every new profile is read from the table once
    assert 0 < report["cache_misses_per_event"]["profiles"] <= 1


def test_report_runs_scv_and_both_naive_peers_on_the_chosen_broker(broker: Broker) -> None:
    """``scv bench throughput --broker``: a round on a fresh broker of the session's kind, scv
    and the naive Faust and Quix Streams peers on it, their rates and ratios side by side, and
    the broker's CPU read from its processes (every node's JVM on Kafka)."""
    report = throughput_report(1500, workers=[1], seed=3, rounds=1, broker=broker.kind)
    assert report["broker"]["kind"] == broker.kind and report["broker"]["version"]
    assert report["broker"]["nodes"] == 1
    assert report["scv"][0]["cpu_us_per_event"]["broker"] > 0
    quix = report["naive_quix"]
    assert quix["changelog_sum"] == quix["state_writes"] == 1500
    assert report["naive_faust"]["one_table_write"]["table_sum"] == 1500
    (row,) = report["per_round"]
    assert row["scv"]["1"] == report["scv"][0]["events_per_second"]
    assert row["naive_quix"] == quix["events_per_second"]
    assert row["scv_vs_naive_quix"] == report["scv_vs_naive_quix"] > 0
    assert row["scv_vs_naive_faust"] == report["scv_vs_naive"] == report["scv_vs_naive_faust"] > 0


def test_two_workers_splitting_the_stages_build_the_same_profiles(
    broker: Broker, tmp_path: Path
) -> None:
    """One worker normalises and resolves, the other keeps the profiles: the same events give
    the same profiles as one worker running every stage, and each worker did its share."""
    alone = run_throughput(1500, seed=3, bootstrap=broker.bootstrap, work_dir=tmp_path / "one")
    split = run_throughput(
        1500,
        seed=3,
        workers=2,
        stages=split_stages(2),
        bootstrap=broker.bootstrap,
        work_dir=tmp_path / "split",
    )
    assert split["stages"] == ["normalize,resolve", "profiles"]
    assert (split["profiles"], split["identifiers"]) == (alone["profiles"], alone["identifiers"])
    assert split["messages_out_per_event"]["profiles"] > 0
    assert split["cpu_us_per_event"]["worker0"] > 0 and split["cpu_us_per_event"]["worker1"] > 0
    # the profiles worker holds no identity graph, the other no profiles
    assert not list((tmp_path / "split" / "worker1").rglob("*identity-owners*"))
    assert not list((tmp_path / "split" / "worker0").rglob("*profiles*"))


def test_latency_is_measured_from_the_visit_to_the_action(broker: Broker, tmp_path: Path) -> None:
    report = run_latency(400, 3000, seed=11, bootstrap=broker.bootstrap, work_dir=tmp_path)
    assert report["achieved_rate"] == pytest.approx(400, rel=0.1)
    assert report["churn_save_actions"] > 0
    quantiles = report["churn_save_latency_ms"]
    assert 0 < quantiles["p50"] <= quantiles["p95"] <= quantiles["p99"]


def test_memory_is_read_at_both_sizes(broker: Broker, tmp_path: Path) -> None:
    report = run_memory(600, 3000, bootstrap=broker.bootstrap, work_dir=tmp_path)
    small, large = report["points"]
    assert (small["profiles"], large["profiles"]) == (600 // PER_EVENT, 3000 // PER_EVENT)
    assert 0 < small["rss_mb"] <= small["peak_rss_mb"] and large["state_mb"] > 0
    assert report["rss_growth"] is not None
