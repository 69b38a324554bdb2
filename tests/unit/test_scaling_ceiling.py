"""The scaling ceiling the throughput bench reports: the cores' CPU over what a run spent."""

from __future__ import annotations

from scv.bench.throughput import scaling_ceiling


def test_ceiling_is_the_cores_cpu_over_the_cpu_spent_per_event() -> None:
    runs = [
        {"workers": 1, "events_per_second": 10_000.0, "cpu_us_per_event": {"worker0": 100.0}},
        {
            "workers": 2,
            "events_per_second": 15_000.0,
            # two workers and a broker spent 125 µs per event: 2 cores give at most 16,000/s
            "cpu_us_per_event": {"worker0": 50.0, "worker1": 50.0, "broker": 25.0},
        },
    ]
    assert scaling_ceiling(runs, cores=2) == {"cores": 2, "2_vs_1": 1.6}
    assert scaling_ceiling(runs, cores=4) == {"cores": 4, "2_vs_1": 3.2}
