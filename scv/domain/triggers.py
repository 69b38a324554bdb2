"""Action triggers: abandoned cart and churn save, behind one gate (idempotency, staleness,
objection, consent, cooldown). The rules in prose: docs/actions.md.

Pure logic, no Faust. The profiles stage calls :func:`on_event` after
:func:`scv.domain.profile.apply_event` and :func:`due` from its timer (at
:func:`scv.domain.profile.next_due`). Both mutate the :class:`ProfileState` (fired ids,
cooldown stamps, cart status, churn flag), so the stage must persist the state it publishes
actions from — together, in one changelog write, or a crash could fire an action twice.

Idempotency rests on the action id being derived from the *subject* (the cart id, the
cancellation call's event id) and never from the profile id: when a merge moves a cart or a
churn flag to another profile, the id stays the same and the unioned ``fired`` list stops it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scv.domain.model import ABANDONED_CART, CHURN_SAVE, Action, NormalizedEvent, action_id
from scv.domain.profile import (
    ABANDONED,
    FIRED_CAP,
    OPEN,
    VISIT_TYPES,
    ProfileState,
    critical_ticket_open,
    objected,
)

#: Why an action was not emitted; the stage counts these in metrics.
DUPLICATE = "duplicate"  # already fired (replay, redelivery, or fired before a merge)
NO_CONSENT = "no_consent"  # consent purpose missing or denied
OBJECTED = "objected"  # the person objected (GDPR Art. 21): nothing fires, consent or not
CRITICAL_TICKET = "critical_ticket"  # a critical support ticket is open: no marketing until solved
COOLDOWN = "cooldown"  # another action of this type too recently
NO_CHANNEL = "no_channel"  # abandoned cart on a profile with neither email nor phone
EXPIRED = "expired"  # churn flag older than churn_max_age_s
STALE = "stale"  # its event happened too long before now (a replay or backfill of old traffic)


@dataclass(frozen=True, slots=True)
class TriggerConfig:
    """Trigger policy (the stage builds it from ``SCV_*`` settings; docs/actions.md).

    ``churn_max_age_s`` bounds how long a cancellation intent waits for a web visit: an
    offer months after the call is noise, and an unbounded flag would never be cleared for
    people who never come back (None disables the limit). ``churn_visit_grace_s`` is how long
    (processing time) a visit stays fresh enough for an onsite offer when the cancellation
    call, a consent grant or the merge that joins call and visit is processed after it.
    ``visit_types`` are the web event types that count as a visit (the stage passes them to
    ``apply_event``, which keeps the latest one).

    The two lags judge in *event time* against the processing clock, so that a replay or
    backfill of old traffic does not act today on what happened long ago:
    ``churn_visit_max_lag_s`` is how old a visit may be for an onsite offer (the person must
    still be on the site) and ``cart_max_lag_s`` how old a cart's last change may be for a
    reminder. Both default to None (no bound) here, for tests on synthetic times; the
    settings carry the real defaults.
    """

    cooldown_s: float = 86400.0
    require_consent_purpose: str = "marketing"
    churn_max_age_s: float | None = 30 * 86400.0
    churn_visit_grace_s: float = 300.0
    churn_visit_max_lag_s: float | None = None
    cart_max_lag_s: float | None = None
    visit_types: frozenset[str] = VISIT_TYPES


@dataclass(frozen=True, slots=True)
class Suppressed:
    """An action that was due but not emitted, and why (one of the module's reason constants)."""

    action_id: str
    type: str
    reason: str
    subject: str


def has_consent(state: ProfileState, purpose: str) -> bool:
    """True only for a recorded grant: missing consent means no."""
    rec = state.consent.get(purpose)
    return rec is not None and rec.get("granted") is True


def _gate(
    state: ProfileState,
    kind: str,
    aid: str,
    subject: str,
    now: float,
    cfg: TriggerConfig,
    suppressed: list[Suppressed] | None,
    stale: bool = False,
) -> str | None:
    """The reason to suppress an action, or None if it may fire (checked in this order)."""
    if aid in state.fired:
        reason = DUPLICATE
    elif stale:
        reason = STALE
    elif objected(state):
        reason = OBJECTED
    elif critical_ticket_open(state):
        reason = CRITICAL_TICKET
    elif not has_consent(state, cfg.require_consent_purpose):
        reason = NO_CONSENT
    elif kind in state.last_action_ts and now - state.last_action_ts[kind] < cfg.cooldown_s:
        reason = COOLDOWN
    else:
        return None
    if suppressed is not None:
        suppressed.append(Suppressed(aid, kind, reason, subject))
    return reason


def _record(state: ProfileState, kind: str, aid: str, now: float) -> None:
    state.fired.append(aid)
    if len(state.fired) > FIRED_CAP:
        del state.fired[: len(state.fired) - FIRED_CAP]
    state.last_action_ts[kind] = now


def on_event(
    state: ProfileState,
    event: NormalizedEvent,
    now: float,
    cfg: TriggerConfig,
    suppressed: list[Suppressed] | None = None,
) -> list[Action]:
    """Actions triggered by ``event`` (call after ``apply_event``): today only churn save.

    A web visit at or after an open cancellation flag fires one ``churn_save`` and clears the
    flag. Sources are consumed in parallel, so the pieces may arrive in any order: the
    cancellation call, or a consent grant, processed after a later visit fires it too, as
    long as that visit is fresh (``churn_visit_grace_s``). When consent or the cooldown
    blocks it the flag is *kept*, so a later visit (after the person grants marketing, or
    after the cooldown) can still save them; a duplicate (this call's offer was already made,
    e.g. before a merge or on a redelivered call event) clears it, because the intent has
    been handled. A visit too old in event time (``churn_visit_max_lag_s``: a replay) keeps it
    too: the flag waits for the person's next visit.
    """
    if state.churn is None:
        return []
    return pending_churn(state, now, cfg, suppressed)


def pending_churn(
    state: ProfileState,
    now: float,
    cfg: TriggerConfig,
    suppressed: list[Suppressed] | None = None,
) -> list[Action]:
    """A ``churn_save`` if the profile's latest visit is at or after its cancellation flag.

    The stage also calls this after a merge, which may bring a call and a visit together.
    """
    churn, visit = state.churn, state.last_visit
    if churn is None or visit is None or visit["ts"] < churn["flagged_ts"]:
        return []
    if now - float(visit.get("seen_at", now)) > cfg.churn_visit_grace_s:
        return []  # that visit is over; wait for the next one
    call_id = str(churn["event_id"])
    aid = action_id(CHURN_SAVE, call_id)
    if cfg.churn_max_age_s is not None and visit["ts"] - churn["flagged_ts"] > cfg.churn_max_age_s:
        state.churn = None
        if suppressed is not None:
            suppressed.append(Suppressed(aid, CHURN_SAVE, EXPIRED, call_id))
        return []
    # Event time: a visit replayed months later is no session to make an offer in. The flag
    # stays for the person's next visit (the maximum age still applies to it).
    lag = cfg.churn_visit_max_lag_s
    stale = lag is not None and now - float(visit["ts"]) > lag
    reason = _gate(state, CHURN_SAVE, aid, call_id, now, cfg, suppressed, stale)
    if reason == DUPLICATE:
        state.churn = None
    if reason is not None:
        return []
    _record(state, CHURN_SAVE, aid, now)
    state.churn = None
    return [
        Action(
            action_id=aid,
            type=CHURN_SAVE,
            profile_id=state.profile_id,
            channel="onsite",
            payload={
                "session_id": visit.get("session_id"),
                "anonymous_id": visit.get("anonymous_id"),
                "offer": "retention",
                "reason": "cancel_intent",
                "call_event_id": call_id,
            },
            trigger_event_id=str(visit["event_id"]),
            event_ts=float(visit["ts"]),
            created_at=now,
        )
    ]


def _cart_value(items: list[dict[str, Any]]) -> float:
    total = 0.0
    for item in items:
        try:
            total += float(item.get("qty") or 0) * float(item.get("price") or 0)
        except (TypeError, ValueError, AttributeError):
            continue  # one malformed line must not lose the whole reminder
    return round(total, 2)


def due(
    state: ProfileState,
    now: float,
    cfg: TriggerConfig,
    suppressed: list[Suppressed] | None = None,
) -> list[Action]:
    """Abandoned-cart actions for open carts whose ``due_at`` has passed.

    Every due cart becomes ``abandoned`` whether or not an action is emitted, so it is
    decided exactly once: a reminder that consent, cooldown, a missing channel or the cart's
    age (``cart_max_lag_s``, event time) blocked is not retried later (a stale reminder is
    worse than none). The channel is email if the profile has an email identifier, else sms
    if it has a phone; the address itself is not in the payload — the activation service
    looks it up by profile id, which keeps personal data off ``actions.v1``. A cart whose
    events listed no ``items`` carries the lines they named (``items_complete`` false).
    """
    actions: list[Action] = []
    due_carts = sorted(
        (c["due_at"], cid)
        for cid, c in state.carts.items()
        if c["status"] == OPEN and c.get("due_at") is not None and c["due_at"] <= now
    )
    for _, cart_id in due_carts:
        cart = state.carts[cart_id]
        cart["status"] = ABANDONED
        cart["due_at"] = None
        aid = action_id(ABANDONED_CART, cart_id)
        lag = cfg.cart_max_lag_s
        stale = lag is not None and now - float(cart["updated_ts"]) > lag
        if _gate(state, ABANDONED_CART, aid, cart_id, now, cfg, suppressed, stale) is not None:
            continue
        if state.identifiers.get("email"):
            channel = "email"
        elif state.identifiers.get("phone"):
            channel = "sms"
        else:
            if suppressed is not None:
                suppressed.append(Suppressed(aid, ABANDONED_CART, NO_CHANNEL, cart_id))
            continue
        _record(state, ABANDONED_CART, aid, now)
        items = cart.get("items") or []
        actions.append(
            Action(
                action_id=aid,
                type=ABANDONED_CART,
                profile_id=state.profile_id,
                channel=channel,
                payload={
                    "cart_id": cart_id,
                    "items": [dict(i) if isinstance(i, dict) else i for i in items],
                    "currency": cart.get("currency"),
                    "value": _cart_value(items),
                    "items_complete": cart.get("complete", True) is not False,
                },
                trigger_event_id=str(cart.get("event_id") or ""),
                event_ts=float(cart["updated_ts"]),
                created_at=now,
            )
        )
    return actions


__all__ = [
    "ABANDONED_CART",
    "CHURN_SAVE",
    "COOLDOWN",
    "DUPLICATE",
    "EXPIRED",
    "NO_CHANNEL",
    "NO_CONSENT",
    "OBJECTED",
    "STALE",
    "Suppressed",
    "TriggerConfig",
    "action_id",
    "due",
    "has_consent",
    "on_event",
    "pending_churn",
]
