"""The naive peers (a Faust agent, a Quix Streams app) run for real and measure what they claim.

A throughput ratio is only honest if the yardstick really did its work: every event was
processed, and every event really was written to the table or state. The Faust worker reports
its table's key count and sum of counts after the last event; the Quix app's counts are read
back from its changelog on the broker. Both are checked here against the traffic that was
produced.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scv.bench.baseline import demo_messages, run_baseline
from scv.bench.quix import QUIXSTREAMS_VERSION, QuixSetupError, run_quix
from scv.bench.throughput import _naive_quix
from scv.brokers import Broker
from scv.runner import latest_by_key, read_topic
from scv.settings import Settings

pytestmark = pytest.mark.integration

EVENTS = 3000


@pytest.fixture(scope="module")
def messages() -> list[tuple[bytes | None, bytes]]:
    return demo_messages(EVENTS)


def test_table_mode_writes_one_count_per_event(
    broker: Broker, tmp_path: Path, messages: list[tuple[bytes | None, bytes]]
) -> None:
    result = run_baseline(
        broker.bootstrap,
        messages,
        table_writes=True,
        work_dir=tmp_path,
        timeout=30,
        session_timeout_s=2.0,
        broker_pids=broker.pids,
    )
    assert result["events"] == EVENTS
    assert result["table_writes"] is True
    assert result["cpu_us_per_event"]["app"] > 0 and result["cpu_us_per_event"]["broker"] >= 0
    assert result["events_per_second"] > 0
    assert result["seconds"] > 0
    assert result["drained_seconds"] >= result["seconds"]
    # One write per event: the counts add up to the events, one key per distinct message key.
    assert result["table_sum"] == EVENTS
    assert result["table_keys"] == len({key for key, _ in messages})
    # Demo traffic carries about 1 % malformed events; they are decoded (and fail) too.
    assert 0 < result["decode_errors"] < EVENTS * 0.05
    assert result["peak_rss_mb"] is not None and result["peak_rss_mb"] > 0
    # ... and every write reached the broker as a changelog record.
    changelog = read_topic(Settings(bootstrap_servers=broker.bootstrap), result["changelog_topic"])
    assert len(changelog) == EVENTS


def test_decode_only_mode_makes_no_table_writes(
    broker: Broker, tmp_path: Path, messages: list[tuple[bytes | None, bytes]]
) -> None:
    result = run_baseline(
        broker.bootstrap,
        messages,
        table_writes=False,
        work_dir=tmp_path,
        timeout=30,
        session_timeout_s=2.0,
    )
    assert result["events"] == EVENTS
    assert result["table_writes"] is False
    assert result["events_per_second"] > 0
    assert "table_sum" not in result


def test_quix_app_makes_one_state_write_per_event(
    broker: Broker, tmp_path: Path, messages: list[tuple[bytes | None, bytes]]
) -> None:
    """Quix Streams with its defaults (changelog on, a checkpoint every 5 s): every event is
    decoded and counted under its key in RocksDB state. Its changelog holds the latest count
    per key after each checkpoint, so the counts read back from the broker must add up to the
    events. Runs on tansu too: the input topic spells out its retention (quix.py says why)."""
    result = run_quix(
        broker.bootstrap,
        messages,
        work_dir=tmp_path,
        timeout=120,
        session_timeout_s=2.0,
        broker_pids=broker.pids,
    )
    keys = {key for key, _ in messages}
    assert result["quixstreams"] == QUIXSTREAMS_VERSION
    assert result["events"] == result["state_writes"] == EVENTS
    assert 0 < result["decode_errors"] < EVENTS * 0.05
    assert result["changelog_sum"] == EVENTS
    assert result["changelog_keys"] == len(keys)
    # at least one changelog message per key (one per key per checkpoint), at most one per write
    assert len(keys) <= result["changelog_messages"] <= EVENTS
    assert 0 < result["processing_seconds"] <= result["seconds"] <= result["drained_seconds"]
    assert result["events_per_second"] > 0 and result["peak_rss_mb"] > 0
    assert result["cpu_us_per_event"]["app"] > 0
    # read it back here too: the changelog's last count per key is the key's share of events
    changelog = read_topic(Settings(bootstrap_servers=broker.bootstrap), result["changelog_topic"])
    counts = {key: int(value) for key, value in latest_by_key(changelog).items()}
    per_key: dict[bytes, int] = {}
    for key, _ in messages:
        assert key is not None
        per_key[key] = per_key.get(key, 0) + 1
    assert sorted(counts.values()) == sorted(per_key.values())


def test_a_quix_peer_that_cannot_run_is_reported_not_raised(
    broker: Broker, tmp_path: Path, messages: list[tuple[bytes | None, bytes]]
) -> None:
    """The bench goes on without the peer and says why: not installable, or failing."""
    missing = tmp_path / "no-such-python"
    failed = _naive_quix(
        broker.bootstrap, messages[:50], python=str(missing), work_dir=tmp_path, broker_pids=[]
    )
    assert failed["not_run"].startswith("FileNotFoundError") and str(missing) in failed["not_run"]
    why = QuixSetupError("could not install quixstreams==3.28.1: no network")
    skipped = _naive_quix(
        broker.bootstrap, messages[:50], python=why, work_dir=tmp_path, broker_pids=[]
    )
    assert skipped == {"not_run": str(why)}
