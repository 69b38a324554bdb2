"""The naive-Faust baseline runs for real and measures what it claims.

A throughput ratio is only honest if the yardstick really did its work: every event was
processed, and in table mode every event really was written to the table. The worker reports
the table's key count and sum of counts after the last event, so both are checked here
against the traffic that was produced.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scv.bench.baseline import demo_messages, run_baseline
from scv.brokers import Broker
from scv.runner import read_topic
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
    )
    assert result["events"] == EVENTS
    assert result["table_writes"] is True
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
