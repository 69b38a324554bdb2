"""Profile state: fold one person's events and merged profiles into a single customer view.

Pure logic, no Faust: the profiles stage keeps one :class:`ProfileState` per profile id, calls
:func:`apply_event` for each resolved event, :func:`absorb` when the resolver merged another
profile into it, and publishes :func:`snapshot` on ``profiles.v1``.

Two properties drive the design:

* **Out-of-order safety.** Events from four source systems arrive late and out of order, and
  a merge hand-over can overtake (or be overtaken by) events of the survivor. Every field is
  therefore decided by *event time* (per-trait and per-purpose timestamps, carts by
  ``updated_ts``), never by arrival order, so a late event cannot regress newer data.
* **Order-independent merges.** ``absorb(a, b)`` and ``absorb(b, a)`` give the same outcome
  for everything but the surviving id, and folding a hand-over before or after the survivor's
  own events closes the same carts. Ties are broken by a canonical encoding of the values,
  never by which side happens to be the survivor.

State stays bounded: closed carts, recent orders and fired action ids are capped so a
long-lived profile does not grow its changelog record without limit.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

import orjson

from scv.domain.model import CHURN_SAVE, Action, Identifier, NormalizedEvent, action_id

#: Fired action ids kept for idempotency. Actions are rare per person (one per cart, one per
#: cancellation call), so 200 covers years of history; cooldowns are the second line.
FIRED_CAP = 200
#: Closed (ordered/emptied/abandoned) carts kept; open carts are never dropped.
CLOSED_CARTS_CAP = 20
#: Recent orders kept for de-duplication and for closing carts by ``cart_id`` after a merge.
RECENT_ORDERS_CAP = 50
#: Latest events kept per part for the single-customer view's timeline: enough for a
#: call-centre agent's "what happened lately", small enough for the changelog.
ACTIVITY_CAP = 20
#: Latest actions kept for the single-customer view (``fired`` keeps only their ids).
ACTIONS_CAP = 20

#: Cart statuses. Only ``open`` carts can become ``abandoned``.
OPEN, ORDERED, EMPTIED, ABANDONED = "open", "ordered", "emptied", "abandoned"
_STATUS_RANK = {OPEN: 0, EMPTIED: 1, ORDERED: 2, ABANDONED: 3}

#: Email events that state a marketing decision even when the source sent no consent block:
#: an unsubscribe or spam complaint must stop marketing at once (and a subscribe grants it).
_EMAIL_IMPLIED_CONSENT = {"unsubscribe": False, "complaint": False, "subscribe": True}

_CART_TYPES = frozenset({"cart_add", "cart_remove"})
#: Web events that count as a visit (a churn-save offer can be shown in that session).
VISIT_TYPES = frozenset({"page_view", "product_view", "cart_add", "login"})


def _canon(value: Any) -> bytes:
    """A total, deterministic encoding used only to break exact timestamp ties symmetrically."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def _copy(value: Any) -> Any:
    """Copy JSON-like data (dicts/lists of scalars) without ``copy.deepcopy``'s overhead."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


def _same(value: Any) -> Any:
    return value


def _empty(value: Any) -> bool:
    """Missing data never overwrites known data: None, blank strings and empty containers."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, dict | list | tuple):
        return not value
    return False


def _new_orders() -> dict[str, Any]:
    return {
        "count": 0,
        "total": 0.0,
        "last_order_id": None,
        "last_ts": None,
        "returns": 0,
        "recent": [],
    }


@dataclass(slots=True)
class ProfileState:
    """Everything the profiles stage knows about one person (one changelog record).

    ``trait_ts`` holds the event time of each stored trait (``address.city`` for nested
    traits) so an out-of-order event cannot overwrite a newer value. ``orders["recent"]``
    keeps the last orders (id, ts, cart_id, total): it de-duplicates redelivered order events
    and lets a later merge close a cart that an order named by ``cart_id``. ``last_visit``
    is the latest web visit by event time (with the processing time it was seen), because
    sources are consumed in parallel: the visit after a cancellation call may be processed
    before the call, and the churn save must still fire.
    """

    profile_id: str
    created_ts: float
    updated_ts: float
    identifiers: dict[str, list[str]] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    trait_ts: dict[str, float] = field(default_factory=dict)
    consent: dict[str, dict[str, Any]] = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)
    last_activity: dict[str, Any] | None = None
    carts: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, Any] = field(default_factory=_new_orders)
    churn: dict[str, Any] | None = None
    last_visit: dict[str, Any] | None = None
    fired: list[str] = field(default_factory=list)
    last_action_ts: dict[str, float] = field(default_factory=dict)
    merged_from: list[str] = field(default_factory=list)
    event_count: int = 0
    #: Per anchor identifier, the fold of the events filed under it (see scv.domain.parts).
    parts: dict[str, ProfileState] = field(default_factory=dict)
    #: Identifiers that left this profile in a split -> [where to ("" = nowhere), the
    #: resolver's decision number of that split] (see scv.domain.parts.reroute).
    moved: dict[str, list[Any]] = field(default_factory=dict)
    #: The resolver decision the ``identifiers`` list was last set from (hand-overs decided
    #: earlier must not add to it: the resolver's list already accounts for them).
    ids_seq: int = 0
    #: The person's objection (GDPR Art. 21), ``{"active", "ts", "command_id", "source"}``:
    #: while active no action fires, whatever consent says. None: never stated.
    objection: dict[str, Any] | None = None
    #: A part's latest events, oldest first: ``[ts, source, type, event_id]`` (at most
    #: :data:`ACTIVITY_CAP`). Kept on the parts only, so that a split hands each part its
    #: own events without a second copy on the aggregate: see :func:`timeline`.
    activity: list[list[Any]] = field(default_factory=list)
    #: The latest actions sent, oldest first: ``[created_at, type, channel, action_id,
    #: trigger_event_id]`` (at most :data:`ACTIONS_CAP`). Per person, like ``fired``.
    actions: list[list[Any]] = field(default_factory=list)
    #: The household the person belongs to (``households.v1``), as the resolver last said.
    household_id: str | None = None
    #: Support tickets by id: ``{"status": "open"|"solved", "priority", "opened_ts", "ts",
    #: "event_id"}``, the latest update by event time (open ones, and the newest
    #: :data:`SOLVED_TICKETS_CAP` solved). A critical open one excludes the person from
    #: marketing until it is solved.
    tickets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self, copy: bool = True) -> dict[str, Any]:
        """JSON-safe copy (no aliasing: mutating the state later does not change it).

        ``copy=False`` shares the state's containers instead: only for a dict serialised at
        once (``orjson.dumps(state.to_dict(copy=False))``), before the state changes again.
        """
        if not copy:
            return {
                "v": 1,
                "profile_id": self.profile_id,
                "created_ts": self.created_ts,
                "updated_ts": self.updated_ts,
                "identifiers": self.identifiers,
                "traits": self.traits,
                "trait_ts": self.trait_ts,
                "consent": self.consent,
                "channels": self.channels,
                "last_activity": self.last_activity,
                "carts": self.carts,
                "orders": self.orders,
                "churn": self.churn,
                "last_visit": self.last_visit,
                "fired": self.fired,
                "last_action_ts": self.last_action_ts,
                "merged_from": self.merged_from,
                "event_count": self.event_count,
                "parts": (
                    {anchor: part.to_dict(False) for anchor, part in self.parts.items()}
                    if self.parts  # a part's own parts: always empty
                    else {}
                ),
                "moved": self.moved,
                "ids_seq": self.ids_seq,
                **({"objection": self.objection} if self.objection is not None else {}),
                "activity": self.activity,
                "actions": self.actions,
                **({"household_id": self.household_id} if self.household_id else {}),
                **({"tickets": self.tickets} if self.tickets else {}),
            }
        return {
            "v": 1,
            "profile_id": self.profile_id,
            "created_ts": self.created_ts,
            "updated_ts": self.updated_ts,
            "identifiers": _copy(self.identifiers),
            "traits": _copy(self.traits),
            "trait_ts": dict(self.trait_ts),
            "consent": _copy(self.consent),
            "channels": dict(self.channels),
            "last_activity": _copy(self.last_activity),
            "carts": _copy(self.carts),
            "orders": _copy(self.orders),
            "churn": _copy(self.churn),
            "last_visit": _copy(self.last_visit),
            "fired": list(self.fired),
            "last_action_ts": dict(self.last_action_ts),
            "merged_from": list(self.merged_from),
            "event_count": self.event_count,
            "parts": {anchor: part.to_dict() for anchor, part in self.parts.items()},
            "moved": {k: list(v) for k, v in self.moved.items()},
            "ids_seq": self.ids_seq,
            **({"objection": _copy(self.objection)} if self.objection is not None else {}),
            "activity": [list(e) for e in self.activity],
            "actions": [list(e) for e in self.actions],
            **({"household_id": self.household_id} if self.household_id else {}),
            **({"tickets": _copy(self.tickets)} if self.tickets else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], copy: bool = True) -> ProfileState:
        """Inverse of :meth:`to_dict`; tolerant of missing keys so older records still load.

        ``copy=False`` takes over ``d``'s containers instead of copying them: only for a dict
        the caller owns alone and drops afterwards (just parsed from bytes, or
        ``to_dict(copy=False)`` of a state that is discarded).
        """
        keep = _copy if copy else _same
        orders = _new_orders()
        orders.update(keep(d.get("orders") or {}))
        return cls(
            profile_id=d["profile_id"],
            created_ts=float(d["created_ts"]),
            updated_ts=float(d["updated_ts"]),
            identifiers=keep(d.get("identifiers") or {}),
            traits=keep(d.get("traits") or {}),
            trait_ts={k: float(v) for k, v in (d.get("trait_ts") or {}).items()},
            consent=keep(d.get("consent") or {}),
            channels={k: int(v) for k, v in (d.get("channels") or {}).items()},
            last_activity=keep(d.get("last_activity")),
            carts=keep(d.get("carts") or {}),
            orders=orders,
            churn=keep(d.get("churn")),
            last_visit=keep(d.get("last_visit")),
            fired=list(d.get("fired") or []),
            last_action_ts={k: float(v) for k, v in (d.get("last_action_ts") or {}).items()},
            merged_from=list(d.get("merged_from") or []),
            event_count=int(d.get("event_count") or 0),
            parts={a: cls.from_dict(p, copy) for a, p in (d.get("parts") or {}).items()},
            moved={k: list(v) for k, v in (d.get("moved") or {}).items()},
            ids_seq=int(d.get("ids_seq") or 0),
            objection=keep(d.get("objection")),
            activity=_entries(d.get("activity"), copy),
            actions=_entries(d.get("actions"), copy),
            household_id=d.get("household_id"),
            tickets=keep(d.get("tickets") or {}),
        )


def _entries(value: list[list[Any]] | None, copy: bool) -> list[list[Any]]:
    """A stored list of list entries (activity, actions), copied unless ``copy`` is False."""
    if not value:
        return []
    return [list(e) for e in value] if copy else value


def new_state(profile_id: str, ts: float) -> ProfileState:
    """An empty profile first seen at event time ``ts``."""
    # Positional, every field given: the dataclass __init__ then calls no default factory.
    return ProfileState(
        profile_id,
        ts,
        ts,
        {},  # identifiers
        {},  # traits
        {},  # trait_ts
        {},  # consent
        {},  # channels
        None,  # last_activity
        {},  # carts
        _new_orders(),
        None,  # churn
        None,  # last_visit
        [],  # fired
        {},  # last_action_ts
        [],  # merged_from
        0,  # event_count
        {},  # parts
        {},  # moved
        0,  # ids_seq
        None,  # objection
        [],  # activity
        [],  # actions
        None,  # household_id
        {},  # tickets
    )


# --------------------------------------------------------------------------------------------
# apply_event: the hot path. Each helper touches only what the event carries.
# --------------------------------------------------------------------------------------------


def apply_event(
    state: ProfileState,
    event: NormalizedEvent,
    accepted: list[Identifier],
    now: float,
    cart_window_s: float,
    visit_types: frozenset[str] = VISIT_TYPES,
) -> None:
    """Fold one resolved event into ``state`` in place.

    ``accepted`` are the identifiers the resolver attached (governance may have dropped some
    of the event's identifiers, so ``event.identifiers`` is not used). ``now`` is processing
    wall-clock: a cart's ``due_at`` is ``now + cart_window_s`` so a backfill of old events
    still gives the matching order (usually a few records later) its chance to close the cart.
    ``visit_types`` are the web event types kept as the latest visit (``SCV_CHURN_VISIT_TYPES``
    in the stage; :data:`VISIT_TYPES` by default).
    """
    ts = event.ts
    source = event.source
    etype = event.type
    state.event_count += 1
    channels = state.channels
    channels[source] = channels.get(source, 0) + 1
    if ts > state.updated_ts:
        state.updated_ts = ts
    if ts < state.created_ts or state.created_ts <= 0.0:  # 0.0: not known yet
        state.created_ts = ts
    la = state.last_activity
    # Ties by source and type, as absorb() breaks them: not by which arrived last.
    if la is None or (ts, source, etype) >= _activity_key(la):
        state.last_activity = {"ts": ts, "source": source, "type": etype}

    idents = state.identifiers
    for kind, value in accepted:
        values = idents.get(kind)
        if values is None:
            idents[kind] = [value]
        elif value not in values:
            values.append(value)

    traits = event.traits
    if traits:
        _apply_traits(state, traits, ts)

    consent = event.consent
    if source == "email" and etype in _EMAIL_IMPLIED_CONSENT:
        implied = _EMAIL_IMPLIED_CONSENT[etype]
        consent = {"marketing": implied, **consent}  # an explicit statement still wins
    if consent:
        for purpose, granted in consent.items():
            _set_consent(state, purpose, bool(granted), ts, source)

    if source == "web":
        if etype in visit_types:
            lv = state.last_visit
            event_id = event.event_id
            # (ts, event_id, now) against the first three fields of _visit_key(lv), without
            # encoding the visit for the fourth (a three-field comparison never reaches it).
            if lv is None or (ts, event_id, now) >= _visit_order(lv):
                anonymous_id = None
                for kind, value in accepted:
                    if kind == "anonymous_id":
                        anonymous_id = value
                        break
                state.last_visit = {
                    "ts": ts,
                    "event_id": event_id,
                    "session_id": event.payload.get("session_id"),
                    "anonymous_id": anonymous_id,
                    "seen_at": now,
                }
        if etype in _CART_TYPES:
            cart = event.payload.get("cart")
            if isinstance(cart, dict):
                product = event.payload.get("product")
                added = 1 if etype == "cart_add" else -1
                _apply_cart(state, cart, ts, now + cart_window_s, event.event_id, product, added)
    elif source == "transactions":
        if etype == "order":
            _apply_order(state, event.payload, ts)
        elif etype == "return":
            state.orders["returns"] = int(state.orders.get("returns") or 0) + 1
    elif source == "callcenter":
        if etype == "ticket":
            _apply_ticket(state, event.payload.get("ticket"), ts, event.event_id)
            return
        disposition = event.payload.get("disposition")
        if isinstance(disposition, dict) and disposition.get("cancel_intent") is True:
            churn = state.churn
            # Keep the earliest open flag: the same rule as absorb(), so order does not matter.
            if churn is None or (ts, event.event_id) < (churn["flagged_ts"], churn["event_id"]):
                state.churn = {"flagged_ts": ts, "event_id": event.event_id}
                settle_churn(state)


#: Solved tickets kept per profile (the newest): enough to recognise a late update.
SOLVED_TICKETS_CAP = 20
#: Ticket priorities, lowest first; ``critical`` excludes the person from marketing.
TICKET_PRIORITIES = ("low", "normal", "high", "critical")


def _apply_ticket(state: ProfileState, ticket: Any, ts: float, event_id: str) -> None:
    """A support ticket opened, updated or solved. The latest update by event time wins
    (sources are consumed in parallel: a ``solved`` may be processed before the ``opened``
    it follows), so the same updates in any order give the same tickets."""
    if not isinstance(ticket, dict) or not isinstance(ticket.get("ticket_id"), str):
        return
    status = "solved" if ticket.get("status") == "solved" else "open"
    update = {
        "status": status,
        "priority": ticket.get("priority") or "normal",
        "opened_ts": ts,
        "ts": ts,
        "event_id": event_id,
    }
    _merge_ticket(state.tickets, ticket["ticket_id"], update)


def _merge_ticket(tickets: dict[str, dict[str, Any]], tid: str, update: dict[str, Any]) -> None:
    mine = tickets.get(tid)
    if mine is None:
        tickets[tid] = dict(update)
    else:
        opened = min(float(mine["opened_ts"]), float(update["opened_ts"]))
        if (update["ts"], update["event_id"]) > (mine["ts"], mine["event_id"]):
            mine.update(update)
        mine["opened_ts"] = opened
    solved = [t for t, v in tickets.items() if v["status"] == "solved"]
    if len(solved) > SOLVED_TICKETS_CAP:
        solved.sort(key=lambda t: (tickets[t]["ts"], t))
        for t in solved[: len(solved) - SOLVED_TICKETS_CAP]:
            del tickets[t]


def critical_ticket_open(state: ProfileState) -> bool:
    return any(
        t["status"] == "open" and t["priority"] == "critical" for t in state.tickets.values()
    )


def settle_churn(state: ProfileState) -> None:
    """Close the churn flag if its retention offer was already made (its action id is in
    ``fired``).

    A flag is open until its offer is made; the offer clears it. The call also stays in the
    partial state of its anchor, so a rebuild (split, adoption) or a merge with a part that
    saw the call folds the flag back in; so does a redelivered call. Without this rule the
    flag would stay open until the person's next fresh visit found the offer a duplicate,
    and whether that visit was still fresh depends on processing speed: the same events gave
    another profile after a broker restart (exactly-once chaos on Apache Kafka).
    """
    churn = state.churn
    if churn is not None and action_id(CHURN_SAVE, str(churn["event_id"])) in state.fired:
        state.churn = None


def note_activity(part: ProfileState, event: NormalizedEvent) -> None:
    """Keep ``event`` in ``part``'s sorted, de-duplicated, capped ``activity``.

    The list is the newest :data:`ACTIVITY_CAP` distinct entries ever seen, in entry order,
    so filing events in any order (or a redelivered one) and merging two profiles
    (:func:`_union_activity`) give the same list.
    """
    log = part.activity
    entry = [event.ts, event.source, event.type, event.event_id]
    if not log or entry > log[-1]:  # the usual case: the newest event so far
        log.append(entry)
    else:
        i = bisect_left(log, entry)
        if i < len(log) and log[i] == entry:
            return  # redelivered
        log.insert(i, entry)
    if len(log) > ACTIVITY_CAP:
        del log[0]


def _visit_order(visit: dict[str, Any]) -> tuple[float, str, float]:
    """``_visit_key(visit)[:3]``: event time, event id, sighting."""
    seen = float(visit.get("seen_at", 0.0))
    return (float(visit["ts"]), str(visit["event_id"]), seen)


def _visit_key(visit: dict[str, Any]) -> tuple[float, str, float, bytes]:
    """Later event time wins; ties (a redelivered visit) go to the later sighting, then to
    the content, so absorb() picks the same visit whichever side survives."""
    return (*_visit_order(visit), _canon(visit))


def _trait_wins(new_ts: float, new: Any, old_ts: float | None, old: Any) -> bool:
    """Newer event time wins; an exact tie is broken by value so replays and merges agree."""
    if old_ts is None or new_ts > old_ts:
        return True
    if new_ts < old_ts:
        return False
    return _canon(new) > _canon(old)


#: Traits only the matcher reads; a profile (and so every consumer) never carries them.
MATCH_ONLY_TRAITS = frozenset({"national_id"})


def _apply_traits(state: ProfileState, traits: dict[str, Any], ts: float) -> None:
    stored, stamps = state.traits, state.trait_ts
    for name, value in traits.items():
        if name in MATCH_ONLY_TRAITS:
            continue
        if isinstance(value, dict):
            # Nested traits (address) merge per field: an event with only a city must not
            # wipe the street another source gave.
            sub = stored.get(name)
            if not isinstance(sub, dict):
                sub = {}
            changed = False
            for key, sv in value.items():
                if _empty(sv):
                    continue
                tkey = f"{name}.{key}"
                if _trait_wins(ts, sv, stamps.get(tkey), sub.get(key)):
                    sub[key] = sv
                    stamps[tkey] = ts
                    changed = True
            if changed:
                stored[name] = sub
        elif not _empty(value) and _trait_wins(ts, value, stamps.get(name), stored.get(name)):
            stored[name] = value
            stamps[name] = ts


def _consent_wins(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    """Later decision wins; at equal time a denial beats a grant (then source, for totality)."""
    if old is None:
        return True
    if new["ts"] != old["ts"]:
        return bool(new["ts"] > old["ts"])
    if new["granted"] != old["granted"]:
        return not new["granted"]
    return str(new["source"]) > str(old["source"])


def _set_consent(state: ProfileState, purpose: str, granted: bool, ts: float, source: str) -> None:
    new = {"granted": granted, "ts": ts, "source": source}
    if _consent_wins(new, state.consent.get(purpose)):
        state.consent[purpose] = new


def apply_consent(state: ProfileState, consent: dict[str, bool], ts: float, source: str) -> None:
    """A consent command: each purpose as an event stating it would set it (later wins)."""
    for purpose, granted in consent.items():
        _set_consent(state, purpose, bool(granted), ts, source)


def set_objection(
    state: ProfileState, active: bool, ts: float, command_id: str, source: str
) -> None:
    """Record an objection (``active``) or its withdrawal; the later statement wins."""
    new = {"active": active, "ts": ts, "command_id": command_id, "source": source}
    if _objection_wins(new, state.objection):
        state.objection = new


def objected(state: ProfileState) -> bool:
    """True while the person's objection stands."""
    return state.objection is not None and state.objection.get("active") is True


def _objection_wins(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    """One person's own statements: the later wins; at the same instant the objection."""
    if old is None:
        return True
    if new["ts"] != old["ts"]:
        return bool(new["ts"] > old["ts"])
    if new["active"] != old["active"]:
        return bool(new["active"])
    return str(new.get("command_id")) > str(old.get("command_id"))


def _ordered_cart_ids(orders: dict[str, Any]) -> set[str]:
    return {o["cart_id"] for o in orders.get("recent") or () if o.get("cart_id")}


def _closed_by_orders(cart_id: str, updated_ts: float, orders: dict[str, Any]) -> bool:
    """An order closes the cart it names, and every cart last changed at or before it.

    The second half is deliberately wider than "orders without cart_id": it makes the rule a
    function of the order history alone, so it gives the same answer whether the cart and
    the order met through :func:`apply_event` or through a merge in either order — and a
    person who has just bought should not get an abandoned-cart reminder for an older cart.
    """
    last_ts = orders.get("last_ts")
    if last_ts is not None and updated_ts <= last_ts:
        return True
    for o in orders.get("recent") or ():  # cart_id in _ordered_cart_ids(orders), no set
        named = o.get("cart_id")
        if named and named == cart_id:
            return True
    return False


def _apply_cart(
    state: ProfileState,
    cart: dict[str, Any],
    ts: float,
    due_at: float,
    event_id: str,
    product: Any = None,
    added: int = 1,
) -> None:
    """One cart event. With ``items`` the event states the whole content; without them (the
    schema makes ``items`` optional) it states a change: ``product`` is the line added
    (``added`` 1, ``cart_add``: the cart is open) or removed (-1, ``cart_remove``: open while
    a known line is left), applied to the lines known so far; the cart is then marked
    ``"complete": False`` unless those lines are the whole content (docs/actions.md)."""
    cart_id = cart.get("cart_id")
    if not cart_id:
        return
    cart_id = str(cart_id)
    current = state.carts.get(cart_id)
    if current is not None and ts < current["updated_ts"]:
        return  # a late event must not resurrect an older content of the cart
    listed = cart.get("items")
    complete = True
    if isinstance(listed, list):
        items: list[Any] = listed
        status = OPEN if items else EMPTIED
    else:
        if current is not None and (current["event_id"], current["updated_ts"]) == (event_id, ts):
            return  # the same change again (a redelivered event): its line is counted
        items, complete = _changed_lines(current, product, added)
        # An addition opens the cart whatever was known of it; a removal that leaves no
        # known line empties it (a reminder for nothing known is worse than none).
        status = OPEN if added > 0 or items else EMPTIED
    # A cart an order named stays closed (a cart id is one checkout, and web and shop clocks
    # disagree by seconds); a cart covered only by time reopens when changed after the order.
    if status == OPEN and _closed_by_orders(cart_id, ts, state.orders):
        status = ORDERED
    state.carts[cart_id] = {
        "items": items,
        "currency": cart.get("currency") or (current or {}).get("currency"),
        "updated_ts": ts,
        "due_at": due_at if status == OPEN else None,
        "status": status,
        "event_id": event_id,  # the abandoned_cart action's trigger_event_id
    }
    if not complete:  # only lines some events named are known (absent: the whole content)
        state.carts[cart_id]["complete"] = False
    if current is None and len(state.carts) > CLOSED_CARTS_CAP:
        _prune_carts(state.carts)


def _changed_lines(
    current: dict[str, Any] | None, product: Any, added: int
) -> tuple[list[dict[str, Any]], bool]:
    """The cart's known lines after a change that names one product (no ``items``), and
    whether they are the whole content.

    The lines start from the cart's current version unless an order closed it (a cart id
    reused after the checkout starts over). They are the whole content only if that version
    was and the change names its product: a cart first seen through such a change may hold
    lines no event named.
    """
    base: list[Any] = []
    complete = False
    if current is not None and current["status"] != ORDERED:
        base = current.get("items") or []
        complete = current.get("complete", True) is not False
    lines = [dict(i) for i in base if isinstance(i, dict)]
    sku = product.get("sku") if isinstance(product, dict) else None
    if not sku:
        return lines, False  # something changed, nobody said what
    line = next((i for i in lines if i.get("sku") == sku), None)
    if added > 0:
        if line is None:
            line = {"sku": sku, "qty": 0}
            lines.append(line)
        line["qty"] = int(_to_float(line.get("qty"))) + added
        for name in ("name", "price"):
            if name not in line and product.get(name) is not None:
                line[name] = product[name]
    elif line is not None:
        line["qty"] = int(_to_float(line.get("qty"))) + added
        if line["qty"] <= 0:
            lines.remove(line)
    else:
        complete = False  # a line nobody listed left: the known lines were not all of it
    return lines, complete


def _prune_carts(carts: dict[str, dict[str, Any]]) -> None:
    """Keep every open cart and the newest ``CLOSED_CARTS_CAP`` closed ones."""
    closed = [(c["updated_ts"], cid) for cid, c in carts.items() if c["status"] != OPEN]
    if len(closed) <= CLOSED_CARTS_CAP:
        return
    closed.sort()
    for _, cid in closed[: len(closed) - CLOSED_CARTS_CAP]:
        del carts[cid]


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _apply_order(state: ProfileState, payload: dict[str, Any], ts: float) -> None:
    orders = state.orders
    order_id = str(payload.get("order_id") or "")
    recent: list[dict[str, Any]] = orders.setdefault("recent", [])
    duplicate = bool(order_id) and any(o["order_id"] == order_id for o in recent)
    last_ts = orders.get("last_ts")
    if last_ts is None or (ts, order_id) > (last_ts, orders.get("last_order_id") or ""):
        # Also for a duplicate: last_ts is "the latest order event seen", the same quantity
        # absorb() takes the max of, so carts close alike whichever way the events met.
        orders["last_ts"] = ts
        orders["last_order_id"] = order_id or None
    if not duplicate:  # a redelivered order (at-least-once input) is counted once
        cart_id = payload.get("cart_id")
        total = _to_float(payload.get("total"))
        orders["count"] = int(orders.get("count") or 0) + 1
        orders["total"] = float(orders.get("total") or 0.0) + total
        recent.append(
            {
                "order_id": order_id,
                "ts": ts,
                "cart_id": str(cart_id) if cart_id else None,
                "total": total,
            }
        )
        if len(recent) > RECENT_ORDERS_CAP:
            recent.sort(key=lambda o: (o["ts"], o["order_id"]))
            del recent[: len(recent) - RECENT_ORDERS_CAP]
    _close_carts(state)


def _close_carts(state: ProfileState) -> None:
    """Mark every open cart the order history covers as ``ordered`` (no action will fire)."""
    orders = state.orders
    last_ts = orders.get("last_ts")
    ids: set[str] | None = None  # built at the first open cart: most profiles have none
    for cid, cart in state.carts.items():
        if cart["status"] != OPEN:
            continue
        if ids is None:
            ids = _ordered_cart_ids(orders)
        if cid in ids or (last_ts is not None and cart["updated_ts"] <= last_ts):
            cart["status"] = ORDERED
            cart["due_at"] = None


# --------------------------------------------------------------------------------------------
# absorb: fold a merged-away profile into the survivor.
# --------------------------------------------------------------------------------------------


def absorb(survivor: ProfileState, absorbed: ProfileState) -> None:
    """Fold ``absorbed`` into ``survivor`` in place (``absorbed`` is not modified).

    The outcome does not depend on which side is the survivor (except ``profile_id`` and
    the order of ``identifiers``/``merged_from`` lists), so the resolver's survivorship
    choice and the arrival order of hand-overs never change what a person gets.

    Consent is the most restrictive per purpose *among the parts that recorded a decision*:
    a denial on either side wins; two grants keep the later one. A purpose recorded on one
    side only is kept as is — an anonymous cookie profile that never saw a consent banner has
    no opinion, and treating its silence as a denial would revoke a known customer's grant
    on every login. Purposes nobody recorded stay missing, and missing still means "no".
    """
    s, a = survivor, absorbed
    # ``household_id`` stays: the resolver tells the survivor its household after a merge
    # (taking the absorbed side's could bring back one it no longer has).
    # 0.0 is "not known" (a part adopted before any of its events): never the earliest.
    known = [ts for ts in (s.created_ts, a.created_ts) if ts > 0.0]
    s.created_ts = min(known, default=0.0)
    s.updated_ts = max(s.updated_ts, a.updated_ts)
    s.event_count += a.event_count
    for src, n in a.channels.items():
        s.channels[src] = s.channels.get(src, 0) + n
    if a.last_activity is not None and (
        s.last_activity is None or _activity_key(a.last_activity) > _activity_key(s.last_activity)
    ):
        s.last_activity = dict(a.last_activity)

    for kind, values in a.identifiers.items():
        mine = s.identifiers.setdefault(kind, [])
        for v in values:
            if v not in mine:
                mine.append(v)

    _absorb_traits(s, a)
    _absorb_consent(s, a)
    _absorb_objection(s, a)
    _absorb_orders(s, a)
    _absorb_carts(s, a)

    for tid, ticket in a.tickets.items():
        _merge_ticket(s.tickets, tid, ticket)

    if a.churn is not None and (
        s.churn is None
        or (a.churn["flagged_ts"], a.churn["event_id"])
        < (s.churn["flagged_ts"], s.churn["event_id"])
    ):
        s.churn = dict(a.churn)

    if a.last_visit is not None and (
        s.last_visit is None or _visit_key(a.last_visit) > _visit_key(s.last_visit)
    ):
        s.last_visit = dict(a.last_visit)

    for anchor, part in a.parts.items():
        mine_part = s.parts.get(anchor)
        if mine_part is None:
            s.parts[anchor] = ProfileState.from_dict(part.to_dict(copy=False))  # one copy
        else:
            absorb(mine_part, part)
    absorbed_ids = {a.profile_id, *a.merged_from}
    for key, entry in a.moved.items():
        pointer = s.moved.get(key)
        # The newer split wins; on a tie (one decision split this profile, then the part it
        # sent the key to) the absorbed side's own pointer is the later one when the tied
        # pointer led into it (to it, or to a profile it has since merged in): it continues
        # the pointer that led to it.
        if (
            pointer is None
            or entry[1] > pointer[1]
            or (entry[1] == pointer[1] and pointer[0] in absorbed_ids)
        ):
            s.moved[key] = list(entry)

    if a.activity:
        s.activity = _union_activity(s.activity, a.activity)
    if a.actions:
        s.actions = merge_actions(s.actions, a.actions)
    s.fired = merge_fired(s.fired, a.fired)
    settle_churn(s)
    for kind, t in a.last_action_ts.items():
        if t > s.last_action_ts.get(kind, float("-inf")):
            s.last_action_ts[kind] = t

    for pid in [a.profile_id, *a.merged_from]:
        if pid != s.profile_id and pid not in s.merged_from:
            s.merged_from.append(pid)
    if s.moved and s.merged_from:
        _drop_pointers_inward(s)


def _drop_pointers_inward(s: ProfileState) -> None:
    """Forget where a split sent identifiers if that profile has since been merged into
    this one: what follows such a pointer comes back here through the merged-away id's
    forwarding marker, and would go round for ever (docs/identity-graph.md, *Hand-overs
    terminate*). Staying here is where following it would lead."""
    inside = {s.profile_id, *s.merged_from}
    for key in [k for k, (target, _) in s.moved.items() if target in inside]:
        del s.moved[key]


def _union_activity(*logs: list[list[Any]]) -> list[list[Any]]:
    """The newest :data:`ACTIVITY_CAP` distinct entries of all ``logs`` (order-free)."""
    merged = sorted({tuple(e) for log in logs for e in log})
    return [list(e) for e in merged[-ACTIVITY_CAP:]]


def timeline(state: ProfileState) -> list[list[Any]]:
    """The profile's latest events across channels, oldest first: the newest
    :data:`ACTIVITY_CAP` of its parts' (each part keeps its own newest that many)."""
    return _union_activity(state.activity, *(part.activity for part in state.parts.values()))


def merge_actions(mine: list[list[Any]], theirs: list[list[Any]]) -> list[list[Any]]:
    """Both action lists, one entry per action id (the earliest), newest
    :data:`ACTIONS_CAP` kept; symmetric in the two arguments."""
    first: dict[str, tuple[Any, ...]] = {}
    for entry in (*mine, *theirs):
        aid = str(entry[3])
        kept = first.get(aid)
        if kept is None or tuple(entry) < kept:
            first[aid] = tuple(entry)
    return [list(e) for e in sorted(first.values())[-ACTIONS_CAP:]]


def note_actions(state: ProfileState, actions: list[Action]) -> None:
    """Remember the actions just sent for ``state``'s person (for the profile API)."""
    if actions:
        sent = [[a.created_at, a.type, a.channel, a.action_id, a.trigger_event_id] for a in actions]
        state.actions = merge_actions(state.actions, sent)


def _activity_key(la: dict[str, Any]) -> tuple[float, str, str]:
    return (float(la["ts"]), str(la.get("source")), str(la.get("type")))


def _absorb_traits(s: ProfileState, a: ProfileState) -> None:
    for tkey, ts in a.trait_ts.items():
        name, dot, sub = tkey.partition(".")
        if dot:
            other = a.traits.get(name)
            if not isinstance(other, dict) or sub not in other:
                continue
            value = other[sub]
            mine = s.traits.get(name)
            if not isinstance(mine, dict):
                mine = {}
            if _trait_wins(ts, value, s.trait_ts.get(tkey), mine.get(sub)):
                mine[sub] = _copy(value)
                s.traits[name] = mine
                s.trait_ts[tkey] = ts
        elif name in a.traits:
            value = a.traits[name]
            if _trait_wins(ts, value, s.trait_ts.get(tkey), s.traits.get(name)):
                s.traits[name] = _copy(value)
                s.trait_ts[tkey] = ts


def _absorb_consent(s: ProfileState, a: ProfileState) -> None:
    for purpose, theirs in a.consent.items():
        mine = s.consent.get(purpose)
        if mine is None:
            s.consent[purpose] = dict(theirs)
        elif mine["granted"] != theirs["granted"]:
            if not theirs["granted"]:
                s.consent[purpose] = dict(theirs)  # a denial from either side wins
        elif _consent_wins(theirs, mine):
            s.consent[purpose] = dict(theirs)  # same decision: keep the later record


def _absorb_objection(s: ProfileState, a: ProfileState) -> None:
    """Two profiles of one person: an active objection on either side stands (the most
    restrictive, as for consent); between two of the same kind the later record is kept."""
    theirs, mine = a.objection, s.objection
    if theirs is None:
        return
    if mine is None or _objection_key(theirs) > _objection_key(mine):
        s.objection = dict(theirs)


def _objection_key(rec: dict[str, Any]) -> tuple[bool, float, str]:
    return (bool(rec["active"]), float(rec["ts"]), str(rec.get("command_id")))


def _absorb_orders(s: ProfileState, a: ProfileState) -> None:
    so, ao = s.orders, a.orders
    by_id: dict[str, dict[str, Any]] = {}
    anonymous: list[dict[str, Any]] = []  # orders without id cannot be de-duplicated
    overlap: dict[str, float] = {}
    for o in [*(so.get("recent") or []), *(ao.get("recent") or [])]:
        oid = o.get("order_id")
        if not oid:
            anonymous.append(dict(o))
            continue
        seen = by_id.get(oid)
        if seen is None:
            by_id[oid] = dict(o)
            continue
        # The same order reached both profiles (redelivery around the merge): count it once.
        # Prefer the record that names a cart: losing that would reopen the cart.
        keep = max(o, seen, key=lambda r: (r.get("cart_id") is not None, _canon(r)))
        overlap[oid] = seen["total"] + o["total"] - keep["total"]
        by_id[oid] = dict(keep)
    count = int(so.get("count") or 0) + int(ao.get("count") or 0) - len(overlap)
    total = float(so.get("total") or 0.0) + float(ao.get("total") or 0.0)
    total -= sum(overlap[k] for k in sorted(overlap))
    recent = sorted(
        [*by_id.values(), *anonymous], key=lambda o: (o["ts"], o["order_id"] or "", _canon(o))
    )
    last_candidates = [
        (so["last_ts"], so.get("last_order_id") or "") if so.get("last_ts") is not None else None,
        (ao["last_ts"], ao.get("last_order_id") or "") if ao.get("last_ts") is not None else None,
    ]
    present = [c for c in last_candidates if c is not None]
    last = max(present) if present else None
    s.orders = {
        "count": count,
        "total": total,
        "last_order_id": (last[1] or None) if last else None,
        "last_ts": last[0] if last else None,
        "returns": int(so.get("returns") or 0) + int(ao.get("returns") or 0),
        "recent": recent[-RECENT_ORDERS_CAP:],
    }


def _cart_key(c: dict[str, Any]) -> tuple[float, int, bytes]:
    return (float(c["updated_ts"]), _STATUS_RANK.get(c["status"], 0), _canon(c))


def _absorb_carts(s: ProfileState, a: ProfileState) -> None:
    for cid, theirs in a.carts.items():
        mine = s.carts.get(cid)
        if mine is None or _cart_key(theirs) > _cart_key(mine):
            s.carts[cid] = _copy(theirs)
    # An order on either side may cover a cart of the other (cart on the cookie profile,
    # order on the customer profile): close those now, before any due() check can fire.
    _close_carts(s)
    _prune_carts(s.carts)


def merge_fired(mine: list[str], theirs: list[str]) -> list[str]:
    """Union of two fired-id lists, oldest first, capped at ``FIRED_CAP``.

    Each list is in firing order; an id's age is its distance from the end of the list it is
    in (the smaller one if in both). Sorting by that rank, then id, is symmetric in the two
    arguments, so the cap drops the same (oldest) ids whichever profile survives.
    """
    if not theirs:
        return list(mine)
    rank: dict[str, int] = {}
    for lst in (mine, theirs):
        n = len(lst)
        for i, aid in enumerate(lst):
            r = n - i
            if r < rank.get(aid, r + 1):
                rank[aid] = r
    ordered = sorted(rank, key=lambda aid: (-rank[aid], aid))
    return ordered[-FIRED_CAP:]


# --------------------------------------------------------------------------------------------
# Read side.
# --------------------------------------------------------------------------------------------


def snapshot(state: ProfileState, copy: bool = True) -> dict[str, Any]:
    """The ``profiles.v1`` value: what activation services may see (no internal bookkeeping).

    Returns copies, so the stage may serialise it after mutating the state again;
    ``copy=False`` shares the state's containers, for a snapshot serialised at once.
    """
    keep = _copy if copy else _same
    open_carts = (
        [
            {
                "cart_id": cid,
                "items": keep(c["items"]),
                "currency": c.get("currency"),
                "updated_ts": c["updated_ts"],
                "due_at": c.get("due_at"),
            }
            for cid, c in state.carts.items()
            if c["status"] == OPEN
        ]
        if state.carts
        else []
    )
    if len(open_carts) > 1:
        open_carts.sort(key=lambda c: (c["updated_ts"], c["cart_id"]))
    o = state.orders
    return {
        "profile_id": state.profile_id,
        "created_ts": state.created_ts,
        "updated_ts": state.updated_ts,
        "identifiers": keep(state.identifiers),
        "traits": keep(state.traits),
        "consent": keep(state.consent),
        "channels": dict(state.channels) if copy else state.channels,
        "last_activity": keep(state.last_activity),
        "open_carts": open_carts,
        "orders": {
            "count": o.get("count", 0),
            "total": o.get("total", 0.0),
            "last_order_id": o.get("last_order_id"),
            "last_ts": o.get("last_ts"),
            "returns": o.get("returns", 0),
        },
        "churn_risk": keep(state.churn),
        "merged_from": list(state.merged_from) if copy else state.merged_from,
        "event_count": state.event_count,
        "household_id": state.household_id,
        "open_tickets": _open_tickets(state),
        **({"objection": keep(state.objection)} if state.objection is not None else {}),
    }


def _open_tickets(state: ProfileState) -> list[dict[str, Any]]:
    """The open support tickets, oldest first (what the snapshot and the page show)."""
    if not state.tickets:
        return []
    return sorted(
        (
            {
                "ticket_id": tid,
                "priority": t["priority"],
                "opened_ts": t["opened_ts"],
                "updated_ts": t["ts"],
            }
            for tid, t in state.tickets.items()
            if t["status"] == "open"
        ),
        key=lambda t: (t["opened_ts"], t["ticket_id"]),
    )


def next_due(state: ProfileState) -> float | None:
    """Earliest ``due_at`` among open carts: when the stage should next call ``due()``."""
    best: float | None = None
    for c in state.carts.values():
        if c["status"] == OPEN and c.get("due_at") is not None:
            d = float(c["due_at"])
            if best is None or d < best:
                best = d
    return best
