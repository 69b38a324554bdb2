"""Identity governance: which identifiers may link profiles, and how far.

Deterministic stitching alone over-merges in real data: a shop's shared tablet, a ``null``
cookie, the call-centre's own phone number or ``test@test.com`` would glue thousands of
people into one profile. These rules are the brakes the resolver applies:

* a per-type **limit** (``max_per_profile``): one ``customer_id`` per person, a few emails;
* a per-type **priority**: when an event would break a limit, identifiers are considered
  from the highest priority down and the ones that break it are dropped, so a weak shared
  identifier (device, cookie) never overrides a strong one (customer id, email);
* **blocked** values: placeholders for any type, exact ``type:value`` keys and per-type
  regular expressions; a blocked identifier never links anything;
* **household** and **generic** detection (``household``, ``generic_after``): a value that
  ties together two or more otherwise separate people (a family email, a landline, a tablet)
  is a household value: it stops linking people into one person, and the profile it
  over-merged is split back; past ``generic_after`` people (a placeholder an agent typed for
  every caller, a shop's shared phone) it is generic and links nothing at all;
* a **merge cap**: how many profiles one profile may absorb over its life, a last fuse
  against a runaway component.

The rules are immutable and loaded from one YAML file (``rules.default.yaml`` next to this
module is the shipped default and the template users copy). This module is pure: no Faust.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import yaml

from scv.domain.model import Identifier

#: Most identifiers whose "blocked?" answer a :class:`Rules` remembers (then it starts over).
BLOCKED_MEMO_MAX = 100_000

#: The shipped default rule file; ``Rules.default()`` loads it.
DEFAULT_RULES_PATH = Path(__file__).with_name("rules.default.yaml")

_TOP_LEVEL_KEYS = frozenset({"merge_cap", "identifiers", "default", "blocked"})
_BLOCKED_KEYS = frozenset({"values", "exact", "patterns"})
_RULE_KEYS = frozenset({"max_per_profile", "priority", "generic_after", "household"})
_REQUIRED_RULE_KEYS = frozenset({"max_per_profile", "priority"})


@dataclass(frozen=True, slots=True)
class IdentifierRule:
    """Governance of one identifier type.

    ``max_per_profile`` (>= 1) bounds how many values of the type one profile may own;
    ``priority`` orders identifiers when a link would break a limit (higher wins);
    ``generic_after`` (>= 1, or None for never) is how many otherwise separate people one
    value may tie together before it is declared generic; with ``household`` a value that
    ties two to ``generic_after`` people is what a household shares (a landline, a family
    email, a tablet): it stops linking people into one person and links them into a
    household instead.
    """

    max_per_profile: int
    priority: int
    generic_after: int | None = None
    household: bool = False


@dataclass(frozen=True)
class Rules:
    """The complete, immutable identity rule set the resolver applies.

    Blocking semantics (documented here because config authors need them):

    * ``blocked_values`` apply to every type and are compared after ``strip().lower()``;
      an empty value is always blocked.
    * ``blocked_exact`` holds ``type:value`` keys compared verbatim with the normalised key.
    * ``blocked_patterns`` are applied with :func:`re.search` (not fullmatch), so a pattern
      matches anywhere unless anchored with ``^``/``$``; patterns loaded by
      :meth:`from_mapping` are compiled case-insensitively.
    """

    identifiers: Mapping[str, IdentifierRule]
    blocked_exact: frozenset[str] = frozenset()
    blocked_values: frozenset[str] = frozenset()
    blocked_patterns: Mapping[str, tuple[re.Pattern[str], ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    merge_cap: int = 100
    default_rule: IdentifierRule = IdentifierRule(max_per_profile=10, priority=10)
    # Per-instance lookups for the hot path, set in __post_init__ (declared ClassVar so that
    # they are not dataclass fields: equality, repr and ``replace`` ignore them).
    _rules: ClassVar[dict[str, IdentifierRule]]
    _rank: ClassVar[dict[str, int]]  # type -> -priority (the sort key of priority_order)
    _blocked: ClassVar[dict[Identifier, bool]]  # is_blocked's answers

    def __post_init__(self) -> None:
        # Freeze the mappings (a caller's dict must not change the rules behind our back) and
        # lower-case placeholder values once, so is_blocked stays a set lookup on the hot path.
        object.__setattr__(self, "identifiers", MappingProxyType(dict(self.identifiers)))
        object.__setattr__(
            self,
            "blocked_patterns",
            MappingProxyType({k: tuple(v) for k, v in self.blocked_patterns.items()}),
        )
        object.__setattr__(
            self, "blocked_values", frozenset(v.strip().lower() for v in self.blocked_values)
        )
        object.__setattr__(self, "blocked_exact", frozenset(self.blocked_exact))
        # Hot-path lookups (not fields: equality and repr stay those of the rules above).
        object.__setattr__(self, "_rules", dict(self.identifiers))
        object.__setattr__(
            self, "_rank", {kind: -rule.priority for kind, rule in self.identifiers.items()}
        )
        object.__setattr__(self, "_blocked", {})

    def rule(self, ident_type: str) -> IdentifierRule:
        """The rule for ``ident_type``; unknown types get ``default_rule`` rather than failing,
        so a source adding a new identifier type degrades to conservative linking."""
        return self._rules.get(ident_type, self.default_rule)

    def is_blocked(self, ident: Identifier) -> bool:
        """True when ``ident`` must never link profiles (placeholder, exact key or pattern)."""
        memo = self._blocked
        try:
            blocked = memo.get(ident)
        except TypeError:  # an unhashable identifier (a list): not remembered
            return self._is_blocked(ident)
        if blocked is None:
            blocked = self._is_blocked(ident)
            if len(memo) >= BLOCKED_MEMO_MAX:
                memo.clear()
            memo[ident] = blocked
        return blocked

    def forget(self, idents: Iterable[Identifier]) -> None:
        """Drop ``idents`` from the memo of :meth:`is_blocked` (an erasure: the memo is keyed
        by identifier values, and an erased person's must not stay in memory)."""
        for ident in idents:
            self._blocked.pop(ident, None)

    def unblocked(self, idents: list[Identifier]) -> list[Identifier]:
        """The identifiers of ``idents`` that are not blocked, in order (one call per event
        instead of one per identifier on the resolver's hot path)."""
        memo = self._blocked
        out = []
        for ident in idents:
            blocked = memo.get(ident)
            if blocked is None:
                blocked = self.is_blocked(ident)
            if not blocked:
                out.append(ident)
        return out

    def _is_blocked(self, ident: Identifier) -> bool:
        kind, value = ident
        folded = value.strip().lower()
        if not folded or folded in self.blocked_values:
            return True
        if f"{kind}:{value}" in self.blocked_exact:
            return True
        return any(p.search(value) for p in self.blocked_patterns.get(kind, ()))

    def priority_order(self, idents: Iterable[Identifier]) -> list[Identifier]:
        """``idents`` highest priority first, ties by ``type:value``: the order the resolver
        considers an event's identifiers in, and the order a split replays one event's links
        in (so both decide a contested limit the same way, whatever order a source listed
        the fields in)."""
        rank = self._rank
        other = -self.default_rule.priority
        if isinstance(idents, list) and len(idents) == 2:  # the commonest case: no sort
            a, b = idents
            if (rank.get(b[0], other), b[0], b[1]) < (rank.get(a[0], other), a[0], a[1]):
                return [b, a]
            return [a, b]
        return sorted(idents, key=lambda i: (rank.get(i[0], other), i[0], i[1]))

    @classmethod
    def default(cls) -> Rules:
        """The shipped defaults from ``rules.default.yaml`` (parsed once, then shared)."""
        return _default_rules()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Rules:
        """Build rules from parsed YAML/JSON.

        Unknown keys are errors rather than being ignored, because a typo such as
        ``max_per_profle`` would otherwise silently remove a limit. Missing sections mean
        "none" (no blocked values, no per-type rules), except ``merge_cap`` (100) and
        ``default`` (max 10, priority 10).

        Raises ValueError with the offending path in the message on any bad value.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"rules: expected a mapping at top level, got {_tname(data)}")
        _check_keys(data, _TOP_LEVEL_KEYS, "rules")

        merge_cap = data.get("merge_cap", 100)
        if not _is_int(merge_cap) or merge_cap < 0:
            raise ValueError(f"rules.merge_cap: expected an integer >= 0, got {merge_cap!r}")

        default_rule = (
            _parse_rule(data["default"], "rules.default")
            if "default" in data
            else IdentifierRule(max_per_profile=10, priority=10)
        )

        raw_idents = data.get("identifiers") or {}
        if not isinstance(raw_idents, Mapping):
            raise ValueError(f"rules.identifiers: expected a mapping, got {_tname(raw_idents)}")
        identifiers: dict[str, IdentifierRule] = {}
        for kind, raw_rule in raw_idents.items():
            _check_type_name(kind, "rules.identifiers")
            identifiers[kind] = _parse_rule(raw_rule, f"rules.identifiers.{kind}")

        blocked = data.get("blocked") or {}
        if not isinstance(blocked, Mapping):
            raise ValueError(f"rules.blocked: expected a mapping, got {_tname(blocked)}")
        _check_keys(blocked, _BLOCKED_KEYS, "rules.blocked")

        values = _str_list(blocked.get("values"), "rules.blocked.values")
        exact = _str_list(blocked.get("exact"), "rules.blocked.exact")
        for i, key in enumerate(exact):
            kind, sep, value = key.partition(":")
            if not sep or not kind or not value:
                raise ValueError(f"rules.blocked.exact[{i}]: expected 'type:value', got {key!r}")

        raw_patterns = blocked.get("patterns") or {}
        if not isinstance(raw_patterns, Mapping):
            raise ValueError(
                f"rules.blocked.patterns: expected a mapping of type -> list of regexes, "
                f"got {_tname(raw_patterns)}"
            )
        patterns: dict[str, tuple[re.Pattern[str], ...]] = {}
        for kind, raw_list in raw_patterns.items():
            _check_type_name(kind, "rules.blocked.patterns")
            where = f"rules.blocked.patterns.{kind}"
            compiled = []
            for i, src in enumerate(_str_list(raw_list, where)):
                try:
                    compiled.append(re.compile(src, re.IGNORECASE))
                except re.error as exc:
                    raise ValueError(f"{where}[{i}]: invalid regex {src!r}: {exc}") from exc
            patterns[kind] = tuple(compiled)

        return cls(
            identifiers=identifiers,
            blocked_exact=frozenset(exact),
            blocked_values=frozenset(values),
            blocked_patterns=patterns,
            merge_cap=merge_cap,
            default_rule=default_rule,
        )


def load_rules(path: Path | None) -> Rules:
    """Rules from a YAML file, or the shipped defaults when ``path`` is None.

    Raises OSError when the file cannot be read and ValueError (naming the file) when it is
    not valid YAML or not a valid rule set, so a bad deploy fails at start-up, not mid-stream.
    """
    if path is None:
        return Rules.default()
    return _load_file(Path(path))


@functools.cache
def _default_rules() -> Rules:
    return _load_file(DEFAULT_RULES_PATH)


def _load_file(path: Path) -> Rules:
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: invalid YAML: {exc}") from exc
    try:
        return Rules.from_mapping(data if data is not None else {})
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def _parse_rule(raw: Any, where: str) -> IdentifierRule:
    if not isinstance(raw, Mapping):
        raise ValueError(
            f"{where}: expected a mapping with max_per_profile and priority, got {_tname(raw)}"
        )
    _check_keys(raw, _RULE_KEYS, where)
    missing = sorted(_REQUIRED_RULE_KEYS - raw.keys())
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    max_per_profile = raw["max_per_profile"]
    priority = raw["priority"]
    if not _is_int(max_per_profile) or max_per_profile < 1:
        raise ValueError(
            f"{where}.max_per_profile: expected an integer >= 1, got {max_per_profile!r}"
        )
    if not _is_int(priority):
        raise ValueError(f"{where}.priority: expected an integer, got {priority!r}")
    generic_after = raw.get("generic_after")
    if generic_after is not None and (not _is_int(generic_after) or generic_after < 1):
        raise ValueError(
            f"{where}.generic_after: expected an integer >= 1 or null, got {generic_after!r}"
        )
    household = raw.get("household", False)
    if not isinstance(household, bool):
        raise ValueError(f"{where}.household: expected true or false, got {household!r}")
    if household and generic_after is None:
        raise ValueError(f"{where}.household: needs generic_after (the largest household)")
    return IdentifierRule(max_per_profile, priority, generic_after, household)


def _check_keys(data: Mapping[Any, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(str(k) for k in data.keys() - allowed)
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _check_type_name(kind: Any, where: str) -> None:
    if not isinstance(kind, str) or not kind or ":" in kind:
        raise ValueError(f"{where}: identifier type must be a non-empty string without ':'")


def _str_list(raw: Any, where: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list | tuple):
        raise ValueError(f"{where}: expected a list of strings, got {_tname(raw)}")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, str):
            # YAML turns unquoted 0, null, n/a-like scalars into non-strings; say so clearly.
            raise ValueError(
                f"{where}[{i}]: expected a string, got {_tname(item)} {item!r} "
                '(quote it in YAML, e.g. "0" or "null")'
            )
        out.append(item)
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tname(value: Any) -> str:
    return type(value).__name__
