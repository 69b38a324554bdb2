"""``scv demo`` as a user runs it: its own embedded broker, two workers, probabilistic
matching on, scored summary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from scv.activation.programmes import load_programmes

pytestmark = pytest.mark.integration


def test_demo_command_writes_a_scored_summary(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    cmd = [sys.executable, "-m", "scv.cli", "demo", "--events", "1500", "--seed", "3"]
    cmd += ["--workers", "2", "--cart-window", "2", "--matching", "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    summary = orjson.loads(out.read_text())
    assert orjson.loads(done.stdout[done.stdout.index("{") :]) == summary
    assert summary["events_in"] == 1500
    assert summary["workers"] == 2
    assert summary["matching"] is True  # probabilistic matching on in the resolver
    # The generator injects about 1 % malformed events: all of them, and only them, are rejected.
    assert summary["malformed_in"] > 0
    assert summary["dlq"] == summary["malformed_in"]
    assert summary["events_resolved"] + summary["dlq"] <= 1500
    assert summary["events_resolved"] > 1400
    assert summary["profiles"] > 0 and summary["merges"] > 0
    assert summary["duplicate_actions"] == 0
    assert summary["pairwise_precision"] >= 0.99
    assert summary["pairwise_recall"] >= 0.9
    # the core's two actions and the activation layer's programmes (it runs with the demo)
    programmes = set(load_programmes().names())
    assert set(summary["actions"]) <= {"abandoned_cart", "churn_save", *programmes}
    assert summary["actions"].get("cross_sell", 0) > 0
    assert sum(summary["actions"].values()) > 0
