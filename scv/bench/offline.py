"""Accuracy without a broker: generated traffic through the real stages, scored in seconds.

``scv demo`` proves accuracy end to end on a broker, which takes a minute per run; tuning
identity rules against realistic traffic needs many runs. This runs the same stages
(``Pipeline`` with RocksDB tables) over a :class:`~scv.bench.loopback.LoopBack` in
event-time batches, keeps what the pipeline publishes (``profiles.v1``, the routed events of
``profiles.events.v1``, ``households.v1`` when present, the DLQs) and scores it against the
generator's truth exactly as the demo does: an event belongs to the live profile that owns
its anchor identifier now.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from scv.bench.loopback import LoopBack
from scv.connectors.demo import DemoEvent
from scv.connectors.truth import household_scores, pairwise_scores
from scv.settings import Settings
from scv.streams.dlq import LocalMsg
from scv.streams.worker import Pipeline
from scv.topics import Topics


class _Tee(LoopBack):
    """A loop-back that also keeps every message of the topics a reader would consume."""

    def __init__(self, partitions: int, kept: Iterable[str]) -> None:
        super().__init__(partitions)
        self.kept: dict[str, list[tuple[bytes | None, bytes | None]]] = {t: [] for t in kept}

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, *args: Any, **kw: Any
    ) -> None:
        if topic in self.kept:
            self.kept[topic].append((key, value))
        super().send(topic, key, value, *args, **kw)


def run_offline(
    events: list[DemoEvent], settings: Settings, batch: int = 500
) -> dict[str, list[tuple[bytes | None, bytes | None]]]:
    """Feed ``events`` (in order) through fresh stages; what they published, per topic."""
    topics = Topics(settings)
    dlqs = [topics.dlq(t) for t in topics.dead_lettered]
    kept = (
        topics.profiles,
        topics.profile_events,
        topics.merges,
        topics.households,
        topics.audit,
        *dlqs,
    )
    sink = _Tee(settings.stage_partitions, kept)
    pipeline = Pipeline(settings, sink, changelogs=False)
    for topic, tables in pipeline.tables_of.items():
        for p in range(tables[0].partitions):
            pipeline.open(topic, p)
    raw = [LocalMsg(topics.raw(ev.source), ev.value, ev.key, 0, i) for i, ev in enumerate(events)]
    internal = (topics.identity_events, topics.profile_events)
    was = logging.root.manager.disable
    logging.disable(logging.WARNING)  # the generator's malformed messages
    try:
        for start in range(0, len(raw), batch):
            pipeline.process(raw[start : start + batch])
            while sink.waiting(internal):
                for topic in internal:
                    chunk = sink.take(topic)
                    if chunk:
                        pipeline.process(chunk)
        pipeline.flush_tables()
    finally:
        logging.disable(was)
    return sink.kept


def live(records: list[tuple[bytes | None, bytes | None]]) -> dict[bytes, Any]:
    """Last value per key, tombstones delete (what a compacted topic's reader holds)."""
    state: dict[bytes, Any] = {}
    for key, value in records:
        if key is None:
            continue
        if value is None:
            state.pop(key, None)
        else:
            state[key] = orjson.loads(value)
    return state


def score(events: list[DemoEvent], settings: Settings) -> dict[str, Any]:
    """Pairwise precision and recall of a run over ``events`` (see :func:`run_offline`)."""
    with tempfile.TemporaryDirectory(prefix="scv-offline-") as tmp:
        settings = settings.model_copy(update={"data_dir": Path(tmp)})
        kept = run_offline(events, settings)
    topics = Topics(settings)
    profiles = live(kept[topics.profiles])
    owner = {
        f"{kind}:{v}": pid.decode()
        for pid, snap in profiles.items()
        for kind, values in snap["identifiers"].items()
        for v in values
    }
    assigned: dict[str, str] = {}
    for _, value in kept[topics.profile_events]:
        msg = orjson.loads(value or b"{}")
        if msg.get("kind") == "event" and msg.get("anchor") in owner:
            assigned[msg["event"]["event_id"]] = owner[msg["anchor"]]
    truth = {e.event_id: e.person_id for e in events if e.person_id and e.event_id}
    kinds = Counter(orjson.loads(v or b"{}").get("kind") for _, v in kept[topics.merges])
    homes = live(kept[topics.households])
    dlq = {t: len(kept[topics.dlq(t)]) for t in topics.dead_lettered}
    return {
        "events": len(events),
        "malformed_in": sum(e.malformed for e in events),
        "events_resolved": len(assigned),
        "profiles": len(profiles),
        "merges": kinds["merge"],
        "splits": kinds["split"],
        "refused_links": kinds["refused"],
        "generic_values": kinds["generic"],
        "household_values": kinds["household"],
        "dlq": sum(dlq.values()),
        "dlq_by_topic": dlq,
        **pairwise_scores(truth, assigned),
        "households_found": len(homes),
        **household_figures(truth, homes_truth(events), assigned, profiles),
        "placeholders_on_profiles": len(
            placeholder_keys(events, settings.default_region) & owner.keys()
        ),
        "if_anonymous_unattached": anonymous_bound(events, truth, assigned, profiles, settings),
        "_profiles": profiles,
        "_households": homes,
        "_assigned": assigned,
    }


def household_figures(
    truth: dict[str, str],
    homes: dict[str, str | None],
    assigned: dict[str, str],
    profiles: dict[bytes, Any],
) -> dict[str, float | None]:
    """Household precision and recall over people (``truth``: event -> person, ``homes``:
    person -> true household): a person's predicted household is the ``household_id`` of
    the live profile holding most of their events (None: alone)."""
    votes: dict[str, Counter[str]] = {}
    for event_id, person in truth.items():
        pid = assigned.get(event_id)
        if pid is not None:
            votes.setdefault(person, Counter())[pid] += 1
    predicted: dict[str, str | None] = {}
    for person, counts in votes.items():
        view = profiles.get(counts.most_common(1)[0][0].encode())
        predicted[person] = view.get("household_id") if isinstance(view, dict) else None
    scores = household_scores(homes, predicted)
    if not scores["true_pairs"]:  # traffic without households (the default demo): no figure
        return {"household_precision": None, "household_recall": None, "household_f1": None}
    return {k: v for k, v in scores.items() if k.startswith("household_")}


#: Identifier types that name a device, not a person: an event with no others is anonymous.
DEVICE_TYPES = ("anonymous_id", "device_id")


def anonymous_bound(
    events: list[DemoEvent],
    truth: dict[str, str],
    assigned: dict[str, str],
    profiles: dict[bytes, Any],
    settings: Settings,
) -> dict[str, dict[str, float]]:
    """What refusing to guess who was on a device would buy: pairwise precision and recall
    of this run with the events that name only a device (a browser cookie, an app install)
    left unattached, all of them (``all``) or those that landed on a household member's
    profile (``household_members``). A family tablet that only one member logs in on is,
    in the events, a personal device; these figures measure what telling them apart by
    refusing would cost, since nothing in the events can."""
    from scv.connectors.demo import identifiers_of

    anonymous = set()
    for ev in events:
        if ev.event_id in truth and not ev.malformed:
            kinds = {
                key.partition(":")[0] for _, key in identifiers_of(ev, settings.default_region)
            }
            if kinds and kinds <= set(DEVICE_TYPES):
                anonymous.add(ev.event_id)

    def at_home(pid: str) -> bool:
        view = profiles.get(pid.encode())
        return isinstance(view, dict) and view.get("household_id") is not None

    def scores(drop: Any) -> dict[str, float]:
        kept = {e: p for e, p in assigned.items() if not (e in anonymous and drop(p))}
        got = pairwise_scores(truth, kept)
        return {k: round(got[f"pairwise_{k}"], 6) for k in ("precision", "recall")}

    return {"all": scores(lambda _: True), "household_members": scores(at_home)}


def homes_truth(events: list[DemoEvent]) -> dict[str, str | None]:
    """Person -> the household they truly live in (None: alone)."""
    return {e.person_id: e.household_id for e in events if e.person_id is not None}


def placeholder_keys(events: list[DemoEvent], region: str) -> set[str]:
    """The identifier keys (normalised as the pipeline does) of every value the generator
    typed as a placeholder: none of them may be on a live profile."""
    from scv.connectors.demo import identifiers_of

    keys: set[str] = set()
    for ev in events:
        if ev.placeholders and not ev.malformed:
            for field_name, key in identifiers_of(ev, region):
                if field_name in ev.placeholders:
                    keys.add(key)
    return keys
