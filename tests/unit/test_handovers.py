"""The hand-over storm rule (``scv.domain.handovers``): sliding window, bound, one report per
profile and window, peers, bounded memory; and a bad setting stops start-up in one line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scv.cli import main
from scv.domain.handovers import MAX_PEERS, HandoverWatch, Storm
from scv.settings import get_settings


def test_more_than_the_bound_within_the_window_is_a_storm() -> None:
    watch = HandoverWatch(bound=3, window_s=10.0)
    assert [watch.note("p_a", ["p_b"], t) for t in (0.0, 1.0, 2.0)] == [None] * 3
    storm = watch.note("p_a", ["p_b"], 3.0)
    assert storm == Storm("p_a", ("p_b",), count=4, since=0.0, at=3.0, bound=3, window_s=10.0)


def test_hand_overs_spread_wider_than_the_window_are_not() -> None:
    watch = HandoverWatch(bound=2, window_s=10.0)
    # three in a row, but never more than two within any 10 s
    assert [watch.note("p_a", [], t) for t in (0.0, 6.0, 12.0, 18.0, 24.0)] == [None] * 5
    # the window slides: 18, 24 and 28 are within 10 s
    storm = watch.note("p_a", [], 28.0)
    assert storm is not None and (storm.count, storm.since) == (3, 18.0)


def test_a_storm_is_reported_once_per_window() -> None:
    watch = HandoverWatch(bound=1, window_s=10.0)
    times = [i * 0.5 for i in range(60)]  # a loop: one hand-over every 0.5 s for 30 s
    storms = [s for t in times if (s := watch.note("p_a", ["p_b"], t)) is not None]
    assert [s.at for s in storms] == [0.5, 10.5, 20.5]
    first, second, third = storms
    assert (first.count, first.since) == (2, 0.0)  # the bound + 1 within the window
    # later reports: what came since the previous one (the loop's rate)
    assert (second.count, second.since) == (20, 0.5)
    assert (third.count, third.since) == (20, 10.5)


def test_the_quiet_time_is_per_profile() -> None:
    watch = HandoverWatch(bound=1, window_s=10.0)
    assert watch.note("p_a", [], 0.0) is None
    assert watch.note("p_b", [], 0.0) is None
    assert watch.note("p_a", [], 1.0) is not None
    storm = watch.note("p_b", [], 1.0)
    assert storm is not None and storm.profile_id == "p_b"
    assert watch.note("p_a", [], 2.0) is None


def test_a_storm_names_the_recent_peers_and_only_ids() -> None:
    watch = HandoverWatch(bound=2, window_s=60.0)
    watch.note("p_a", ["p_b", None, ""], 0.0)  # no peer known: left out
    watch.note("p_a", ["p_a", 7, "p_c"], 1.0)  # itself and non-strings: left out
    storm = watch.note("p_a", ["p_b"], 2.0)
    assert storm is not None and storm.peers == ("p_c", "p_b")  # most recent last
    many = HandoverWatch(bound=100, window_s=60.0)
    for i in range(3 * MAX_PEERS):
        many.note("p_x", [f"p_{i}"], float(i))
    storm = None
    for _ in range(100):
        storm = many.note("p_x", [], 30.0) or storm
    assert storm is not None
    assert storm.peers == tuple(f"p_{i}" for i in range(2 * MAX_PEERS, 3 * MAX_PEERS))


def test_profiles_quiet_for_a_window_are_forgotten() -> None:
    watch = HandoverWatch(bound=5, window_s=10.0)
    for i in range(1000):
        watch.note(f"p_{i}", [], float(i) / 100)  # 1000 profiles within 10 s
    assert len(watch) == 1000
    watch.note("p_late", [], 25.0)  # everything else is more than a window old
    assert len(watch) == 1


def test_memory_is_bounded_by_the_capacity() -> None:
    watch = HandoverWatch(bound=1, window_s=1e9, capacity=100)
    for i in range(10_000):
        watch.note(f"p_{i}", ["p_peer"], 0.0)
    assert len(watch) == 100
    # a looping profile is handed over all the time, so it stays tracked among the others
    storms = []
    for i in range(10_000):
        watch.note(f"p_new_{i}", [], 1.0)
        if i % 50 == 0:
            storms.append(watch.note("p_loop", [], 1.0))
    assert len(watch) == 100
    assert [s.profile_id for s in storms if s is not None] == ["p_loop"]


@given(st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=60))
def test_reports_match_a_brute_force_count(gaps: list[float]) -> None:
    """Whenever it reports, more than ``bound`` hand-overs fell within the window; whenever
    that holds and the profile was not reported within the last window, it reports."""
    bound, window = 3, 30.0
    watch = HandoverWatch(bound, window)
    seen: list[float] = []
    last_report = float("-inf")
    now = 0.0
    for gap in gaps:
        now += gap
        seen.append(now)
        storm = watch.note("p_a", [], now)
        within = sum(1 for t in seen if now - t <= window)
        expected = within > bound and now >= last_report + window
        assert (storm is not None) == expected
        if storm is not None:
            last_report = now


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        HandoverWatch(bound=0, window_s=10.0)
    with pytest.raises(ValueError):
        HandoverWatch(bound=1, window_s=0.0)


@pytest.mark.parametrize(
    ("name", "value"), [("SCV_HANDOVER_STORM_COUNT", "0"), ("SCV_HANDOVER_STORM_WINDOW_S", "-5")]
)
def test_a_bad_setting_stops_start_up_in_one_line(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        assert main(["worker"]) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert name in err
