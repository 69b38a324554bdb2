"""Pairwise scoring: hand-made cases, and agreement with the O(n²) definition."""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scv.connectors.truth import pairwise_scores

TRUTH = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "b2": "B", "c1": "C"}


def test_perfect() -> None:
    predicted = {k: f"profile-{v}" for k, v in TRUTH.items()}
    s = pairwise_scores(TRUTH, predicted)
    assert s["true_pairs"] == s["predicted_pairs"] == s["correct_pairs"] == 4
    assert s["pairwise_precision"] == s["pairwise_recall"] == s["pairwise_f1"] == 1.0


def test_over_merge_costs_precision() -> None:
    predicted = dict.fromkeys(TRUTH, "everyone")
    s = pairwise_scores(TRUTH, predicted)
    assert s["predicted_pairs"] == 15 and s["correct_pairs"] == 4
    assert s["pairwise_recall"] == 1.0
    assert s["pairwise_precision"] == pytest.approx(4 / 15)


def test_under_merge_costs_recall() -> None:
    predicted = {"a1": "x", "a2": "x", "a3": "y", "b1": "z", "b2": "w", "c1": "v"}
    s = pairwise_scores(TRUTH, predicted)
    assert s["predicted_pairs"] == s["correct_pairs"] == 1
    assert s["pairwise_precision"] == 1.0
    assert s["pairwise_recall"] == pytest.approx(1 / 4)
    assert s["pairwise_f1"] == pytest.approx(2 * 0.25 / 1.25)


def test_missing_predictions_are_singletons_and_extra_ids_ignored() -> None:
    predicted = {"a1": "x", "a2": "x", "junk": "x", "malformed": "x"}
    s = pairwise_scores(TRUTH, predicted)
    assert s["predicted_pairs"] == 1 and s["correct_pairs"] == 1
    assert s["pairwise_recall"] == pytest.approx(1 / 4)


def test_no_predicted_pairs_means_precision_one() -> None:
    s = pairwise_scores(TRUTH, {})
    assert s["pairwise_precision"] == 1.0 and s["pairwise_recall"] == 0.0
    assert s["pairwise_f1"] == 0.0
    empty = pairwise_scores({}, {})
    assert empty["pairwise_precision"] == empty["pairwise_recall"] == 1.0


def _brute(truth: dict[str, str], predicted: dict[str, str]) -> tuple[int, int, int]:
    ids = sorted(truth)
    true_pairs = predicted_pairs = correct = 0
    for a, b in combinations(ids, 2):
        same_true = truth[a] == truth[b]
        same_pred = a in predicted and b in predicted and predicted[a] == predicted[b]
        true_pairs += same_true
        predicted_pairs += same_pred
        correct += same_true and same_pred
    return true_pairs, predicted_pairs, correct


@given(
    st.dictionaries(
        st.text("abcdefgh", min_size=1, max_size=3), st.sampled_from("PQRS"), max_size=25
    ),
    st.dictionaries(
        st.text("abcdefgh", min_size=1, max_size=3), st.sampled_from("wxyz"), max_size=25
    ),
)
def test_matches_brute_force(truth: dict[str, str], predicted: dict[str, str]) -> None:
    s = pairwise_scores(truth, predicted)
    true_pairs, predicted_pairs, correct = _brute(truth, predicted)
    assert (s["true_pairs"], s["predicted_pairs"], s["correct_pairs"]) == (
        true_pairs,
        predicted_pairs,
        correct,
    )
    assert s["pairwise_precision"] == (correct / predicted_pairs if predicted_pairs else 1.0)
    assert s["pairwise_recall"] == (correct / true_pairs if true_pairs else 1.0)
    assert 0.0 <= s["pairwise_f1"] <= 1.0
