"""The Fellegi-Sunter model: m/u probabilities per comparison level -> log2 match weights.

For each comparison level, ``m`` is P(level | same person) and ``u`` is P(level | different
people). A pair's evidence is the sum of ``log2(m/u)`` over its comparisons: positive when the
level is more typical of matches. Comparisons at ``MISSING`` add 0 because a missing value
tells nothing either way. Weights are precomputed once, so scoring a pair is a handful of
string comparisons plus table look-ups.

``upper``/``lower`` are thresholds on that summed weight (the prior is *not* included, so the
thresholds stay meaningful if a caller's base rate differs): >= upper links, < lower does not,
in between is for review.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scv.domain.matching.compare import MISSING, Comparison, Record, comparison_from_dict

MODEL_VERSION = 1
"""Bumped when the JSON layout changes; ``from_json`` refuses other versions."""

_EPS = 1e-6
"""Floor for m and u so that an unseen level gives a large, finite weight."""


@dataclass(frozen=True, slots=True)
class ComparisonWeights:
    """One comparison with its per-level m and u probabilities."""

    comparison: Comparison
    m: tuple[float, ...]
    u: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.comparison.labels)
        if len(self.m) != n or len(self.u) != n:
            raise ValueError(f"{self.comparison.name}: need {n} m and u values")

    @property
    def weights(self) -> tuple[float, ...]:
        """log2(m/u) per level."""
        return tuple(
            math.log2(max(m, _EPS) / max(u, _EPS)) for m, u in zip(self.m, self.u, strict=True)
        )


@dataclass(frozen=True)
class FellegiSunterModel:
    """A trained model; immutable so that a scorer can be shared between threads."""

    comparisons: tuple[ComparisonWeights, ...]
    prior: float
    """P(match) among the candidate pairs the model was trained on."""
    upper: float
    lower: float
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Look-up tables built once: (comparison, weights per level).
        object.__setattr__(
            self, "_table", tuple((cw.comparison, cw.weights) for cw in self.comparisons)
        )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(cw.comparison.name for cw in self.comparisons)

    def weight_of_levels(self, levels: Sequence[int]) -> float:
        """Summed weight for precomputed levels (training/evaluation in bulk)."""
        table: tuple[tuple[Comparison, tuple[float, ...]], ...] = self._table  # type: ignore[attr-defined]
        total = 0.0
        for (_, weights), level in zip(table, levels, strict=True):
            if level != MISSING:
                total += weights[level]
        return total

    def score(self, a: Record, b: Record) -> tuple[float, dict[str, float]]:
        """Summed match weight of a pair and the weight each attribute contributed."""
        table: tuple[tuple[Comparison, tuple[float, ...]], ...] = self._table  # type: ignore[attr-defined]
        parts: dict[str, float] = {}
        total = 0.0
        for comparison, weights in table:
            level = comparison.level(a, b)
            w = 0.0 if level == MISSING else weights[level]
            parts[comparison.name] = w
            total += w
        return total, parts

    def max_weight(self, record: Record) -> float:
        """The largest weight ``record`` could reach against any other record: the best
        level of every comparison it has a value for. Below the upper threshold the record
        can never link, however well the rest agrees."""
        table: tuple[tuple[Comparison, tuple[float, ...]], ...] = self._table  # type: ignore[attr-defined]
        return sum(
            max(0.0, *weights)
            for comparison, weights in table
            if comparison.prepare(record.get(comparison.field)) is not None
        )

    def probability(self, weight: float) -> float:
        """Posterior P(match) for a summed weight, using the training prior."""
        logit = weight + math.log2(self.prior / (1.0 - self.prior))
        if logit > 60:
            return 1.0
        return 1.0 - 1.0 / (1.0 + 2.0**logit)

    def decide(self, weight: float) -> str:
        """ "match", "possible" (clerical review) or "non-match"."""
        if weight >= self.upper:
            return "match"
        if weight >= self.lower:
            return "possible"
        return "non-match"

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": MODEL_VERSION,
            "kind": "fellegi-sunter",
            "prior": self.prior,
            "upper": self.upper,
            "lower": self.lower,
            "meta": dict(self.meta),
            "comparisons": [
                {
                    **cw.comparison.to_dict(),
                    "labels": list(cw.comparison.labels),
                    "m": list(cw.m),
                    "u": list(cw.u),
                    "weights": [round(w, 4) for w in cw.weights],
                }
                for cw in self.comparisons
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FellegiSunterModel:
        version = data.get("version")
        if version != MODEL_VERSION:
            raise ValueError(f"unsupported model version {version!r} (expected {MODEL_VERSION})")
        comparisons = []
        for entry in data["comparisons"]:
            spec = {k: v for k, v in entry.items() if k not in ("labels", "m", "u", "weights")}
            comparisons.append(
                ComparisonWeights(
                    comparison_from_dict(spec),
                    m=tuple(float(x) for x in entry["m"]),
                    u=tuple(float(x) for x in entry["u"]),
                )
            )
        return cls(
            comparisons=tuple(comparisons),
            prior=float(data["prior"]),
            upper=float(data["upper"]),
            lower=float(data["lower"]),
            meta=dict(data.get("meta", {})),
        )

    @classmethod
    def from_json(cls, text: str) -> FellegiSunterModel:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> FellegiSunterModel:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


DEFAULT_MODEL_PATH = Path(__file__).with_name("model.febrl.json")
"""The model trained on FEBRL data shipped with the package."""
