"""Measure probabilistic matching in the resolver on the demo traffic (offline, no Kafka).

Generates the demo stream, normalises it, resolves it in order into a fresh
:class:`~scv.domain.graph.DictStore` without and with the matcher, and scores both runs
against the generator's ground truth (pairwise precision/recall, :mod:`scv.connectors.truth`).

    python -m scv.matchdemo --events 20000 --seed 7 [--model PATH] [--upper W]
    python -m scv.matchdemo --train [--save-model PATH]   # fit the model first (EM, no labels)

Training uses only the events' traits (never ``person_id``): candidate pairs share a
blocking key of :func:`scv.domain.matching.blocking.blocking_keys`, and m/u and the prior are fitted
by the same EM as :mod:`scv.matchtrain`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from scv.connectors.demo import generate
from scv.connectors.truth import pairwise_scores
from scv.domain.governance import Rules
from scv.domain.graph import GENERIC, DictStore
from scv.domain.matching.blocking import blocking_keys, soundex
from scv.domain.matching.linker import DEMO_MODEL_PATH, EVENT_COMPARISONS, Linker
from scv.domain.matching.model import FellegiSunterModel
from scv.domain.matching.records import record_from_traits
from scv.domain.model import NormalizedEvent, ident_key
from scv.domain.normalize import InvalidEvent, normalize
from scv.domain.resolver import resolve
from scv.matchtrain import fit_em, fitted_model, level_matrix, random_pair_u

TRAIN_MAX_BLOCK = 200
RANDOM_PAIRS = 200_000


def demo_events(events: int, seed: int) -> tuple[list[NormalizedEvent], dict[str, str]]:
    """Normalised demo events in stream order, and the truth {event_id: person_id}."""
    out: list[NormalizedEvent] = []
    truth: dict[str, str] = {}
    for demo in generate(events, seed):
        try:
            event = normalize(demo.source, demo.value)
        except InvalidEvent:
            continue
        out.append(event)
        if demo.person_id is not None and not demo.malformed:
            truth[event.event_id] = demo.person_id
    return out, truth


def _enough(record: dict[str, str]) -> bool:
    """A training record: at least three of given name, surname, birth date, postcode."""
    core = ("given_name", "surname", "date_of_birth", "postcode")
    return sum(1 for f in core if record.get(f)) >= 3


def _broad_keys(record: dict[str, str]) -> list[str]:
    """Training-only keys (one name each): they bring in enough non-matching pairs for EM
    to tell the two classes apart (the lookup keys alone yield almost only matches)."""
    return [f"{f}:{soundex(record[f])}" for f in ("given_name", "surname") if record.get(f)]


def train_model(
    events: Sequence[NormalizedEvent],
    upper_probability: float = 0.999,
    lower_probability: float = 0.5,
) -> FellegiSunterModel:
    """EM on blocked pairs of the events' trait records (distinct records only)."""
    records = list(
        {
            tuple(sorted(r.items())): r
            for e in events
            if _enough(r := record_from_traits(e.traits))
        }.values()
    )
    blocks: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        for key in [*blocking_keys(record), *_broad_keys(record)]:
            blocks[key].append(i)
    codes: set[tuple[int, int]] = set()
    for members in blocks.values():
        if 2 <= len(members) <= TRAIN_MAX_BLOCK:
            for x, i in enumerate(members):
                for j in members[x + 1 :]:
                    codes.add((min(i, j), max(i, j)))
    pairs = np.array(sorted(codes), dtype=np.int64).reshape(-1, 2)
    levels = level_matrix(EVENT_COMPARISONS, records, pairs)
    m, _, lam = fit_em(levels, [len(c.labels) for c in EVENT_COMPARISONS])
    u = random_pair_u(EVENT_COMPARISONS, records, pairs=RANDOM_PAIRS)
    return fitted_model(
        EVENT_COMPARISONS,
        m,
        u,
        lam,
        upper_probability,
        lower_probability,
        {
            "trained_on": f"scv demo traffic traits ({len(events)} events)",
            "records": len(records),
            "candidate_pairs": len(pairs),
            "method": "EM (unsupervised) on blocked candidate pairs of distinct trait records",
        },
    )


def run(
    events: Sequence[NormalizedEvent], truth: dict[str, str], matcher: Linker | None
) -> dict[str, Any]:
    """Resolve ``events`` in order into a fresh store and score the result."""
    rules = Rules.default()
    store = DictStore()
    anchors: dict[str, str] = {}
    matched = 0
    start = time.perf_counter()
    for event in events:
        res = resolve(event, store, rules, matcher=matcher)
        if res.anchor is not None:
            anchors[event.event_id] = ident_key(res.anchor)
        matched += res.match is not None
    elapsed = time.perf_counter() - start
    assignment: dict[str, str] = {}
    for event_id, key in anchors.items():
        owner = store.get_owner(key)
        if owner is not None and owner != GENERIC:
            assignment[event_id] = owner
    scores = pairwise_scores(truth, assignment)
    out: dict[str, Any] = {
        **scores,
        "profiles": len(store.nodes),
        "us_per_event": round(elapsed / max(len(events), 1) * 1e6, 2),
    }
    if matcher is not None:
        out["probabilistic_links"] = matched
        out["decisions"] = dict(sorted(matcher.stats.items()))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scv.matchdemo", description=__doc__)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model", default=str(DEMO_MODEL_PATH))
    parser.add_argument("--upper", type=float, default=None, help="override the upper weight")
    parser.add_argument("--train", action="store_true", help="fit the model on this traffic")
    parser.add_argument("--save-model", default=None, help="where --train writes the model")
    args = parser.parse_args(argv)

    events, truth = demo_events(args.events, args.seed)
    report: dict[str, Any] = {"events": len(events), "seed": args.seed}
    if args.train:
        model = train_model(events)
        if args.save_model:
            model.save(args.save_model)
        report["model"] = {"trained": True, "upper": model.upper, "lower": model.lower}
    else:
        model = FellegiSunterModel.load(args.model)
        report["model"] = {"path": args.model, "upper": model.upper, "lower": model.lower}
    report["deterministic"] = run(events, truth, None)
    report["probabilistic"] = run(events, truth, Linker(model, args.upper))
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
