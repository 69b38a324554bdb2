"""Probabilistic linking for the resolver: find the profile an event's traits describe.

Used by :func:`scv.domain.resolver.resolve` only when a matcher is passed (off by default).
When an event's identifiers are all unknown, so that the deterministic walk would create a
new profile, and the event states enough person attributes, :meth:`Linker.find` looks up
candidate profiles through a blocking index kept in the :class:`GraphStore`, scores the
event's record against each candidate's records with a Fellegi-Sunter model, and returns the
best one if its weight reaches the model's upper threshold (with any other profile that
reaches it too). The resolver then lets those profiles join the event's (governed) view.

A profile keeps one matching record per identifier that stated attributes
(``ProfileNode.records``), and a candidate scores as its best-agreeing record.

The blocking index maps a blocking key to *identifier keys*, not profile ids: an identifier
always has a current owner, so merges, splits and retirements need no index maintenance (a
stale entry just resolves to the profile that owns the identifier now, or to nobody). Entries
are added by :meth:`Linker.remember` whenever a profile's attributes change.

Pure module: no Faust, no Kafka.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from time import perf_counter_ns

from scv.domain.graph import GENERIC, GraphStore, ProfileNode
from scv.domain.matching.blocking import blocking_keys
from scv.domain.matching.compare import (
    PERSON_FIELDS,
    Comparison,
    DateComparison,
    DigitsComparison,
    ExactComparison,
    StringComparison,
    names_a_person,
)
from scv.domain.matching.model import FellegiSunterModel
from scv.domain.matching.records import record_from_traits
from scv.domain.model import NormalizedEvent

#: The comparisons for event traits (UK postcodes are alphanumeric: compared exactly).
EVENT_COMPARISONS: tuple[Comparison, ...] = (
    StringComparison("given_name", "given_name", swap_field="surname"),
    StringComparison("surname", "surname", swap_field="given_name"),
    DateComparison("date_of_birth", "date_of_birth"),
    DigitsComparison("street_number", "street_number"),
    StringComparison("address_1", "address_1", ignore_spaces=True),
    StringComparison("suburb", "suburb", ignore_spaces=True),
    ExactComparison("postcode", "postcode"),
)

#: The model trained (EM, no labels) on the demo traffic's own traits: ``scv.matchdemo``.
DEMO_MODEL_PATH = Path(__file__).with_name("model.demo.json")

#: A blocking key shared by more identifiers than this is not extended (nor worth scoring).
MAX_BLOCK = 50
#: At most this many candidate profiles are scored per event.
MAX_CANDIDATES = 20
#: A profile keeps (and a candidate is scored on) at most this many distinct records: one per
#: identifier that stated attributes, oldest first. Bounds the work per candidate.
MAX_RECORDS = 16
#: How many recent per-candidate scoring times :attr:`Linker.timings` keeps.
TIMINGS = 10_000


@dataclass(slots=True)
class Candidate:
    """The best-scoring profile for an event, and the identifier that led to it."""

    node: ProfileNode
    key: str
    score: float
    #: "match" (at or above the upper threshold) or "possible" (between the thresholds).
    decision: str = "match"
    #: The weight each attribute contributed: the explanation of the score.
    weights: dict[str, float] = field(default_factory=dict)
    #: Other profiles at or above the upper threshold, best first: the same person seen
    #: before under records that did not match each other. They join too.
    also: list[Candidate] = field(default_factory=list)


class Linker:
    """A Fellegi-Sunter model applied to profiles through the store's blocking index.

    ``stats`` counts decisions (``match``/``possible``/``non-match``, ``no_candidates``,
    ``too_few_traits``) and ``household``: a candidate none of whose records agrees with the
    event on a person-level attribute (first name, birth date, national id), so that it is
    not scored at all (:func:`~scv.domain.matching.compare.names_a_person`). The resolver
    adds ``refused`` when governance keeps a match out.
    """

    def __init__(self, model: FellegiSunterModel, upper: float | None = None) -> None:
        self.model = model
        self.upper = model.upper if upper is None else upper
        #: The model's comparisons of person-level attributes (:func:`names_a_person`).
        self.person = tuple(
            cw.comparison for cw in model.comparisons if cw.comparison.field in PERSON_FIELDS
        )
        self.stats: Counter[str] = Counter()
        #: Nanoseconds spent scoring each candidate profile (the last ``TIMINGS`` of them).
        self.timings: deque[int] = deque(maxlen=TIMINGS)

    @classmethod
    def load(cls, path: str | Path = DEMO_MODEL_PATH, upper: float | None = None) -> Linker:
        return cls(FellegiSunterModel.load(path), upper)

    @staticmethod
    def record(event: NormalizedEvent) -> dict[str, str]:
        return record_from_traits(event.traits)

    def worth(self, record: Mapping[str, str]) -> bool:
        """Could ``record`` reach the review threshold against anyone? (If not, it names
        too little of a person to match or to be matched.)"""
        return bool(record) and self.model.max_weight(record) >= min(self.upper, self.model.lower)

    def find(
        self, record: Mapping[str, str], store: GraphStore, exclude: str | None = None
    ) -> Candidate | None:
        """The profile ``record`` most likely describes, if it clears the lower threshold
        (``decision`` says whether it also clears the upper one); never ``exclude``."""
        if not self.worth(record):
            self.stats["too_few_traits"] += 1
            return None
        seen: dict[str, str] = {}  # profile id -> identifier key that led to it
        for bkey in blocking_keys(record):
            members = store.get_block(bkey)
            if len(members) > MAX_BLOCK:
                continue
            for ident in members:
                owner = store.get_owner(ident)
                if owner is not None and owner not in (GENERIC, exclude) and owner not in seen:
                    seen[owner] = ident
            if len(seen) >= MAX_CANDIDATES:
                break
        scored: list[tuple[tuple[float, float, str], Candidate]] = []
        score = self.model.score
        person = self.person
        for pid, ident in seen.items():
            node = store.get_node(pid)
            if node is None or not node.records:
                continue
            t0 = perf_counter_ns()
            # The candidate's best-agreeing record speaks for it: any one of a person's
            # records may be the one this event repeats (batch linkers get the same effect
            # from transitive closure). A record that agrees on no person-level attribute
            # is another member of the household (or says too little): it never speaks.
            best = max(
                (
                    score(record, other)
                    for other in islice(node.records.values(), MAX_RECORDS)
                    if names_a_person(person, record, other)
                ),
                key=lambda scored: scored[0],
                default=None,
            )
            self.timings.append(perf_counter_ns() - t0)
            if best is None:
                self.stats["household"] += 1
                continue
            weight, parts = best
            rounded = {k: round(v, 3) for k, v in parts.items()}
            cand = Candidate(node, ident, round(weight, 4), weights=rounded)
            scored.append(((-weight, node.first_seen, pid), cand))
        if not scored:
            self.stats["no_candidates"] += 1
            return None
        scored.sort(key=lambda ranked: ranked[0])
        found = scored[0][1]
        if found.score >= self.upper:
            self.stats["match"] += 1
            found.also = [c for _, c in scored[1:] if c.score >= self.upper]
            return found
        if found.score >= self.model.lower:
            self.stats["possible"] += 1
            found.decision = "possible"  # for a person to decide (identity.review.v1)
            return found
        self.stats["non-match"] += 1
        return None

    def remember(
        self, record: Mapping[str, str], node: ProfileNode, key: str, store: GraphStore
    ) -> bool:
        """File ``record`` on ``node`` as identifier ``key``'s record (``key`` is owned by
        ``node``) and index it. A later event of the same identifier fills in fields its
        record lacks; a record equal to another kept one adds nothing. True if ``node``
        changed."""
        kept = node.records.get(key)
        if kept is None:
            if not record or len(node.records) >= MAX_RECORDS:
                return False
            if any(record == other for other in node.records.values()):
                return False
            kept = node.records[key] = {}
        added = {name: value for name, value in record.items() if name not in kept}
        if not added:
            return False
        kept.update(added)
        for bkey in blocking_keys(kept):
            if len(store.get_block(bkey)) <= MAX_BLOCK:
                store.add_block(bkey, key)
        return True
