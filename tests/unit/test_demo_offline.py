"""``scv demo --offline``: the demo's traffic through the real stages without a broker.

The run is real (2,000 generated events through ``Pipeline``); where a test needs a check to
fail, it degrades the real scorer's answer instead of hard-coding one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest

import scv.bench.offline
from scv.cli import demo_problems, main
from scv.settings import Settings

#: The broker demo's summary keys that an offline run has as well.
SHARED_KEYS = {
    "events_in",
    "malformed_in",
    "events_resolved",
    "profiles",
    "merges",
    "splits",
    "refused_links",
    "generic_values",
    "dlq",
    "dlq_by_topic",
    "pairwise_precision",
    "pairwise_recall",
    "pairwise_f1",
    "seed",
    "matching",
    "households",
    "profile",
    "linkability",
}


def _offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any], str]:
    out = tmp_path / "summary.json"
    code = main(["demo", "--offline", "--events", "2000", "--json", str(out), *args])
    captured = capsys.readouterr()
    return code, orjson.loads(out.read_bytes()), captured.err


def test_offline_demo_prints_the_demo_summary_and_passes_its_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch, cwd = tmp_path / "tmp", tmp_path / "cwd"
    scratch.mkdir()
    cwd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(cwd)
    code, summary, err = _offline(tmp_path, capsys, "--check")
    assert code == 0, err
    assert set(summary) >= SHARED_KEYS and summary["mode"] == "offline"
    assert "household_values" in summary
    assert summary["events_in"] == 2000 and summary["seed"] == 7
    assert summary["profile"] == "demo"
    assert summary["pairwise_precision"] == 1.0
    assert 0.9 < summary["pairwise_recall"] <= summary["linkability"]["max_pairwise_recall"]
    assert "max_pairwise_recall_personal" in summary["linkability"]
    assert summary["dlq"] == summary["malformed_in"] > 0
    assert not any(key.startswith("_") for key in summary)  # the scorer's internals
    # the RocksDB state lived in a temporary directory that is gone
    assert list(scratch.iterdir()) == [] and list(cwd.iterdir()) == []


def test_offline_check_fails_when_the_scores_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = scv.bench.offline.score

    def merged_two_people(events: Any, settings: Settings) -> dict[str, Any]:
        return real(events, settings) | {"pairwise_precision": 0.99}

    monkeypatch.setattr(scv.bench.offline, "score", merged_two_people)
    code, summary, err = _offline(tmp_path, capsys, "--check")
    assert code == 1
    assert summary["pairwise_precision"] == 0.99
    assert err.splitlines()[-1] == "scv demo: check failed: pairwise_precision 0.99 < 1.0"


def test_offline_realistic_profile_reads_phones_as_german(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = scv.bench.offline.score
    regions = []

    def spy(events: Any, settings: Settings) -> dict[str, Any]:
        regions.append(settings.default_region)
        return real(events, settings)

    monkeypatch.setattr(scv.bench.offline, "score", spy)
    code, summary, _ = _offline(tmp_path, capsys, "--profile", "realistic")
    assert code == 0 and regions == ["DE"]
    assert summary["profile"] == "realistic" and summary["mode"] == "offline"
    personal = summary["linkability"]["max_pairwise_recall_personal"]
    assert 0.5 < summary["pairwise_recall"] <= personal + 0.05


def test_offline_refuses_broker_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--offline", "--workers", "2"]) == 2
    assert main(["demo", "--offline", "--bootstrap", "k:9092"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("--offline") == 2


def test_offline_check_skips_only_the_duplicate_actions() -> None:
    """An offline run sends no actions: nothing to deliver twice; the rest still apply."""
    good = {
        "mode": "offline",
        "pairwise_precision": 1.0,
        "dlq": 20,
        "malformed_in": 20,
        "events_resolved": 1955,
        "events_in": 2000,
        "profiles": 175,
    }
    assert demo_problems(good) == []
    assert demo_problems(good | {"dlq": 21, "profiles": 0}) == [
        "dlq 21 != malformed_in 20",
        "only 1955 events resolved",
    ]
