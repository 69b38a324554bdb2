"""``scv bench accuracy`` on the session's broker: shuffled FEBRL records, matched in the
stream by a model fitted without labels, scored against the true persons."""

from __future__ import annotations

from pathlib import Path

import pytest

from scv.bench.accuracy import run_accuracy
from scv.brokers import Broker

pytestmark = pytest.mark.integration


def test_febrl4_without_ssn_streamed_through_the_pipeline(broker: Broker, tmp_path: Path) -> None:
    """1,500 of the 10,000 records of both files, without the national id: only names,
    birth dates and addresses can link them."""
    report = run_accuracy(
        "febrl4", with_ssn=False, seed=3, limit=1500, bootstrap=broker.bootstrap, work_dir=tmp_path
    )
    assert report["records"] == report["records_resolved"] == 1500
    assert report["dlq"] == 0
    assert report["true_pairs"] > 50  # both copies of a person among the 1,500
    # 105 of the 110 true pairs (109 before matching required an agreeing first name, birth
    # date or national id: FEBRL corrupts both in some copies, which then look like two
    # members of one household; docs/matching.md "Households").
    assert report["precision"] >= 0.99 and report["recall"] >= 0.95
    assert report["decisions"]["match"] > 0
    assert report["candidate_scoring_us"]["p50"] > 0
    assert (tmp_path / "model.json").is_file() and report["model"]["trained_on"] == "febrl4"
