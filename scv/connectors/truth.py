"""Score a resolver's clustering of events against the generator's ground truth.

Pairwise precision/recall is the usual entity-resolution measure: every pair of events put in
one profile is a predicted link, every pair produced by one person a true link. Counting pairs
one by one is O(n²) and useless at a million events, so the counts come from cluster sizes:
the pairs inside a group of ``n`` are ``n choose 2``, and the correct pairs are the pairs inside
each (true cluster, predicted cluster) cell of the contingency table. One pass, O(n).
The same counting scores households over people (:func:`household_scores`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping

__all__ = ["household_scores", "pairwise_scores"]


def _pairs(sizes: Iterable[int]) -> int:
    return sum(n * (n - 1) // 2 for n in sizes)


def pairwise_scores(truth: Mapping[str, str], predicted: Mapping[str, str]) -> dict[str, float]:
    """Pairwise precision, recall and F1 of ``predicted`` against ``truth``.

    Both map event id → cluster id (person id; final profile id). Only event ids in ``truth``
    count (malformed and junk-only events have no truth and are ignored). An event missing from
    ``predicted`` — or predicted as ``None`` — is a singleton: it was not attached to anyone,
    which costs recall but never precision. With no predicted pairs precision is 1.0 (nothing
    claimed, nothing wrong); with no true pairs recall is 1.0.
    """
    clusters = (
        # A tagged tuple keeps singletons apart from any real profile id.
        (person, ("single", event_id) if profile is None else ("profile", profile))
        for event_id, person in truth.items()
        for profile in (predicted.get(event_id),)
    )
    return _scores(clusters, "pairwise")


def household_scores(
    truth: Mapping[str, str | None], predicted: Mapping[str, str | None]
) -> dict[str, float]:
    """Pairwise precision, recall and F1 of households, over *people*.

    ``truth`` maps person id → true household id, or None for someone living alone;
    ``predicted`` person id → predicted household id or None. A pair of people is a link
    when both are put in one household; None (and a person missing from ``predicted``) is a
    household of one, so it forms no pair — saying nobody lives together costs recall, never
    precision. Only people in ``truth`` count. O(n) from cluster sizes, as
    :func:`pairwise_scores`.
    """
    clusters = (
        # Tagged tuples keep people alone apart from each other and from real household ids.
        (
            ("alone", person) if home is None else ("household", home),
            ("alone", person) if guess is None else ("household", guess),
        )
        for person, home in truth.items()
        for guess in (predicted.get(person),)
    )
    return _scores(clusters, "household")


def _scores(clusters: Iterable[tuple[Hashable, Hashable]], name: str) -> dict[str, float]:
    """Precision, recall and F1 of (true cluster, predicted cluster) per item, from the
    contingency table's cell sizes (one pass)."""
    true_sizes: Counter[Hashable] = Counter()
    pred_sizes: Counter[Hashable] = Counter()
    cells: Counter[tuple[Hashable, Hashable]] = Counter()
    for true_cluster, pred_cluster in clusters:
        true_sizes[true_cluster] += 1
        pred_sizes[pred_cluster] += 1
        cells[(true_cluster, pred_cluster)] += 1
    true_pairs = _pairs(true_sizes.values())
    predicted_pairs = _pairs(pred_sizes.values())
    correct_pairs = _pairs(cells.values())
    precision = correct_pairs / predicted_pairs if predicted_pairs else 1.0
    recall = correct_pairs / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        f"{name}_precision": precision,
        f"{name}_recall": recall,
        f"{name}_f1": f1,
        "true_pairs": true_pairs,
        "predicted_pairs": predicted_pairs,
        "correct_pairs": correct_pairs,
    }
