"""Pairwise scoring of events and of households: hand-made cases, and agreement with the
O(n²) definition."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scv.connectors.truth import household_scores, pairwise_scores

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


def _brute(
    truth: Mapping[str, str | None], predicted: Mapping[str, str | None]
) -> tuple[int, int, int]:
    """Pairs counted one by one: same cluster in truth (None: alone), same in predicted
    (None or missing: alone), both."""
    true_pairs = predicted_pairs = correct = 0
    for a, b in combinations(sorted(truth), 2):
        same_true = truth[a] is not None and truth[a] == truth[b]
        pa, pb = predicted.get(a), predicted.get(b)
        same_pred = pa is not None and pa == pb
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


# ---- households, over people -----------------------------------------------------------------

HOMES: dict[str, str | None] = {
    "anna": "H1",
    "ben": "H1",
    "carl": "H1",
    "dora": "H2",
    "emil": "H2",
    "fritz": None,
    "greta": None,
}


def test_households_perfect_and_none_is_alone() -> None:
    s = household_scores(HOMES, dict(HOMES))
    assert s["true_pairs"] == s["predicted_pairs"] == s["correct_pairs"] == 4  # 3 + 1
    assert s["household_precision"] == s["household_recall"] == s["household_f1"] == 1.0


def test_two_people_alone_are_not_a_household() -> None:
    """None is a household of one each: fritz and greta, both alone, form no pair; the
    same None in predicted claims nothing."""
    truth: dict[str, str | None] = {"fritz": None, "greta": None}
    s = household_scores(truth, {"fritz": None, "greta": None})
    assert s["true_pairs"] == s["predicted_pairs"] == 0
    assert s["household_precision"] == s["household_recall"] == 1.0
    wrong = household_scores(truth, {"fritz": "X", "greta": "X"})
    assert wrong["predicted_pairs"] == 1 and wrong["correct_pairs"] == 0
    assert wrong["household_precision"] == 0.0 and wrong["household_f1"] == 0.0


def test_households_over_and_under_merge() -> None:
    everyone = household_scores(HOMES, dict.fromkeys(HOMES, "all"))
    assert everyone["predicted_pairs"] == 21 and everyone["correct_pairs"] == 4
    assert everyone["household_recall"] == 1.0
    assert everyone["household_precision"] == pytest.approx(4 / 21)
    # carl missed (alone), emil missing from predicted (alone): 1 of 4 pairs found
    partial = household_scores(HOMES, {"anna": "a", "ben": "a", "carl": None, "dora": "d"})
    assert partial["predicted_pairs"] == partial["correct_pairs"] == 1
    assert partial["household_precision"] == 1.0
    assert partial["household_recall"] == pytest.approx(1 / 4)


def test_households_ignore_people_outside_truth_and_ids_are_opaque() -> None:
    """Only people in the truth count, and a predicted id equal to a person id or a true
    household id means nothing by itself."""
    predicted = {"anna": "fritz", "ben": "fritz", "fritz": "H2", "stranger": "fritz"}
    s = household_scores(HOMES, predicted)
    assert s["predicted_pairs"] == 1 and s["correct_pairs"] == 1
    assert household_scores({}, {})["household_precision"] == 1.0


@given(
    st.dictionaries(
        st.text("abcdefgh", min_size=1, max_size=2), st.sampled_from(["P", "Q", None]), max_size=20
    ),
    st.dictionaries(
        st.text("abcdefgh", min_size=1, max_size=2), st.sampled_from(["w", "x", None]), max_size=20
    ),
)
def test_households_match_brute_force(
    truth: dict[str, str | None], predicted: dict[str, str | None]
) -> None:
    s = household_scores(truth, predicted)
    assert (s["true_pairs"], s["predicted_pairs"], s["correct_pairs"]) == _brute(truth, predicted)
