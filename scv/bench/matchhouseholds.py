"""Does probabilistic matching merge household members? Generated traffic, offline.

``python -m scv.bench.matchhouseholds [--events 20000] [--seed 7]`` runs three traffics
through the real stages (:func:`scv.bench.offline.score`, no broker) with ``SCV_MATCHING`` off
and on: the realistic profile (region DE, households of its own), the demo profile with half
the people in households (region GB) and the plain demo. Per run: pairwise precision and
recall, and the false pairs (events of two true people on one profile), of them between
members of one household. With matching on, also the probabilistic links whose two ends
belong to different true people (``false_links``; ``household_links``: of one household) and
the false pairs matching causes (together with it, apart without). ``linkability`` gives the
deterministic ceilings. One JSON line per traffic.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import orjson

import scv.streams.resolve as resolve_stage
from scv.bench.offline import score
from scv.connectors.demo import DemoEvent, _identifiers, generate, linkability
from scv.domain.model import LinkReason
from scv.settings import Settings

START = 1_790_000_000.0


@contextmanager
def probabilistic_links() -> Iterator[list[tuple[str, LinkReason]]]:
    """Every probabilistic link the resolver makes meanwhile: (event id, reason)."""
    found: list[tuple[str, LinkReason]] = []
    inner = resolve_stage.resolve

    def spy(event: Any, store: Any, rules: Any, matcher: Any = None) -> Any:
        res = inner(event, store, rules, matcher)
        if res.match is not None:
            found.append((event.event_id, res.match))
        found.extend(
            (event.event_id, m.reason) for m in res.merges if m.reason.rule == "probabilistic"
        )
        return res

    resolve_stage.resolve = spy
    try:
        yield found
    finally:
        resolve_stage.resolve = inner


def _false_pairs(
    assigned: Mapping[str, Any], truth: Mapping[str, str], home: Mapping[str, str | None]
) -> tuple[int, int]:
    """False pairs among ``assigned`` clusters (event -> cluster), and of them in a household.

    A cluster may be a (profile, other label) tuple: then only people whose labels differ
    count, which is how pairs together with matching and apart without it are found."""
    clusters: defaultdict[Any, Counter[tuple[str, Any]]] = defaultdict(Counter)
    for event_id, cluster in assigned.items():
        if event_id in truth:
            profile, label = cluster if isinstance(cluster, tuple) else (cluster, None)
            clusters[profile][(truth[event_id], label)] += 1
    total = household = 0
    for counts in clusters.values():
        items = list(counts.items())
        for i, ((person_a, label_a), n_a) in enumerate(items):
            for (person_b, label_b), n_b in items[i + 1 :]:
                if person_a == person_b or (label_a is not None and label_a == label_b):
                    continue
                total += n_a * n_b
                if home.get(person_a) and home.get(person_a) == home.get(person_b):
                    household += n_a * n_b
    return total, household


def measure(events: Sequence[DemoEvent], region: str) -> dict[str, Any]:
    """Matching off and on over ``events``: see the module docstring."""
    truth = {e.event_id: e.person_id for e in events if e.person_id and e.event_id}
    home = {e.person_id: e.household_id for e in events if e.person_id}
    users: defaultdict[str, set[str]] = defaultdict(set)
    for e in events:
        if e.person_id and not e.malformed:
            for _, ident in _identifiers(orjson.loads(e.value), e.source, region):
                users[ident].add(e.person_id)
    ceilings = linkability(events, region=region)
    report: dict[str, Any] = {
        "events": len(events),
        "max_recall": round(ceilings["max_pairwise_recall"], 5),
        "max_recall_personal": round(ceilings["max_pairwise_recall_personal"], 5),
    }
    runs: dict[bool, dict[str, Any]] = {}
    for matching in (False, True):
        settings = Settings(
            topic_prefix="", stage_partitions=4, default_region=region, matching=matching
        )
        with probabilistic_links() as links:
            run = score(list(events), settings)
        runs[matching] = run
        false, in_home = _false_pairs(run["_assigned"], truth, home)
        out = {
            "precision": round(run["pairwise_precision"], 5),
            "recall": round(run["pairwise_recall"], 5),
            "false_pairs": false,
            "false_household_pairs": in_home,
        }
        if matching:
            wrong = household = 0
            for event_id, reason in links:
                me = truth.get(event_id)
                for key in reason.identifiers[1:]:
                    whose = users.get(key) or (
                        {truth.get(key[8:], "")} if key.startswith("contact:") else set()
                    )
                    if me and whose and me not in whose:
                        wrong += 1
                        household += any(
                            home.get(me) and home.get(me) == home.get(p) for p in whose
                        )
            out.update(links=len(links), false_links=wrong, household_links=household)
        report["on" if matching else "off"] = out
    off = runs[False]["_assigned"]
    paired = {e: (p, off.get(e) or ("single", e)) for e, p in runs[True]["_assigned"].items()}
    caused, caused_home = _false_pairs(paired, truth, home)
    report["on"].update(
        false_pairs_by_matching=caused, false_household_pairs_by_matching=caused_home
    )
    return report


TRAFFICS: dict[str, tuple[dict[str, Any], str]] = {
    "realistic": ({"profile": "realistic"}, "DE"),
    "demo-households": ({"households": 0.5}, "GB"),
    "demo": ({}, "GB"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scv.bench.matchhouseholds", description=__doc__
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("traffic", nargs="*", help=f"some of {', '.join(TRAFFICS)} (default all)")
    args = parser.parse_args(argv)
    for name in args.traffic or TRAFFICS:
        options, region = TRAFFICS[name]
        events = list(generate(args.events, args.seed, start_ts=START, **options))
        print(json.dumps({"traffic": name, **measure(events, region)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
