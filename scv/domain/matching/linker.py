"""Probabilistic linking for the resolver: find the profile an event's traits describe.

Used by :func:`scv.domain.resolver.resolve` only when a matcher is passed (off by default).
When an event's identifiers are all unknown, so that the deterministic walk would create a
new profile, and the event states enough person attributes, :meth:`Linker.find` looks up
candidate profiles through a blocking index kept in the :class:`GraphStore`, scores the
event's record against each candidate's representative record (``ProfileNode.attrs``) with
a Fellegi-Sunter model, and returns the best one if its weight reaches the model's upper
threshold. The resolver then lets that profile join the event's (governed) view.

The blocking index maps a blocking key to *identifier keys*, not profile ids: an identifier
always has a current owner, so merges, splits and retirements need no index maintenance (a
stale entry just resolves to the profile that owns the identifier now, or to nobody). Entries
are added by :meth:`Linker.remember` whenever a profile's attributes change.

Pure module: no Faust, no Kafka.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from scv.domain.graph import GENERIC, GraphStore, ProfileNode
from scv.domain.matching.blocking import soundex
from scv.domain.matching.compare import (
    Comparison,
    DateComparison,
    DigitsComparison,
    ExactComparison,
    StringComparison,
)
from scv.domain.matching.model import FellegiSunterModel
from scv.domain.matching.records import FIELDS, record_from_traits
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

_CORE = ("given_name", "surname", "date_of_birth", "postcode")


def link_keys(record: Mapping[str, str]) -> list[str]:
    """The blocking keys of a matching record (names order-free, by Soundex)."""
    names = sorted({soundex(record[f]) for f in ("given_name", "surname") if record.get(f)} - {""})
    postcode = record.get("postcode")
    dob = record.get("date_of_birth")
    keys: list[str] = []
    for sx in names:
        if postcode:
            keys.append(f"np:{sx}:{postcode}")
        if dob:
            keys.append(f"nd:{sx}:{dob}")
    if postcode and dob:
        keys.append(f"pd:{postcode}:{dob}")
    if len(names) == 2:
        keys.append("nn:" + ":".join(names))
    return keys


def enough(record: Mapping[str, str]) -> bool:
    """Worth matching: at least three of given name, surname, birth date, postcode."""
    return sum(1 for f in _CORE if record.get(f)) >= 3


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


class Linker:
    """A Fellegi-Sunter model applied to profiles through the store's blocking index.

    ``stats`` counts decisions (``match``/``possible``/``non-match``, ``no_candidates``,
    ``too_few_traits``); the resolver adds ``refused`` when governance keeps a match out.
    """

    def __init__(self, model: FellegiSunterModel, upper: float | None = None) -> None:
        self.model = model
        self.upper = model.upper if upper is None else upper
        self.stats: Counter[str] = Counter()

    @classmethod
    def load(cls, path: str | Path = DEMO_MODEL_PATH, upper: float | None = None) -> Linker:
        return cls(FellegiSunterModel.load(path), upper)

    @staticmethod
    def record(event: NormalizedEvent) -> dict[str, str]:
        return record_from_traits(event.traits)

    def find(self, record: Mapping[str, str], store: GraphStore) -> Candidate | None:
        """The profile ``record`` most likely describes, if it clears the lower threshold
        (``decision`` says whether it also clears the upper one)."""
        if not enough(record):
            self.stats["too_few_traits"] += 1
            return None
        seen: dict[str, str] = {}  # profile id -> identifier key that led to it
        for bkey in link_keys(record):
            members = store.get_block(bkey)
            if len(members) > MAX_BLOCK:
                continue
            for ident in members:
                owner = store.get_owner(ident)
                if owner is not None and owner != GENERIC and owner not in seen:
                    seen[owner] = ident
            if len(seen) >= MAX_CANDIDATES:
                break
        best: tuple[float, float, str] | None = None
        found: Candidate | None = None
        for pid, ident in seen.items():
            node = store.get_node(pid)
            if node is None or not node.attrs:
                continue
            weight, parts = self.model.score(record, node.attrs)
            rank = (-weight, node.first_seen, pid)
            if best is None or rank < best:
                rounded = {k: round(v, 3) for k, v in parts.items()}
                best, found = rank, Candidate(node, ident, round(weight, 4), weights=rounded)
        if found is None:
            self.stats["no_candidates"] += 1
            return None
        if found.score >= self.upper:
            self.stats["match"] += 1
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
        """Fill ``node``'s missing attributes from ``record`` and index the result under
        identifier ``key`` (owned by ``node``). True if the node changed."""
        added = False
        for name in FIELDS:
            value = record.get(name)
            if value and name not in node.attrs:
                node.attrs[name] = value
                added = True
        if added:
            for bkey in link_keys(node.attrs):
                if len(store.get_block(bkey)) <= MAX_BLOCK:
                    store.add_block(bkey, key)
        return added
