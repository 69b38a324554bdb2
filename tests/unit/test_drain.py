"""When a drain wait ends: drained (lag 0 for the settle time), stalled (the lag stopped
reaching new lows, even while offsets move) or timed out, and what the message says."""

from __future__ import annotations

from pathlib import Path

import pytest

from scv.drain import DrainTimeout, DrainWatch, Verdict

RAW = "raw.web.v1"
IDS = "identity.events.v1"
PROFILES = "profiles.events.v1"


def watch(
    topics: tuple[str, ...] = (RAW, IDS, PROFILES),
    *,
    settle: float = 2.0,
    stall: float = 60.0,
    timeout: float = 600.0,
) -> DrainWatch:
    return DrainWatch(topics, settle=settle, stall=stall, timeout=timeout, start=0.0)


def lags(**by_topic: int | dict[int, int]) -> dict[tuple[str, int], int]:
    """``raw=5`` or ``profiles={0: 3, 1: 4}``: one reading, topics by their short names."""
    names = {"raw": RAW, "ids": IDS, "profiles": PROFILES}
    out: dict[tuple[str, int], int] = {}
    for short, value in by_topic.items():
        parts = value if isinstance(value, dict) else {0: value}
        out |= {(names[short], p): lag for p, lag in parts.items()}
    return out


def test_zero_for_the_settle_time_is_drained() -> None:
    w = watch(settle=2.0)
    assert w.observe(0.0, lags(raw=100)) is Verdict.WAITING
    assert w.observe(1.0, lags(raw=0)) is Verdict.WAITING
    assert w.observe(2.0, lags(raw=0)) is Verdict.WAITING
    assert w.observe(3.0, lags(raw=0)) is Verdict.DRAINED
    assert w.zero_since == 1.0  # the caller reports when the lag reached zero


def test_lag_that_comes_back_restarts_the_settle_time() -> None:
    w = watch(settle=2.0)
    assert w.observe(0.0, lags(raw=0)) is Verdict.WAITING
    assert w.observe(1.5, lags(ids=1)) is Verdict.WAITING  # a stage produced downstream
    assert w.zero_since is None
    assert w.observe(2.0, lags()) is Verdict.WAITING
    assert w.observe(3.9, lags()) is Verdict.WAITING
    assert w.observe(4.0, lags()) is Verdict.DRAINED


def test_zero_settle_ends_at_the_first_zero() -> None:
    w = watch(settle=0.0)
    assert w.observe(0.0, lags(raw=3)) is Verdict.WAITING
    assert w.observe(0.1, lags(raw=0)) is Verdict.DRAINED


def test_steady_progress_never_stalls_however_long_it_takes() -> None:
    w = watch(stall=10.0, timeout=10_000.0)
    for second in range(1000):
        assert w.observe(float(second), lags(raw=1000 - second)) is Verdict.WAITING
    assert w.observe(1000.0, lags()) is Verdict.WAITING
    assert w.observe(1002.0, lags()) is Verdict.DRAINED


def test_work_moving_down_the_stages_is_progress_while_the_total_stays_flat() -> None:
    # normalize turns each raw event into an identity event: the total does not go down,
    # but the raw topic reaches new lows; then the resolver takes the identity events
    w = watch(stall=10.0)
    for second in range(21):
        reading = lags(raw=100 - 5 * second, ids=5 * second)
        assert w.observe(float(second), reading) is Verdict.WAITING
    for second in range(21, 41):
        reading = lags(ids=100 - 5 * (second - 20))
        assert w.observe(float(second), reading) is Verdict.WAITING
    assert w.observe(42.0, lags()) is Verdict.DRAINED


def test_nothing_consumed_stalls_after_the_stall_period() -> None:
    w = watch(stall=5.0)
    for t in (0.0, 1.0, 2.0, 3.0, 4.0):
        assert w.observe(t, lags(raw=412)) is Verdict.WAITING
    assert w.observe(5.0, lags(raw=412)) is Verdict.STALLED
    message = w.describe(5.0)
    assert message.startswith("not drained: no progress for 5.0 s")
    assert f"{RAW} lag 412 (unchanged for 5.0 s)" in message
    assert f"{IDS} lag 0" in message and f"{PROFILES} lag 0" in message


def test_a_message_going_round_stalls_though_offsets_move() -> None:
    # two profiles handing state to each other: consumed, committed, produced again; the
    # lag moves all the time but never gets lower than it has been
    w = watch(stall=60.0)
    verdicts = []
    for tick in range(0, 300):
        t = tick * 0.25
        reading = lags(profiles={0: 2 + tick % 3, 1: 0}, raw=0, ids=0)
        verdicts.append(w.observe(t, reading))
        if verdicts[-1] is not Verdict.WAITING:
            break
    assert verdicts[-1] is Verdict.STALLED
    assert 60.0 <= t < 61.0
    message = w.describe(t)
    assert f"{PROFILES} lag " in message
    assert "(moving; lowest 2, 60 s ago; partition 0: " in message
    assert "the 2 other inputs" not in message  # two idle topics are named
    assert f"{RAW} lag 0, {IDS} lag 0" in message


def test_a_loop_that_touches_zero_never_drains_and_stalls() -> None:
    w = watch(settle=2.0, stall=20.0)
    t, verdict = 0.0, Verdict.WAITING
    while verdict is Verdict.WAITING:
        verdict = w.observe(t, lags(profiles=int(t) % 2))  # 0, 1, 0, 1 each second
        t += 0.5
    assert verdict is Verdict.STALLED
    message = w.describe(t - 0.5)
    assert message.startswith("not drained: no progress for 20 s (after 20 s): ")
    assert f"{PROFILES} lag 0 (comes and goes: 1 0.5 s ago)" in message


def test_growing_lag_stalls() -> None:
    w = watch(stall=10.0)
    verdict = Verdict.WAITING
    for second in range(20):
        verdict = w.observe(float(second), lags(profiles=10 * second + 5))
        if verdict is not Verdict.WAITING:
            break
    assert verdict is Verdict.STALLED
    assert f"{PROFILES} lag 105 (moving; lowest 5, 10 s ago)" in w.describe(10.0)


def test_the_timeout_ends_even_a_wait_that_progresses() -> None:
    w = watch(stall=60.0, timeout=30.0)
    for second in range(30):
        assert w.observe(float(second), lags(raw=1000 - second)) is Verdict.WAITING
    assert w.observe(30.0, lags(raw=970)) is Verdict.TIMED_OUT
    message = w.describe(30.0)
    assert message.startswith("not drained after 30 s (the timeout): ")
    assert f"{RAW} lag 970 (moving)" in message


def test_failed_readings_neither_end_the_wait_nor_count_as_progress() -> None:
    w = watch(stall=10.0)
    assert w.observe(0.0, lags(raw=5)) is Verdict.WAITING
    for second in range(1, 10):
        assert w.failed(float(second), "coordinator load in progress") is Verdict.WAITING
    assert w.observe(9.5, lags(raw=4)) is Verdict.WAITING  # progress again after the errors
    assert w.failed(19.0, "timed out") is Verdict.WAITING
    assert w.failed(19.5, "timed out") is Verdict.STALLED
    message = w.describe(19.5)
    assert f"{RAW} lag 4" in message
    assert message.endswith("; lag unreadable for the last 0.5 s: timed out")


def test_no_reading_at_all_says_why() -> None:
    w = watch(stall=3.0)
    for second in range(3):
        assert w.failed(float(second), "broker down") is Verdict.WAITING
    assert w.failed(3.0, "broker down") is Verdict.STALLED
    assert w.describe(3.0).endswith(": could not read the consumer lag: broker down")


def test_many_idle_topics_are_counted_and_many_partitions_cut_short() -> None:
    topics = (RAW, IDS, PROFILES, "a", "b", "c")
    w = DrainWatch(topics, settle=1.0, stall=1.0, timeout=60.0, start=0.0)
    reading = {(PROFILES, p): p for p in range(8)}
    w.observe(0.0, reading)
    assert w.observe(1.0, reading) is Verdict.STALLED
    message = w.describe(1.0)
    assert "partition 7: 7, partition 6: 6, partition 5: 5, partition 4: 4 and 3 more" in message
    assert message.endswith("the 5 other inputs at 0")


def test_exception_is_a_timeout_error_with_the_lags_and_the_logs() -> None:
    w = watch(stall=1.0)
    w.observe(0.0, lags(profiles=7))
    w.observe(1.0, lags(profiles=7))
    exc = w.exception(1.0)
    assert isinstance(exc, TimeoutError)
    assert exc.lags == {RAW: 0, IDS: 0, PROFILES: 7}
    assert str(exc) == w.describe(1.0)
    exc.logs = [Path("/tmp/w0.log")]
    assert str(exc).endswith("; worker log: /tmp/w0.log")
    with pytest.raises(TimeoutError, match=r"profiles\.events\.v1 lag 7"):
        raise exc


def test_drain_timeout_alone() -> None:
    exc = DrainTimeout("not drained: x")
    assert str(exc) == "not drained: x" and exc.lags == {}
