"""How the throughput bench turns rounds of runs into one report: medians, paired ratios and
the scaling ceiling of the machine's cores."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scv.bench.throughput import scaling_ceiling, split_stages, summarise, work_split
from scv.streams.metrics import cache_misses


def _run(workers: int, rate: float, cpu: dict[str, float]) -> dict[str, Any]:
    return {"events": 1000, "workers": workers, "events_per_second": rate, "cpu_us_per_event": cpu}


def test_ceiling_is_the_cores_cpu_over_the_cpu_spent_per_event() -> None:
    runs = [
        _run(1, 10_000.0, {"worker0": 100.0}),
        # two workers and a broker spent 125 µs per event: 2 cores give at most 16,000/s
        _run(2, 15_000.0, {"worker0": 50.0, "worker1": 50.0, "broker": 25.0}),
    ]
    assert scaling_ceiling(runs, cores=2) == {"cores": 2, "2_vs_1": 1.6}
    assert scaling_ceiling(runs, cores=4) == {"cores": 4, "2_vs_1": 3.2}


def test_work_split_bound_is_one_workers_cpu_over_the_busiest_workers() -> None:
    runs = [
        _run(1, 10_000.0, {"worker0": 100.0, "broker": 30.0}),
        # the resolver's worker took more of the work: a core each would allow 100/60
        _run(2, 11_000.0, {"worker0": 60.0, "worker1": 45.0, "broker": 40.0}),
    ]
    assert work_split(runs) == {"2_vs_1": 1.67, "busiest_worker_us_per_event_2": 60.0}
    # an even split of the same work allows twice the rate
    runs[1]["cpu_us_per_event"] = {"worker0": 50.0, "worker1": 50.0}
    assert work_split(runs)["2_vs_1"] == 2.0


def _round(one: float, two: float, naive: float, p99: float) -> dict[str, Any]:
    return {
        "scv": [
            _run(1, one, {"worker0": 100.0}),
            _run(2, two, {"worker0": 50.0, "worker1": 50.0}),
        ],
        "naive_faust": {
            "one_table_write": {"events_per_second": naive},
            "no_table": {"events_per_second": 2 * naive},
        },
        "latency": {"churn_save_latency_ms": {"p50": p99 / 2, "p95": p99, "p99": p99}},
    }


def test_rounds_are_summarised_by_medians_and_ratios_within_a_round() -> None:
    rounds = [
        _round(10_000, 14_000, 5_000, 200),
        _round(8_000, 12_000, 4_000, 300),  # a slow round: every side of it was slow
        _round(12_000, 15_000, 6_000, 100),
    ]
    report = summarise(rounds, cores=2)
    assert report["rounds"] == 3
    one, two = report["scv"]
    assert one["events_per_second"] == 10_000
    assert one["events_per_second_runs"] == [10_000, 8_000, 12_000]
    assert two["events_per_second"] == 14_000
    assert report["naive_faust"]["one_table_write"]["events_per_second"] == 5_000
    # 2.0 in every round: the paired ratio, not the ratio of medians taken across rounds
    assert report["scv_vs_naive"] == 2.0
    assert report["scaling"] == {"2_vs_1": 1.4}  # 1.4, 1.5, 1.25 -> 1.4
    assert report["scaling_ceiling"] == {"cores": 2, "2_vs_1": 2.0}  # 2e6/100/10k etc.
    assert report["scaling_by_work_split"] == {
        "2_vs_1": 2.0,  # 100 µs of worker CPU per event split 50 / 50
        "busiest_worker_us_per_event_2": 50.0,
    }
    assert report["latency_at_half_max"]["churn_save_latency_ms"]["p99"] == 200
    assert report["latency_at_half_max"]["p99_runs"] == [200, 300, 100]


def test_the_quix_peer_is_paired_within_rounds_and_listed_per_round() -> None:
    rounds = [
        _round(10_000, 14_000, 5_000, 200) | {"naive_quix": {"events_per_second": 40_000.0}},
        _round(8_000, 12_000, 4_000, 300) | {"naive_quix": {"events_per_second": 20_000.0}},
        _round(12_000, 15_000, 6_000, 100) | {"naive_quix": {"events_per_second": 48_000.0}},
    ]
    broker = {"kind": "kafka", "version": "4.3.1", "nodes": 1}
    report = summarise(rounds, cores=2, broker=broker)
    assert report["broker"] == broker
    assert report["naive_quix"]["events_per_second"] == 40_000
    assert report["naive_quix"]["events_per_second_runs"] == [40_000, 20_000, 48_000]
    assert report["scv_vs_naive_quix"] == 0.25  # 0.25, 0.4, 0.25 within the rounds
    assert report["scv_vs_naive_faust"] == report["scv_vs_naive"] == 2.0
    assert report["per_round"][1] == {
        "scv": {"1": 8_000, "2": 12_000},
        "naive_faust": 4_000,
        "naive_quix": 20_000,
        "scv_vs_naive_faust": 2.0,
        "scv_vs_naive_quix": 0.4,
    }


def test_a_peer_that_did_not_run_is_reported_with_its_reason() -> None:
    why = {"not_run": "QuixSetupError: could not install quixstreams"}
    rounds = [
        _round(10_000, 14_000, 5_000, 200) | {"naive_quix": why},
        _round(8_000, 12_000, 4_000, 300) | {"naive_quix": {"events_per_second": 16_000.0}},
    ]
    report = summarise(rounds, cores=2)
    assert report["naive_quix"]["events_per_second_runs"] == [16_000]
    assert report["scv_vs_naive_quix"] == 0.5  # from the round it ran in
    assert report["per_round"][0]["naive_quix"] is None
    assert report["per_round"][0]["scv_vs_naive_quix"] is None
    only_failed = summarise(rounds[:1], cores=2)
    assert only_failed["naive_quix"] == why
    assert "scv_vs_naive_quix" not in only_failed
    # a report without the peer keeps its old shape
    assert "naive_quix" not in summarise([_round(10_000, 14_000, 5_000, 200)], cores=2)


def test_a_run_with_the_stages_split_is_named_apart_from_one_without() -> None:
    assert split_stages(2) == ["normalize,resolve", "profiles"]
    split = _run(2, 12_000.0, {"worker0": 52.0, "worker1": 50.0, "broker": 30.0})
    split["stages"] = split_stages(2)
    one_round = _round(10_000, 11_000, 5_000, 200)
    one_round["scv"].append(split)
    report = summarise([one_round], cores=2)
    assert [r.get("stages") for r in report["scv"]] == [None, None, split_stages(2)]
    assert report["scaling"] == {"2_vs_1": 1.1, "2_split_vs_1": 1.2}
    assert report["scaling_by_work_split"]["2_split_vs_1"] == round(100 / 52, 2)
    assert report["scaling_by_work_split"]["2_vs_1"] == 2.0


def test_cache_misses_are_summed_over_the_workers_pages() -> None:
    pages = []
    for misses, hits in ((3, 10), (4, 0)):
        registry = CollectorRegistry()
        lookups = Counter(
            "scv_state_cache_lookups_total", "", ["table", "result"], registry=registry
        )
        lookups.labels("profiles", "miss").inc(misses)
        lookups.labels("profiles", "hit").inc(hits)
        lookups.labels("identity-nodes", "miss").inc(1)
        pages.append(generate_latest(registry).decode())
    parsed = [f for page in pages for f in text_string_to_metric_families(page)]
    assert cache_misses(parsed) == {"identity-nodes": 2.0, "profiles": 7.0}
    assert cache_misses(text_string_to_metric_families("# nothing here\n")) == {}


def test_transaction_figures_add_up_the_workers_commits() -> None:
    from scv.bench.throughput import transaction_figures

    page = (
        "# TYPE scv_transaction_commit_seconds histogram\n"
        'scv_transaction_commit_seconds_bucket{le="+Inf"} 40.0\n'
        "scv_transaction_commit_seconds_count 40.0\n"
        "scv_transaction_commit_seconds_sum 0.2\n"
    )
    other = page.replace("40.0", "10.0").replace("0.2", "0.3")
    assert transaction_figures([page, other]) == {"commits": 50, "mean_commit_ms": 10.0}
    assert transaction_figures(["# nothing\n"]) == {"commits": 0, "mean_commit_ms": None}
