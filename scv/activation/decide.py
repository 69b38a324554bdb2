"""Which programme messages a profile change earns: pure rules, the Faust agent only wires them.

For each new ``profiles.v1`` snapshot of a person the agent keeps a small :class:`Memory`
(the facts it saw last, the subjects already messaged, the messages sent within the longest
cap window) and calls :func:`decide`. A programme is **due** for a subject while its trigger
fact holds (true, non-empty, non-zero) and this profile has not messaged that subject yet:
a welcome for customer id C1 while the profile is registered, a cross-sell for order O-7
while it is the latest order. Then, in this order, the first reason that applies is why it
does not send now (counted, and kept for ``GET /profiles/{id}/programmes``):

1. ``stale``: the change happened ``max_lag_s`` before the newest event time this worker has
   seen (a replay or a backlog: no welcome for an account opened last spring); final: the
   subject will not be messaged;
2. ``condition``: a condition does not hold; ``excluded``: an exclusion holds (the
   programme's, or for a marketing programme the file's: a critical support ticket open);
3. ``objected``: the person objected (GDPR Art. 21);
4. ``no_consent``: the programme's consent purpose is not granted (missing means no);
5. ``no_channel``: none of its channels reaches the person;
6. ``programme_cap`` / ``global_cap``: too many messages within the cap's window; due
   programmes meet the caps in order of priority (the highest first).

Reasons 2 to 6 defer: the subject stays due, and a later change (the consent given, the
cap's window passed, a merge that brings the email) sends it. So the outcome does not hang
on which change came first, only on what the person's profile comes to hold: the same
traffic fast or paced, or in another interleaving, earns the same messages.

Time is event time throughout (the snapshot's ``updated_ts``). The action id derives from
the programme and its subject, never from the profile id, so a redelivered snapshot, or two
profiles of one person that both messaged a subject before they merged, yield the id already
sent, and the gate downstream (:func:`gate`) drops it.
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
DUPLICATE = "duplicate"  # the gate's: this action id was already sent

#: Facts of a profile nobody has seen yet: what a first snapshot's audiences are compared with.
EMPTY: Snapshot = {}

#: Where each channel reaches the person: the fact that must be known.
REACH = {"email": "email", "sms": "phone", "onsite": None}


@dataclass(slots=True)
class Memory:
    """What the agent keeps per profile (its table value)."""

    facts: dict[str, Any] | None = None
    #: [event time, programme] of the messages sent within the longest cap window
    sent: list[list[Any]] = field(default_factory=list)
    #: per programme, the subjects this profile has messaged (or found stale), newest last
    #: (at most :data:`DONE_CAP` each)
    done: dict[str, list[str]] = field(default_factory=dict)
    #: the latest decisions, oldest first: [event time, programme or ``audience:<name>``,
    #: outcome (``sent:<channel>``, a reason, ``entered``/``left``), detail] (at most
    #: :data:`TRAIL_CAP`): why a person got, or did not get, a message
    trail: list[list[Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "facts": self.facts,
            "sent": [list(s) for s in self.sent],
            "done": {k: list(v) for k, v in self.done.items()},
            "trail": [list(t) for t in self.trail],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Memory:
        if not d:
            return cls()
        return cls(
            d.get("facts"),
            [list(s) for s in d.get("sent") or ()],
            {k: list(v) for k, v in (d.get("done") or {}).items()},
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
    due = [p for p in rules.programmes if _due(p, new, memory)]
    decision = Decision([], [], _moves(rules, old, new))
    ready: list[tuple[Programme, str]] = []
    for p in due:
        reason = _blocked(p, rules, new, event_ts, stream_ts)
        if reason is not None:
            decision.skipped.append(Skipped(p.name, *reason))
            if reason[0] == STALE:
                _done(memory, p.name, str(new[p.trigger.subject]))
            continue
        channel = next((c for c in p.channels if _reaches(c, new)), None)
        if channel is None:
            decision.skipped.append(Skipped(p.name, NO_CHANNEL))
            continue
        ready.append((p, channel))
    # Highest priority first: when a cap allows fewer messages than are due, those go.
    ready.sort(key=lambda pc: (-pc[0].priority, pc[0].name))
    for p, channel in ready:
        capped = _capped(p, memory, rules, event_ts)
        if capped is not None:
            decision.skipped.append(Skipped(p.name, capped))
            continue
        memory.sent.append([event_ts, p.name])
        _done(memory, p.name, str(new[p.trigger.subject]))
        decision.actions.append(_action(p, channel, new, snapshot, rules, event_ts, now))
    _forget_old_sends(memory, rules, event_ts)
    _note(memory, decision, event_ts)
    return decision


#: Decisions kept per profile for tracing (``GET /profiles/{id}/programmes``).
TRAIL_CAP = 20


def _note(memory: Memory, decision: Decision, event_ts: float) -> None:
    """Into the trail; a deferral that says what the programme's last entry said already
    (no consent yet, on every change until it comes) is not repeated."""
    trail = memory.trail
    for action in decision.actions:
        trail.append([event_ts, action.type, f"sent:{action.channel}", action.action_id])
    for skipped in decision.skipped:
        last = next((e for e in reversed(trail) if e[1] == skipped.programme), None)
        if last is None or last[2:] != [skipped.reason, skipped.detail]:
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


#: Subjects remembered per programme and profile (a cross-sell per order: the latest orders).
DONE_CAP = 20


def _due(p: Programme, facts: dict[str, Any], memory: Memory) -> bool:
    t = p.trigger
    subject = facts.get(t.subject)
    if subject is None or not facts.get(t.fact):
        return False  # nothing to name the message by: no idempotent id, no message
    return str(subject) not in memory.done.get(p.name, ())


def _done(memory: Memory, programme: str, subject: str) -> None:
    subjects = memory.done.setdefault(programme, [])
    subjects.append(subject)
    if len(subjects) > DONE_CAP:
        del subjects[: len(subjects) - DONE_CAP]


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
