"""Households through the real stages in any arrival order (issue 22).

A household is 2-4 people, each with their own customer id, personal email and browser
cookie, sharing what families share: a family email, a landline, a tablet on which each of
them logs in. Their events go to the four raw topics; :func:`run` feeds them through the
real stages (``Pipeline``, tables in memory) over a :class:`~scv.bench.loopback.LoopBack`
whose partitions are consumed in an order a seeded random number generator picks, batch
sizes included, as four raw topics consumed in parallel do. ``order=None`` is the
reference: event-time order, one message at a time, every hop finished before the next
event.

:class:`Result` holds what must not depend on that order: the resolver's identifier groups
and generic values, and per profile the identifiers and events the profile stage holds.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from hypothesis import strategies as st

from scv.bench.loopback import LoopBack, Queue
from scv.settings import Settings
from scv.streams.worker import Pipeline
from scv.topics import Topics

#: Far more internal messages per input event than any run needs (the most seen is in the
#: closing note of issue 22): past it, a run counts as never reaching quiescence.
LIMIT_PER_EVENT = 25

T0 = 1_790_000_000.0  # a fixed instant: results must not depend on the clock
SHARED = ("family_email", "landline", "tablet")
#: what one person does; each kind says which identifiers its event carries
KINDS = (
    "own_login",  # own cookie + customer id + personal email
    "tablet_login",  # the tablet's cookie + own customer id
    "tablet_visit",  # the tablet's cookie only
    "order_family",  # customer id + family email (+ landline)
    "order_own",  # customer id + personal email
    "call",  # the landline, sometimes the customer id the agent found
    "family_mail",  # the ESP writes to the family email
    "own_mail",  # ... or to the personal one
)
RAW_KEY = {"web": "anonymous_id", "email": "email", "transactions": "order_id"}


@dataclass(frozen=True)
class Person:
    cid: str
    email: str
    cookie: str


@dataclass
class Scenario:
    """Raw events (source, payload) of some households, in no particular order."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _iso(offset: int) -> str:
    return datetime.fromtimestamp(T0 + offset, UTC).isoformat()


def _event(
    h: int, p: int, n: int, kind: str, shared: frozenset[str], ts: int, with_cid: bool
) -> tuple[str, dict[str, Any]] | None:
    me = Person(f"C{h}-{p}", f"person.{h}.{p}@mail.de", f"cookie-{h}-{p}")
    family = f"familie.{h}@web.de"
    landline = f"+49 30 1234{h:03d}"  # a Berlin landline, typed with spaces
    tablet = f"tablet-{h}"
    base: dict[str, Any] = {"event_id": f"e-{h}-{p}-{n}", "timestamp": _iso(ts)}
    if kind == "own_login":
        body = {"type": "login", "anonymous_id": me.cookie, "customer_id": me.cid}
        return "web", base | body | {"session_id": f"s-{h}-{p}-{n}", "email": me.email}
    if kind in ("tablet_login", "tablet_visit"):
        if "tablet" not in shared:
            return None
        body = {"type": "page_view", "anonymous_id": tablet, "session_id": f"s-{h}-{p}-{n}"}
        if kind == "tablet_login":
            body |= {"type": "login", "customer_id": me.cid}
        return "web", base | body | {"page": {"url": "https://shop.example/", "title": "Home"}}
    if kind in ("order_family", "order_own"):
        body = {
            "type": "order",
            "order_id": f"o-{h}-{p}-{n}",
            "customer_id": me.cid,
            "items": [{"sku": "SKU-1", "qty": 1, "price": 20.0}],
            "total": 20.0,
            "currency": "EUR",
        }
        family_order = kind == "order_family" and "family_email" in shared
        body["email"] = family if family_order else me.email
        if "landline" in shared and n % 2 == 0:
            body["phone"] = landline
        return "transactions", base | body
    if kind == "call":
        if "landline" not in shared:
            return None
        body = {
            "type": "call",
            "phone": landline,
            "agent_id": "agent-1",
            "disposition": {"code": "inquiry", "cancel_intent": False},
            "duration_s": 60,
        }
        if with_cid:
            body["customer_id"] = me.cid
        return "callcenter", base | body
    if kind == "family_mail" and "family_email" not in shared:
        return None
    email = family if kind == "family_mail" else me.email
    return "email", base | {"type": "open", "email": email, "campaign_id": "cmp-1"}


@st.composite
def scenarios(draw: st.DrawFn, max_households: int = 4) -> Scenario:
    """1-``max_households`` households of 2-4 people, each sharing one to three of a family
    email, a landline and a tablet, with a few events per person at times that may tie."""
    scenario = Scenario()
    for h in range(draw(st.integers(1, max_households))):
        shared = frozenset(draw(st.sets(st.sampled_from(SHARED), min_size=1)))
        for p in range(draw(st.integers(2, 4))):
            # everyone has an account they log in to (on the tablet too, if there is one)
            kinds = ["own_login", "tablet_login"]
            kinds += draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=6))
            for n, kind in enumerate(kinds):
                ts = draw(st.integers(0, 600))
                made = _event(h, p, n, kind, shared, ts, draw(st.booleans()))
                if made is not None:
                    scenario.events.append(made)
    return scenario


def seeded(seed: int, households: int) -> Scenario:
    """A scenario like :func:`scenarios` draws, from a seeded generator: bigger, for a run
    through the real worker and broker."""
    rng = random.Random(seed)
    scenario = Scenario()
    for h in range(households):
        shared = frozenset(s for s in SHARED if rng.random() < 0.7) or frozenset(SHARED[:1])
        for p in range(rng.randint(2, 4)):
            kinds = ["own_login", "tablet_login", *rng.choices(KINDS, k=rng.randint(1, 6))]
            for n, kind in enumerate(kinds):
                made = _event(h, p, n, kind, shared, rng.randint(0, 600), rng.random() < 0.5)
                if made is not None:
                    scenario.events.append(made)
    return scenario


@dataclass
class Result:
    """What a run left, in terms that do not depend on profile ids."""

    #: the resolver's identifier groups (one per live profile) and generic values
    groups: frozenset[frozenset[str]]
    generic: frozenset[str]
    #: per live profile state with events: its identifiers -> (events, order ids)
    profiles: dict[frozenset[str], tuple[int, tuple[str, ...]]]
    #: messages the stages took from identity.events.v1 and profiles.events.v1, per input
    internal_per_event: float


def settings(tmp: Path) -> Settings:
    return Settings(
        store="memory://",
        topic_prefix="",
        data_dir=tmp,
        stage_partitions=4,
        raw_partitions=2,
        default_region="GB",  # the demo traffic is British; the kit types +49 itself
        suppression_key="householdkit-suppression-key",  # not the local one it warns about
    )


def run(scenario: Scenario, tmp: Path, order: int | None) -> Result:
    """The scenario through fresh stages; ``order`` seeds the interleaving (None: the
    event-time reference)."""
    config = settings(tmp)
    topics = Topics(config)
    loop = LoopBack(config.stage_partitions)
    pipeline = Pipeline(config, loop, changelogs=False)
    for topic, tables in pipeline.tables_of.items():
        for p in range(tables[0].partitions):
            pipeline.open(topic, p)
    events = sorted(scenario.events, key=lambda e: (e[1]["timestamp"], e[1]["event_id"]))
    internal = (topics.identity_events, topics.profile_events)
    limit = LIMIT_PER_EVENT * max(1, len(events))
    logging.disable(logging.WARNING)
    try:
        if order is None:

            def first_waiting(queues: list[Queue], sizes: dict[Queue, int]) -> tuple[Queue, int]:
                # what an event set off goes first, downstream first: one hop at a time
                rank = {topics.profile_events: 0, topics.identity_events: 1}
                return min(queues, key=lambda q: (rank.get(q[0], 2), q)), 1

            for source, payload in events:
                key = str(payload.get(RAW_KEY.get(source, "phone"), "")).encode()
                loop.send(topics.raw(source), key, orjson.dumps(payload), partition=0)
                loop.drain(pipeline, first_waiting, limit)
        else:
            rng = random.Random(order)

            def any_waiting(queues: list[Queue], sizes: dict[Queue, int]) -> tuple[Queue, int]:
                queue = rng.choice(queues)
                return queue, rng.randint(1, sizes[queue])

            for source, payload in events:
                key = str(payload.get(RAW_KEY.get(source, "phone"), "")).encode()
                loop.send(topics.raw(source), key, orjson.dumps(payload))
            loop.drain(pipeline, any_waiting, limit)
    finally:
        logging.disable(logging.NOTSET)
    taken = sum(loop.taken[t] for t in internal)
    return Result(*_graph(pipeline), _profiles(pipeline), taken / max(1, len(events)))


def _graph(pipeline: Pipeline) -> tuple[frozenset[frozenset[str]], frozenset[str]]:
    by_owner: dict[str, set[str]] = {}
    for key, owner in pipeline.owners[0].items():
        if not key.decode().startswith(("\x00",)):  # the blocking index, households
            by_owner.setdefault(owner.decode(), set()).add(key.decode())
    groups = frozenset(frozenset(keys) for o, keys in by_owner.items() if not o.startswith("!"))
    generic = frozenset(k for o, keys in by_owner.items() if o.startswith("!") for k in keys)
    return groups, generic


def _profiles(pipeline: Pipeline) -> dict[frozenset[str], tuple[int, tuple[str, ...]]]:
    out: dict[frozenset[str], tuple[int, tuple[str, ...]]] = {}
    table = pipeline.profile_table
    for p in range(table.partitions):
        for _, raw in table[p].items():
            state = orjson.loads(raw)
            if "identifiers" not in state:  # a forwarding or erasure marker
                continue
            if not state["event_count"]:
                # A part with identifiers but none of their events (an identifier a limit
                # set aside, adopted before or without any event): whether such a shell
                # was written depends on the order, what it holds does not.
                continue
            ids = frozenset(f"{t}:{v}" for t, vs in state["identifiers"].items() for v in vs)
            orders = tuple(sorted(str(o["order_id"]) for o in state["orders"]["recent"]))
            assert ids not in out, f"two profile states hold {sorted(ids)}"
            out[ids] = (state["event_count"], orders)
    return out
