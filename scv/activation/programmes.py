"""Programmes declared in YAML: what triggers a message, for whom, on which channel, how often.

A programme file is read once at start-up and checked whole: a mistake stops the worker with
one line naming the file, the line and what is wrong (``programmes.yaml:14: programmes[1].
trigger.fact: unknown fact 'rich' (known: ...)``), never half-way through a stream. The
shipped defaults are ``programmes.default.yaml`` next to this module; docs/activation.md
explains every field with the built-in programmes as examples.

Pure module: no Kafka, no Faust.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

DEFAULT_PATH = Path(__file__).with_name("programmes.default.yaml")

#: How a trigger reads its fact: ``holds``: the programme is due, once per subject, while the
#: fact is true, non-empty or non-zero (timers will be other kinds).
TRIGGERS = ("holds",)
#: Comparisons a condition may make on a fact.
OPS = ("==", "!=", ">", ">=", "<", "<=", "in", "not_in", "exists", "missing")
CHANNELS = ("email", "sms", "onsite")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True)
class Condition:
    """``fact op value`` over a profile's facts (:mod:`scv.activation.facts`)."""

    fact: str
    op: str
    value: Any = None

    def holds(self, facts: Mapping[str, Any]) -> bool:
        have = facts.get(self.fact)
        op, want = self.op, self.value
        if op == "exists":
            return have is not None
        if op == "missing":
            return have is None
        if op == "==":
            return bool(have == want)
        if op == "!=":
            return bool(have != want)
        if op == "in":
            return have in want
        if op == "not_in":
            return have not in want
        if have is None:
            return False  # an unknown number is neither more nor less than anything
        try:
            return bool(
                {">": have > want, ">=": have >= want, "<": have < want, "<=": have <= want}[op]
            )
        except TypeError:
            return False

    def describe(self) -> str:
        shown = "" if self.op in ("exists", "missing") else f" {self.value!r}"
        return f"{self.fact} {self.op}{shown}"


@dataclass(frozen=True, slots=True)
class Trigger:
    kind: str  # one of TRIGGERS
    fact: str
    #: the fact naming what the message is about: the action id derives from it, so a
    #: redelivered snapshot or a merge never sends one subject's message twice
    subject: str


@dataclass(frozen=True, slots=True)
class Cap:
    """At most ``count`` messages per person within ``window_s`` seconds of event time."""

    count: int
    window_s: float


@dataclass(frozen=True, slots=True)
class QuietHours:
    """No email or SMS between ``start`` and ``end`` (local time in ``timezone`` of the event
    time): the action is still published, with ``not_before`` at the end of the quiet hours,
    so the sending service holds it instead of the decision being lost."""

    start: clock
    end: clock
    timezone: str = "UTC"

    def covers(self, at: clock) -> bool:
        if self.start <= self.end:
            return self.start <= at < self.end
        return at >= self.start or at < self.end  # over midnight


@dataclass(frozen=True, slots=True)
class Programme:
    name: str
    trigger: Trigger
    channels: tuple[str, ...]
    conditions: tuple[Condition, ...] = ()
    exclusions: tuple[Condition, ...] = ()
    #: the consent purpose a message needs (missing means no); None: a service message
    purpose: str | None = "marketing"
    cap: Cap | None = None
    priority: int = 0
    #: a trigger whose event time is this much older than the newest seen is a replay
    max_lag_s: float | None = None


@dataclass(frozen=True, slots=True)
class Audience:
    """A named segment: the people whose facts meet every condition. Programmes read
    membership as the fact ``audience.<name>`` (as a trigger: due once a person is in)."""

    name: str
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Programmes:
    programmes: tuple[Programme, ...]
    #: across every marketing programme, per person
    global_cap: Cap | None = None
    quiet_hours: QuietHours | None = None
    audiences: tuple[Audience, ...] = ()
    #: exclusions of every marketing programme (a critical support ticket open)
    exclusions: tuple[Condition, ...] = ()
    source: str = field(default="<built-in>", compare=False)

    def names(self) -> list[str]:
        return [p.name for p in self.programmes]


def load_programmes(path: Path | None = None) -> Programmes:
    """Programmes from a YAML file, or the shipped defaults when ``path`` is None.

    Raises ValueError naming the file and line of the first mistake."""
    if path is None:
        return _defaults()
    return _load(Path(path))


@functools.cache
def _defaults() -> Programmes:
    return _load(DEFAULT_PATH)


def _load(path: Path) -> Programmes:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        data, lines = _compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ValueError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    try:
        return _parse(data if data is not None else {}, str(path))
    except _Invalid as exc:
        line = _line_of(lines, exc.at)
        where = f"{path}:{line}" if line else str(path)
        raise ValueError(f"{where}: {exc.message}") from None


class _Invalid(Exception):
    def __init__(self, at: tuple[Any, ...], message: str) -> None:
        super().__init__(message)
        self.at, self.message = at, message


def _where(at: tuple[Any, ...]) -> str:
    out = ""
    for part in at:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _fail(at: tuple[Any, ...], problem: str) -> _Invalid:
    return _Invalid(at, f"{_where(at)}: {problem}")


def _compose(text: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """YAML to plain data, with the line of every value by its path."""
    lines: dict[tuple[Any, ...], int] = {}

    def build(node: yaml.Node, at: tuple[Any, ...]) -> Any:
        lines[at] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out = {}
            for key_node, value_node in node.value:
                key = yaml.safe_load(yaml.serialize(key_node))
                lines[(*at, key)] = key_node.start_mark.line + 1
                out[key] = build(value_node, (*at, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [build(item, (*at, i)) for i, item in enumerate(node.value)]
        return yaml.safe_load(yaml.serialize(node))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    return (None if root is None else build(root, ())), lines


def _line_of(lines: dict[tuple[Any, ...], int], at: tuple[Any, ...]) -> int | None:
    while True:
        if at in lines:
            return lines[at]
        if not at:
            return None
        at = at[:-1]


_TOP = {"programmes", "global_cap", "quiet_hours", "audiences", "exclusions"}
#: The fact an audience's membership is read as.
AUDIENCE_FACT = "audience.{name}"
_PROGRAMME = {
    "name",
    "trigger",
    "channels",
    "conditions",
    "exclusions",
    "purpose",
    "cap",
    "priority",
    "max_lag_s",
}


def _parse(data: Any, source: str) -> Programmes:
    top = _mapping(data, (), _TOP)
    audiences = _audiences(top.get("audiences"), ("audiences",))
    known = _base_facts() | {AUDIENCE_FACT.format(name=a.name) for a in audiences}
    raw = top.get("programmes")
    if not isinstance(raw, list) or not raw:
        raise _fail(("programmes",), "expected a non-empty list of programmes")
    programmes = tuple(_programme(item, ("programmes", i), known) for i, item in enumerate(raw))
    _unique([p.name for p in programmes], "programmes")
    return Programmes(
        programmes,
        _cap(top["global_cap"], ("global_cap",)) if top.get("global_cap") is not None else None,
        _quiet(top["quiet_hours"], ("quiet_hours",))
        if top.get("quiet_hours") is not None
        else None,
        audiences,
        _conditions(top.get("exclusions"), ("exclusions",), known),
        source,
    )


def _unique(names: list[str], where: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise _fail((where, i, "name"), f"{name!r} is declared twice")
        seen.add(name)


def _items(raw: Any, at: tuple[Any, ...], what: str) -> list[Any]:
    """An optional list: empty when absent."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _fail(at, f"expected a list of {what}, got {_tname(raw)}")
    return raw


def _audiences(raw: Any, at: tuple[Any, ...]) -> tuple[Audience, ...]:
    out = []
    for i, item in enumerate(_items(raw, at, "audiences")):
        a = _mapping(item, (*at, i), {"name", "conditions"})
        name = a.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise _fail((*at, i, "name"), f"expected a lower-case name, got {name!r}")
        conditions = _conditions(a.get("conditions"), (*at, i, "conditions"), _base_facts())
        if not conditions:
            raise _fail((*at, i, "conditions"), "an audience needs at least one condition")
        out.append(Audience(name, conditions))
    _unique([a.name for a in out], "audiences")
    return tuple(out)


def _mapping(raw: Any, at: tuple[Any, ...], allowed: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail(at, f"expected a mapping, got {_tname(raw)}")
    for key in raw:
        if key not in allowed:
            raise _fail((*at, key), f"unknown key (expected one of {', '.join(sorted(allowed))})")
    return raw


def _programme(raw: Any, at: tuple[Any, ...], known: frozenset[str]) -> Programme:
    p = _mapping(raw, at, _PROGRAMME)
    for key in ("name", "trigger", "channels"):
        if key not in p:
            raise _fail(at, f"missing {key}")
    name = p["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise _fail((*at, "name"), f"expected a lower-case name (letters, digits, _), got {name!r}")
    channels = p["channels"]
    if not isinstance(channels, list) or not channels or any(c not in CHANNELS for c in channels):
        raise _fail(
            (*at, "channels"), f"expected a list of {', '.join(CHANNELS)} in order of preference"
        )
    purpose = p.get("purpose", "marketing")
    if purpose is not None and not isinstance(purpose, str):
        raise _fail((*at, "purpose"), "expected a consent purpose name or null")
    priority = p.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise _fail((*at, "priority"), f"expected an integer, got {priority!r}")
    lag = p.get("max_lag_s")
    if lag is not None and (not _number(lag) or lag <= 0):
        raise _fail((*at, "max_lag_s"), f"expected a number of seconds > 0, got {lag!r}")
    return Programme(
        name=name,
        trigger=_trigger(p["trigger"], (*at, "trigger"), known),
        channels=tuple(channels),
        conditions=_conditions(p.get("conditions"), (*at, "conditions"), known),
        exclusions=_conditions(p.get("exclusions"), (*at, "exclusions"), known),
        purpose=purpose,
        cap=_cap(p["cap"], (*at, "cap")) if p.get("cap") is not None else None,
        priority=priority,
        max_lag_s=float(lag) if lag is not None else None,
    )


def _trigger(raw: Any, at: tuple[Any, ...], known: frozenset[str]) -> Trigger:
    t = _mapping(raw, at, {"kind", "fact", "subject"})
    kind = t.get("kind", "holds")
    if kind not in TRIGGERS:
        raise _fail((*at, "kind"), f"expected one of {', '.join(TRIGGERS)}, got {kind!r}")
    for key in ("fact", "subject"):
        if not isinstance(t.get(key), str) or not t[key]:
            raise _fail((*at, key), "expected a fact name (docs/activation.md, Facts)")
    _known_fact(t["fact"], (*at, "fact"), known)
    _known_fact(t["subject"], (*at, "subject"), known)
    return Trigger(kind, t["fact"], t["subject"])


def _conditions(raw: Any, at: tuple[Any, ...], known: frozenset[str]) -> tuple[Condition, ...]:
    out = []
    for i, item in enumerate(_items(raw, at, "conditions")):
        c = _mapping(item, (*at, i), {"fact", "op", "value"})
        fact, op = c.get("fact"), c.get("op", "==")
        if not isinstance(fact, str):
            raise _fail((*at, i, "fact"), "expected a fact name")
        _known_fact(fact, (*at, i, "fact"), known)
        if op not in OPS:
            raise _fail((*at, i, "op"), f"expected one of {' '.join(OPS)}, got {op!r}")
        value = c.get("value")
        if op in ("in", "not_in") and not isinstance(value, list):
            raise _fail((*at, i, "value"), f"{op} needs a list")
        if op in (">", ">=", "<", "<=") and not _number(value):
            raise _fail((*at, i, "value"), f"{op} needs a number, got {value!r}")
        if op not in ("exists", "missing") and "value" not in c:
            raise _fail((*at, i), f"missing value for {op}")
        out.append(Condition(fact, op, value))
    return tuple(out)


def _cap(raw: Any, at: tuple[Any, ...]) -> Cap:
    c = _mapping(raw, at, {"count", "window_s"})
    count, window = c.get("count"), c.get("window_s")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise _fail((*at, "count"), f"expected an integer >= 1, got {count!r}")
    if not isinstance(window, (int, float)) or isinstance(window, bool) or window <= 0:
        raise _fail((*at, "window_s"), f"expected a number of seconds > 0, got {window!r}")
    return Cap(count, float(window))


def _quiet(raw: Any, at: tuple[Any, ...]) -> QuietHours:
    q = _mapping(raw, at, {"start", "end", "timezone"})
    times = []
    for key in ("start", "end"):
        value = q.get(key)
        try:
            times.append(clock.fromisoformat(str(value)))
        except ValueError:
            raise _fail((*at, key), f"expected a time such as '21:00', got {value!r}") from None
    zone = q.get("timezone", "UTC")
    try:
        ZoneInfo(str(zone))
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail((*at, "timezone"), f"unknown time zone {zone!r}") from None
    return QuietHours(times[0], times[1], str(zone))


def _base_facts() -> frozenset[str]:
    from scv.activation.facts import FACTS

    return frozenset(FACTS)


def _known_fact(name: str, at: tuple[Any, ...], known: frozenset[str]) -> None:
    if name not in known:
        raise _fail(at, f"unknown fact {name!r} (known: {', '.join(sorted(known))})")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _tname(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
