"""Value types shared by every stage.

They are plain dataclasses with ``to_dict``/``from_dict`` so that the wire format (JSON via
orjson) is explicit and the pure modules never need Faust's record machinery.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

#: The raw sources scv ingests; the name is the middle part of ``raw.<source>.v1``.
SOURCES: tuple[str, ...] = ("web", "email", "transactions", "callcenter")

#: An identifier is ``(type, normalised value)``; ``ident_key`` gives its ``type:value`` form.
Identifier = tuple[str, str]


def _copy(value: Any) -> Any:
    """A copy of JSON-like data (what ``dataclasses.asdict`` gave, minus its overhead)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_copy(v) for v in value)
    return value


def ident_key(ident: Identifier) -> str:
    """The ``type:value`` string used as the key of an identifier in stores and topics."""
    return f"{ident[0]}:{ident[1]}"


def parse_ident(key: str) -> Identifier:
    kind, _, value = key.partition(":")
    return (kind, value)


@dataclass(slots=True)
class NormalizedEvent:
    """A validated raw event in the one shape the resolver and profile stages understand.

    ``identifiers`` are normalised (E.164 phones, lower-cased emails, trimmed ids) and
    de-duplicated, in the order the source gave them. ``traits`` hold personal attributes
    (first_name, last_name, birth_date, phone, email, address{street,city,postcode,country}).
    ``consent`` maps a purpose (``marketing``) to granted/denied when the event states it.
    ``payload`` is source specific: cart items, order, disposition, campaign and so on.
    """

    event_id: str
    source: str
    type: str
    ts: float
    identifiers: list[Identifier]
    traits: dict[str, Any] = field(default_factory=dict)
    consent: dict[str, bool] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The wire form, to be serialised at once: ``traits``, ``consent`` and ``payload``
        are the event's own dicts, not copies (copy them before mutating the result)."""
        return {
            "event_id": self.event_id,
            "source": self.source,
            "type": self.type,
            "ts": self.ts,
            "identifiers": [[kind, value] for kind, value in self.identifiers],
            "traits": self.traits,
            "consent": self.consent,
            "payload": self.payload,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NormalizedEvent:
        # Positional: keyword arguments cost a third of this on the resolver's hot path.
        return cls(
            d["event_id"],
            d["source"],
            d["type"],
            float(d["ts"]),
            [(str(t), str(v)) for t, v in d["identifiers"]],
            d.get("traits") or {},
            d.get("consent") or {},
            d.get("payload") or {},
        )


@dataclass(slots=True)
class LinkReason:
    """Why profiles were joined: the rule, the identifiers that tied them, and the event."""

    rule: str
    identifiers: list[str]
    event_id: str
    ts: float
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "identifiers": list(self.identifiers),
            "event_id": self.event_id,
            "ts": self.ts,
            "score": self.score,
        }


@dataclass(slots=True)
class MergeEvent:
    """One profile absorbed into another; published on ``profiles.merges.v1``."""

    survivor: str
    absorbed: str
    reason: LinkReason
    kind: str = "merge"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "survivor": self.survivor,
            "absorbed": self.absorbed,
            "reason": self.reason.to_dict(),
        }


@dataclass(slots=True)
class Split:
    """A profile split into parts (un-merge, or a value found generic).

    ``parts`` maps each resulting profile id to the identifier keys it owns; the part that
    holds the old profile's oldest identifier keeps ``profile_id`` (it may be absent when
    nothing is left). ``removed`` are keys that now belong to nobody (generic values), or
    to a household (``households``, a subset of ``removed``).
    """

    profile_id: str
    parts: dict[str, list[str]]
    removed: list[str]
    reason: LinkReason
    households: list[str] = field(default_factory=list)

    def events(self) -> list[dict[str, Any]]:
        """The ``profiles.merges.v1`` records: one ``split`` per profile split off."""
        return [
            {
                "kind": "split",
                "survivor": self.profile_id,
                "absorbed": pid,
                "identifiers": keys,
                "reason": self.reason.to_dict(),
            }
            for pid, keys in self.parts.items()
            if pid != self.profile_id
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile_id": self.profile_id,
            "parts": {pid: list(keys) for pid, keys in self.parts.items()},
            "removed": list(self.removed),
            "reason": self.reason.to_dict(),
        }


@dataclass(slots=True)
class Dropped:
    """An identifier of an event that governance refused to link, with the reason.

    ``owner`` is the profile the identifier belongs to when what was refused is a merge.
    """

    identifier: Identifier
    reason: str  # "blocked", "generic", "household", "banned", "limit:<type>", "merge_cap"
    owner: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"identifier": ident_key(self.identifier), "reason": self.reason}
        if self.owner is not None:
            d["owner"] = self.owner
        return d


@dataclass(slots=True)
class Resolution:
    """What the resolver decided for one event.

    ``profile_id`` is None when nothing usable was left (every identifier blocked): the event
    then belongs to nobody and is counted, not attached. ``accepted`` are the identifiers now
    owned by ``profile_id`` (both those already owned and those newly attached).
    """

    profile_id: str | None
    accepted: list[Identifier]
    dropped: list[Dropped]
    merges: list[MergeEvent]
    created: bool
    #: The event's highest-priority accepted identifier: the profile stage files the event's
    #: contribution under it, which is what lets a later split give each part its own history.
    anchor: Identifier | None = None
    splits: list[Split] = field(default_factory=list)
    #: Keys declared generic while deciding this event.
    generic: list[str] = field(default_factory=list)
    #: Values this event showed to be shared by a household (split off like generic ones).
    households: list[str] = field(default_factory=list)
    #: Households this decision founded, grew, merged or dissolved (see
    #: :mod:`scv.domain.households`); None when it touched none.
    household_change: Any = None
    #: Set when a matcher linked the event to an existing profile by its attributes.
    match: LinkReason | None = None
    #: A possible match (between the thresholds) for a person to decide; see
    #: ``identity.review.v1``.
    review: dict[str, Any] | None = None


ABANDONED_CART = "abandoned_cart"
CHURN_SAVE = "churn_save"


def action_id(kind: str, subject: str) -> str:
    """Deterministic idempotency key: the same cart or call always yields the same id."""
    return "act_" + hashlib.sha1(f"{kind}:{subject}".encode()).hexdigest()[:24]


@dataclass(slots=True)
class Action:
    """A marketing action for activation services; ``action_id`` is the idempotency key."""

    action_id: str
    type: str  # "abandoned_cart" | "churn_save"
    profile_id: str
    channel: str  # "email" | "sms" | "onsite"
    payload: dict[str, Any]
    trigger_event_id: str
    event_ts: float
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "action_id": self.action_id,
            "type": self.type,
            "profile_id": self.profile_id,
            "channel": self.channel,
            "payload": _copy(self.payload),
            "trigger_event_id": self.trigger_event_id,
            "event_ts": self.event_ts,
            "created_at": self.created_at,
        }
