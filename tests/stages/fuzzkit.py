"""The fuzz harness: hostile cases through the real stages, and what must hold afterwards.

Shared by the default fuzz test (``test_fuzz_stages.py``, a few hundred examples), ``make
fuzz`` (``fuzz_run.py``, at least 100,000 bad events) and the atheris target
(``fuzz_atheris.py``). A :class:`Case` is one message for a raw topic or
``identity.commands.v1`` with what must become of it:

* ``bad``: it lands on its input's DLQ, once, with a reason from the known grammar that
  echoes no value of the message;
* ``good``: it comes out downstream (``identity.events.v1``, routed to a profile, its
  identifiers on a live ``profiles.v1`` snapshot); a good command is carried out;
* ``weird``: valid-looking but hostile: either outcome is fine, but if it is accepted its
  identifiers must be clean canonical values (no control or invisible characters, an email
  that is a real address, a phone in E.164), so it cannot corrupt the identity graph.

:func:`run_cases` feeds a batch the way the worker loop would (raw topics first, then every
message the stages send to a stage input, round after round, until nothing is left) and
:func:`check` asserts the outcome and returns counts.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka.partitioner import murmur2
from stagekit import Outbox, Sent

from scv.domain.model import SOURCES
from scv.domain.normalize import normalize_email, normalize_id, normalize_phone
from scv.schemas import load_schema
from scv.settings import Settings
from scv.streams.dlq import LocalMsg
from scv.streams.worker import Pipeline
from scv.topics import Topics

COMMANDS = "commands"
#: Where a case goes: a raw source, or the command topic.
TARGETS: tuple[str, ...] = (*SOURCES, COMMANDS)

#: Every reason a DLQ header may carry for bad *input*. Anything else (``internal_error``,
#: ``unreadable``, ``profile_step``) means a bug in scv, not bad data.
REASON = re.compile(
    r"^(empty|too_large|invalid_json|not_an_object|bad_timestamp"
    r"|schema: data[\w.\[\]]* [ -~]+|invalid_identifier:[a-z0-9_]+"
    r"|command: [a-z_]+(:[0-9a-z_:]+)?)$"
)

#: Identifier values must not contain these Unicode categories: controls, format characters
#: (zero-width, bidi overrides, BOM, soft hyphen), line and paragraph separators and
#: surrogates. (Private-use and unassigned code points are odd but stable: they may stay.)
_UNCLEAN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_E164 = re.compile(r"^\+[1-9][0-9]{5,15}$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class Case:
    target: str  # a source, or COMMANDS
    kind: str  # what was done to it (counted per kind)
    value: bytes | None
    expect: str  # "bad" | "good" | "weird"
    event_id: str | None = None  # good raw events: the id to find downstream


@dataclass
class Outcome:
    """What one batch did, for the counts ``make fuzz`` prints."""

    counts: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)

    def add(self, other: Outcome) -> None:
        self.counts.update(other.counts)
        self.reasons.update(other.reasons)
        self.kinds.update(other.kinds)


def fuzz_settings(data_dir: Path) -> Settings:
    return Settings(store="memory://", topic_prefix="", data_dir=data_dir)


def new_pipeline(settings: Settings, out: Outbox) -> Pipeline:
    """The stages with every table partition open, in memory (as tests/stages/conftest)."""
    pipeline = Pipeline(settings, out, changelogs=False)
    for topic, tables in pipeline.tables_of.items():
        for p in range(tables[0].partitions):
            pipeline.open(topic, p)
    return pipeline


def topic_of(topics: Topics, target: str) -> str:
    return topics.commands if target == COMMANDS else topics.raw(target)


def case_key(i: int) -> bytes:
    return f"fz-{i}".encode()


def run_cases(pipeline: Pipeline, out: Outbox, cases: list[Case], max_rounds: int = 50) -> None:
    """Raw events first (one batch), then commands (the good ones name identifiers those
    events brought), each followed by every hop downstream until the stages fall quiet.

    Messages a stage sends to another stage's input are fed back as the next batch, on the
    partition the producer's murmur2 partitioner would choose, as the worker loop sees them.
    """
    topics = Topics(pipeline.settings)
    raw = [c for c in enumerate(cases) if c[1].target != COMMANDS]
    commands = [c for c in enumerate(cases) if c[1].target == COMMANDS]
    for group in (raw, commands):
        if not group:
            continue
        batch = [
            LocalMsg(topic_of(topics, case.target), case.value, case_key(i), 0, i)
            for i, case in group
        ]
        _cascade(pipeline, out, batch, max_rounds)


def _cascade(pipeline: Pipeline, out: Outbox, batch: list[LocalMsg], max_rounds: int) -> None:
    internal = {pipeline.resolve.inputs[0], pipeline.profiles.inputs[0]}
    partitions = {
        pipeline.resolve.inputs[0]: 1,
        pipeline.profiles.inputs[0]: pipeline.settings.stage_partitions,
    }
    seen = len(out)
    offsets: Counter[str] = Counter()
    for _ in range(max_rounds):
        pipeline.process(batch)
        fresh, seen = out[seen:], len(out)
        batch = []
        for sent in fresh:
            if sent.topic not in internal:
                continue
            n = partitions[sent.topic]
            part = sent.partition
            if part is None:
                part = (murmur2(sent.key) & 0x7FFFFFFF) % n if sent.key else 0
            batch.append(LocalMsg(sent.topic, sent.value, sent.key, part, offsets[sent.topic]))
            offsets[sent.topic] += 1
        if not batch:
            return
    raise AssertionError(f"the stages still send to each other after {max_rounds} rounds")


# --------------------------------------------------------------------------------------------
# What must hold
# --------------------------------------------------------------------------------------------


def unclean_chars(value: str) -> list[str]:
    """The characters of ``value`` no identifier may hold (see :data:`_UNCLEAN`)."""
    return [ch for ch in value if unicodedata.category(ch) in _UNCLEAN]


def identifier_problem(kind: str, value: Any) -> str | None:
    """Why ``(kind, value)`` is not a clean canonical identifier, or None when it is.

    Canonical means a fixed point of its normaliser: normalising it again changes nothing,
    so the same person spelled twice meets in one key.
    """
    if not isinstance(value, str) or not value:
        return "empty or not a string"
    if value != value.strip() or "  " in value:
        return "untrimmed whitespace"
    bad = unclean_chars(value)
    if bad:
        return f"holds {sorted({f'U+{ord(c):04X}' for c in bad})}"
    if kind == "email":
        local, at, domain = value.rpartition("@")
        if not at or not local or not domain:
            return "email without local part and domain"
        if not domain.isascii() or "." not in domain:
            return "email domain is not an ASCII (IDNA) host name"
        if not all(_DOMAIN_LABEL.match(label) for label in domain.split(".")):
            return "email domain has an invalid label"
        if value != value.lower():
            return "email not lower-cased"
        if unicodedata.normalize("NFKC", value) != value:
            return "email not NFKC (fullwidth or compatibility characters)"
        if normalize_email(value) != value:
            return "email is not a fixed point of normalize_email"
        return None
    if kind == "phone":
        if not _E164.match(value):
            return "phone not E.164"
        if normalize_phone(value, "GB") != value:
            return "phone is not a fixed point of normalize_phone"
        return None
    if normalize_id(value) != value:
        return "id is not a fixed point of normalize_id"
    return None


def _strings(doc: Any, into: set[str]) -> set[str]:
    """Every string key and value in a decoded JSON document (iteratively: documents may be
    nested a thousand deep)."""
    todo = [doc]
    while todo:
        node = todo.pop()
        if isinstance(node, str):
            into.add(node)
        elif isinstance(node, dict):
            into.update(node)
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return into


_SCHEMA_WORDS: set[str] = set()


def schema_words() -> set[str]:
    """Every string in the schemas (property names, enum values, patterns): a reason may
    name these, they are not the sender's data."""
    if not _SCHEMA_WORDS:
        for name in ("raw.web.v1", "raw.email.v1", "raw.transactions.v1", "raw.callcenter.v1"):
            _strings(load_schema(name), _SCHEMA_WORDS)
        _strings(load_schema("identity.commands.v1"), _SCHEMA_WORDS)
    return _SCHEMA_WORDS


#: Reasons that are constants: nothing of the message can be in them.
_FIXED_REASONS = frozenset({"empty", "too_large", "invalid_json", "not_an_object", "bad_timestamp"})


def echoed(reason: str, value: bytes | None) -> list[str]:
    """Strings of the message (6+ characters, not schema words) that the reason repeats."""
    if reason in _FIXED_REASONS:
        return []
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return []
    words = schema_words()
    return [s for s in _strings(doc, set()) if len(s) >= 6 and s not in words and s in reason]


def check(pipeline: Pipeline, out: Outbox, cases: list[Case]) -> Outcome:
    """Assert what must hold after :func:`run_cases`; the counts of what happened."""
    topics = Topics(pipeline.settings)
    outcome = Outcome()
    dlq: dict[tuple[str, bytes | None], list[Sent]] = {}
    for sent in out:
        if sent.topic.endswith(".dlq"):
            dlq.setdefault((sent.topic, sent.key), []).append(sent)

    # Bugs show up as DLQ records of the internal topics: nothing may land there.
    for internal in (topics.identity_events, topics.profile_events):
        stray = out.to(topics.dlq(internal))
        assert not stray, [(s.header_map, s.value[:300] if s.value else None) for s in stray]

    normalized = {s.key: s.json() for s in out.to(topics.identity_events)}  # by event id
    routed = {
        m["event"]["event_id"]: m["accepted"]
        for m in (s.json() for s in out.to(topics.profile_events))
        if m.get("kind") == "event"
    }
    live = _live_profiles(out.to(topics.profiles))
    owners: dict[str, list[str]] = {}
    for pid, profile in live.items():
        for kind, values in profile["identifiers"].items():
            for value in values:
                owners.setdefault(f"{kind}:{value}", []).append(pid)
    shared = {key: pids for key, pids in owners.items() if len(pids) > 1}
    assert not shared, f"identifiers in two live profiles: {shared}"

    for i, case in enumerate(cases):
        topic = topic_of(topics, case.target)
        key = case_key(i)
        records = dlq.get((topics.dlq(topic), key), [])
        where = f"case {i} ({case.target}/{case.kind}/{case.expect}): {case.value!r:.300}"
        assert len(records) <= 1, f"dead-lettered {len(records)} times: {where}"
        outcome.kinds[f"{case.expect}:{case.target}:{case.kind}"] += 1
        if records:
            reason = records[0].header_map["scv.error.reason"].decode()
            assert REASON.match(reason), f"reason {reason!r} is not bad input's: {where}"
            assert records[0].value == case.value, f"DLQ changed the bytes: {where}"
            leaked = echoed(reason, case.value)
            assert not leaked, f"reason {reason!r} echoes {leaked}: {where}"
            assert case.expect != "good", f"good case dead-lettered ({reason}): {where}"
            outcome.reasons[_reason_group(reason)] += 1
            outcome.counts[f"{case.expect}_dead_lettered"] += 1
            continue
        assert case.expect != "bad", f"bad case not dead-lettered: {where}"
        outcome.counts[f"{case.expect}_accepted"] += 1
        if case.target == COMMANDS:
            continue
        event = normalized.get(orjson.loads(case.value or b"")["event_id"].encode())
        assert event is not None, f"accepted but not on identity.events.v1: {where}"
        for kind, value in event["identifiers"]:
            problem = identifier_problem(kind, value)
            assert problem is None, f"{kind} identifier {value!r}: {problem}: {where}"
        for text in _strings([event["traits"], *_cart_ids(event["payload"])], set()):
            assert not unclean_chars(text), f"trait or cart id {text!r} holds controls: {where}"
        if case.expect == "good":
            assert event["event_id"] == case.event_id, where
            assert case.event_id in routed, f"good event not routed to a profile: {where}"
            assert routed[case.event_id], f"good event linked by no identifier: {where}"
            for key in routed[case.event_id]:
                assert key in owners, f"{key} on no live profile: {where}"
            outcome.counts["good_on_profiles"] += 1
    return outcome


def _cart_ids(payload: dict[str, Any]) -> list[str]:
    """The ids the profile stage compares between sources (web carts, orders, sessions)."""
    cart = payload.get("cart")
    ids = [payload.get("session_id"), payload.get("cart_id")]
    ids.append(cart.get("cart_id") if isinstance(cart, dict) else None)
    return [i for i in ids if isinstance(i, str)]


def _live_profiles(snapshots: Iterable[Sent]) -> dict[str, dict[str, Any]]:
    """``profiles.v1`` read with compaction semantics (the last value per key, tombstones
    remove)."""
    latest: dict[bytes | None, bytes | None] = {}
    for s in snapshots:
        latest[s.key] = s.value
    return {
        (key or b"").decode(): orjson.loads(value)
        for key, value in latest.items()
        if value is not None
    }


def _reason_group(reason: str) -> str:
    """The reason without field paths and values, to count reasons by kind."""
    if reason.startswith("schema: "):
        return "schema"
    return reason.split(":")[0] if reason.startswith(("invalid_identifier", "command")) else reason
