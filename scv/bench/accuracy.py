"""``scv bench accuracy``: FEBRL records streamed through the real pipeline, then scored.

Every record becomes one source event with an opaque customer reference of its own
(:mod:`scv.connectors.febrl`), so records can only come together through the probabilistic
matcher. The events are shuffled, produced to the raw topics of an embedded broker and
processed by ``scv worker`` subprocesses with matching on; the resulting profiles are read
back from ``profiles.v1`` and scored pairwise against the true persons, exactly like the demo.

The model is fitted first on the same records without their labels (EM on blocked candidate
pairs, :func:`scv.matchtrain.train`), as a deployment would fit it on its own data; pass
``model_path`` to stream with a fixed model instead. FEBRL records are duplicate customer
accounts, so the governance rules allow a profile up to ``CUSTOMER_IDS`` customer ids
(the shipped default of one would refuse every duplicate); everything else is the default.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from scv.connectors.febrl import febrl_events
from scv.demo import run_pipeline
from scv.domain.governance import DEFAULT_RULES_PATH
from scv.matchtrain import train

#: Customer ids one profile may own in the benchmark's rules (FEBRL: up to 10 copies).
CUSTOMER_IDS = 20


def benchmark_rules(path: Path) -> Path:
    """The default rules with more customer ids per profile, written to ``path``."""
    rules = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    rules["identifiers"]["customer_id"]["max_per_profile"] = CUSTOMER_IDS
    path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    return path


def run_accuracy(
    dataset: str,
    *,
    with_ssn: bool = True,
    seed: int = 1,
    limit: int | None = None,
    model_path: Path | None = None,
    workers: int = 1,
    bootstrap: str | None = None,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Stream ``dataset`` (its first ``limit`` shuffled records) through the pipeline and
    return precision, recall, F1 and speed."""

    work = work_dir or Path(tempfile.mkdtemp(prefix="scv-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    model_info: dict[str, Any]
    if model_path is None:
        t0 = time.perf_counter()
        model = train(dataset, with_ssn=with_ssn)
        model_path = work / "model.json"
        model.save(model_path)
        model_info = {"trained_on": dataset, "train_seconds": round(time.perf_counter() - t0, 2)}
    else:
        model_info = {"path": str(model_path)}
    summary = run_pipeline(
        febrl_events(dataset, with_ssn=with_ssn, seed=seed, limit=limit),
        name="bench",
        workers=workers,
        bootstrap=bootstrap,
        cart_window_s=None,
        settings={
            "matching": True,
            "matching_model_path": model_path,
            "rules_path": benchmark_rules(work / "rules.yaml"),
        },
        work_dir=work,
    )
    matcher = summary.get("matcher") or [{}]
    return {
        "dataset": dataset,
        "with_ssn": with_ssn,
        "seed": seed,
        "records": summary["events_in"],
        "records_resolved": summary["events_resolved"],
        "profiles": summary["profiles"],
        "precision": round(summary["pairwise_precision"], 5),
        "recall": round(summary["pairwise_recall"], 5),
        "f1": round(summary["pairwise_f1"], 5),
        "true_pairs": summary["true_pairs"],
        "predicted_pairs": summary["predicted_pairs"],
        "records_per_second": summary["events_per_second"],
        "processing_seconds": summary["processing_seconds"],
        "seconds": summary["seconds"],
        "candidate_scoring_us": matcher[0].get("candidate_scoring_us", {}),
        "decisions": matcher[0].get("decisions", {}),
        "dlq": summary["dlq"],
        "workers": workers,
        "model": model_info,
    }
