"""Which programme messages a profile change earns: pure rules, the Faust agent only wires them.

For each new ``profiles.v1`` snapshot of a person the agent keeps a small :class:`Memory`
(the facts it saw last, the messages sent within the longest cap window) and calls
:func:`decide`. A programme fires when its trigger reads a change between the old and new
facts (``became``: a fact turned true; ``increased``: a number grew); a first snapshot is
compared with an empty profile, so the order that created a profile counts. Then, in this
order, the first reason that applies is why it does not send (counted, and kept for
``scv explain``):

1. ``stale``: the change happened ``max_lag_s`` before the newest event time this worker has
   seen (a replay or a backlog: no welcome for an account opened last spring);
2. ``condition``: a condition does not hold; ``excluded``: an exclusion holds (the
   programme's, or for a marketing programme the file's: a critical support ticket open);
3. ``objected``: the person objected (GDPR Art. 21);
4. ``no_consent``: the programme's consent purpose is not granted (missing means no);
5. ``no_channel``: none of its channels reaches the person;
6. ``programme_cap`` / ``global_cap``: too many messages within the cap's window;
7. ``lower_priority``: another programme fired for the same change with a higher priority
   (one message per person per change).

Time is event time throughout (the snapshot's ``updated_ts``), so a replay decides as the
live run did. The action id derives from the programme and its subject (the customer id
of a registration, the order id of a purchase), never from the profile id, so a redelivered
snapshot, or a merge that makes a fact "change" again, yields the id already sent, and the
gate downstream (:func:`gate`) drops it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from scv.activation.facts import Snapshot, facts_of
from scv.activation.programmes import AUDIENCE_FACT, Programme, Programmes
from scv.domain.model import Action, action_id

STALE = "stale"
CONDITION = "condition"
EXCLUDED = "excluded"
OBJECTED = "objected"
NO_CONSENT = "no_consent"
NO_CHANNEL = "no_channel"
PROGRAMME_CAP = "programme_cap"
GLOBAL_CAP = "global_cap"
LOWER_PRIORITY = "lower_priority"
DUPLICATE = "duplicate"  # the gate's: this action id was already sent

#: Facts of a profile nobody has seen yet: what a first snapshot is compared with.
EMPTY: Snapshot = {}

#: Where each channel reaches the person: the fact that must be known.
REACH = {"email": "email", "sms": "phone", "onsite": None}


@dataclass(slots=True)
class Memory:
    """What the agent keeps per profile (its table value)."""

    facts: dict[str, Any] | None = None
    #: [event time, programme] of the messages sent within the longest cap window
    sent: list[list[Any]] = field(default_factory=list)
    #: the latest decisions, oldest first: [event time, programme or ``audience:<name>``,
    #: outcome (``sent:<channel>``, a reason, ``entered``/``left``), detail] (at most
    #: :data:`TRAIL_CAP`): why a person got, or did not get, a message
    trail: list[list[Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "facts": self.facts,
            "sent": [list(s) for s in self.sent],
            "trail": [list(t) for t in self.trail],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Memory:
        if not d:
            return cls()
        return cls(
            d.get("facts"),
            [list(s) for s in d.get("sent") or ()],
            [list(t) for t in d.get("trail") or ()],
        )


@dataclass(frozen=True, slots=True)
class Skipped:
    """A programme that fired and sent nothing, and why (metrics and ``scv explain``)."""

    programme: str
    reason: str
    detail: str = ""


@dataclass(slots=True)
class Decision:
    actions: list[Action]
    skipped: list[Skipped]
    #: (audience, True on entry / False on leaving), in the order the audiences are declared
    audiences: list[tuple[str, bool]] = field(default_factory=list)


def decide(
    memory: Memory,
    snapshot: Snapshot,
    rules: Programmes,
    stream_ts: float,
    now: float,
) -> Decision:
    """The messages this snapshot earns; updates ``memory`` in place.

    ``stream_ts``: the newest event time the worker has seen (for ``max_lag_s``); ``now``:
    wall clock, only for the action's ``created_at``.
    """
    new = facts_of(snapshot)
    for audience in rules.audiences:
        new[AUDIENCE_FACT.format(name=audience.name)] = all(
            c.holds(new) for c in audience.conditions
        )
    old = memory.facts if memory.facts is not None else facts_of(EMPTY)
    memory.facts = new
    event_ts = float(snapshot.get("updated_ts") or 0.0)
    fired = [p for p in rules.programmes if _triggered(p, old, new)]
    decision = Decision([], [], _moves(rules, old, new))
    ready: list[tuple[Programme, str]] = []
    for p in fired:
        reason = _blocked(p, rules, new, event_ts, stream_ts)
        if reason is not None:
            decision.skipped.append(Skipped(p.name, *reason))
            continue
        channel = next((c for c in p.channels if _reaches(c, new)), None)
        if channel is None:
            decision.skipped.append(Skipped(p.name, NO_CHANNEL))
            continue
        ready.append((p, channel))
    ready.sort(key=lambda pc: (-pc[0].priority, pc[0].name))
    for i, (p, channel) in enumerate(ready):
        if i > 0:
            decision.skipped.append(Skipped(p.name, LOWER_PRIORITY, ready[0][0].name))
            continue
        capped = _capped(p, memory, rules, event_ts)
        if capped is not None:
            decision.skipped.append(Skipped(p.name, capped))
            continue
        memory.sent.append([event_ts, p.name])
        decision.actions.append(_action(p, channel, new, snapshot, rules, event_ts, now))
    _forget_old_sends(memory, rules, event_ts)
    _note(memory, decision, event_ts)
    return decision


#: Decisions kept per profile for tracing (``GET /profiles/{id}/programmes``).
TRAIL_CAP = 20


def _note(memory: Memory, decision: Decision, event_ts: float) -> None:
    trail = memory.trail
    for action in decision.actions:
        trail.append([event_ts, action.type, f"sent:{action.channel}", action.action_id])
    for skipped in decision.skipped:
        trail.append([event_ts, skipped.programme, skipped.reason, skipped.detail])
    for name, entered in decision.audiences:
        trail.append([event_ts, f"audience:{name}", "entered" if entered else "left", ""])
    if len(trail) > TRAIL_CAP:
        del trail[: len(trail) - TRAIL_CAP]


def _moves(rules: Programmes, old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, bool]]:
    moves = []
    for audience in rules.audiences:
        fact = AUDIENCE_FACT.format(name=audience.name)
        if bool(old.get(fact)) != bool(new.get(fact)):
            moves.append((audience.name, bool(new.get(fact))))
    return moves


def forget(memory: Memory, rules: Programmes) -> list[str]:
    """The audiences a profile leaves when it goes (merged into another, or erased): every
    one it was in. Its survivor's next snapshot enters whatever the merged person is in."""
    facts = memory.facts or {}
    return [a.name for a in rules.audiences if facts.get(AUDIENCE_FACT.format(name=a.name))]


def _reaches(channel: str, facts: dict[str, Any]) -> bool:
    needed = REACH[channel]
    return needed is None or bool(facts.get(needed))


def _triggered(p: Programme, old: dict[str, Any], new: dict[str, Any]) -> bool:
    t = p.trigger
    if new.get(t.subject) is None:
        return False  # nothing to name the message by: no idempotent id, no message
    before, after = old.get(t.fact), new.get(t.fact)
    if t.kind == "became":
        return bool(after) and not before
    return isinstance(after, (int, float)) and after > (before or 0)


def _blocked(
    p: Programme, rules: Programmes, facts: dict[str, Any], event_ts: float, stream_ts: float
) -> tuple[str, str] | None:
    if p.max_lag_s is not None and stream_ts - event_ts > p.max_lag_s:
        return STALE, f"{stream_ts - event_ts:.0f}s behind"
    for c in p.conditions:
        if not c.holds(facts):
            return CONDITION, c.describe()
    for c in p.exclusions:
        if c.holds(facts):
            return EXCLUDED, c.describe()
    if p.purpose is not None:
        for c in rules.exclusions:
            if c.holds(facts):
                return EXCLUDED, c.describe()
    if p.purpose is not None and facts.get("objected"):
        return OBJECTED, ""
    if p.purpose == "marketing" and not facts.get("marketing_consent"):
        return NO_CONSENT, p.purpose
    return None


def _capped(p: Programme, memory: Memory, rules: Programmes, event_ts: float) -> str | None:
    if p.cap is not None:
        since = event_ts - p.cap.window_s
        if sum(1 for ts, name in memory.sent if name == p.name and ts > since) >= p.cap.count:
            return PROGRAMME_CAP
    cap = rules.global_cap
    if cap is not None and p.purpose is not None:
        marketing = {q.name for q in rules.programmes if q.purpose is not None}
        since = event_ts - cap.window_s
        if sum(1 for ts, name in memory.sent if name in marketing and ts > since) >= cap.count:
            return GLOBAL_CAP
    return None


def _forget_old_sends(memory: Memory, rules: Programmes, event_ts: float) -> None:
    windows = [p.cap.window_s for p in rules.programmes if p.cap is not None]
    if rules.global_cap is not None:
        windows.append(rules.global_cap.window_s)
    keep = max(windows, default=0.0)
    memory.sent = [s for s in memory.sent if float(s[0]) > event_ts - keep]


def _action(
    p: Programme,
    channel: str,
    facts: dict[str, Any],
    snapshot: Snapshot,
    rules: Programmes,
    event_ts: float,
    now: float,
) -> Action:
    subject = str(facts[p.trigger.subject])
    return Action(
        action_id=action_id(p.name, subject),
        type=p.name,
        profile_id=str(snapshot["profile_id"]),
        channel=channel,
        payload={
            "programme": p.name,
            "subject": subject,
            "not_before": _not_before(rules, channel, event_ts),
            "first_name": facts.get("first_name"),
        },
        trigger_event_id=subject,
        event_ts=event_ts,
        created_at=now,
    )


def _not_before(rules: Programmes, channel: str, event_ts: float) -> float | None:
    """The end of the quiet hours if the change came within them (email and SMS only)."""
    quiet = rules.quiet_hours
    if quiet is None or channel == "onsite":
        return None
    at = datetime.fromtimestamp(event_ts, ZoneInfo(quiet.timezone))
    if not quiet.covers(at.time()):
        return None
    end = at.replace(hour=quiet.end.hour, minute=quiet.end.minute, second=0, microsecond=0)
    if end <= at:
        end += timedelta(days=1)
    return end.timestamp()


def gate(sent: Any, action: Action) -> bool:
    """True the first time ``action``'s id comes by (``sent``: the gate's table, keyed by
    action id); the id is then recorded."""
    if action.action_id in sent:
        return False
    sent[action.action_id] = action.created_at
    return True
