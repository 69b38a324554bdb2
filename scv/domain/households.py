"""Households: the people a shared value ties together, one level above the person.

A value the resolver found shared by two to ``generic_after`` people (a landline, a family
email, a tablet's cookie; owner :data:`~scv.domain.graph.HOUSEHOLD`) links those people into
a household, never into one person. This module keeps the households in the resolver's
owners map, next to the graph it belongs to (the resolver is its single writer, so a
household is as consistent as the graph):

* ``\\x00h:<value>`` -> household id: the household a shared value belongs to;
* ``\\x00m:<member>`` -> household id: the household of a person, filed under the person's
  strongest identifier when they joined (it follows the person through merges and splits);
* ``\\x00H:<id>`` -> the household record (JSON): its shared values, its members, when it
  was founded, how many events named only the household, and the postal address stated
  when it last changed (a new member or value) (print mailings want one letter per household).

A person belongs to one household. A value or a person that would bring two households
together merges them (the older id stays) unless the merged household would hold more than
``cap`` people: then the person stays where they were, and the value in its own household.
Erasing a person takes them out of their household; the shared values stay, being the other
members' data too.

Pure module: no Kafka.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from scv.domain.graph import HOUSEHOLD, GraphStore, new_profile_id

__all__ = ["Household", "HouseholdChange", "forget_member", "note", "snapshot"]

VALUE_PREFIX = "\x00h:"
MEMBER_PREFIX = "\x00m:"
RECORD_PREFIX = "\x00H:"

#: The type of a household's address key (:func:`address_key`): a value households share by
#: living somewhere, never an identifier of a person.
ADDRESS = "address"

#: Keys of the owners map that hold households (a scan of the map skips them).
PREFIXES = (VALUE_PREFIX, MEMBER_PREFIX, RECORD_PREFIX)


class Owners(Protocol):
    """What reading households needs of a store: the owners map (the profile API reads it
    from the web thread, without a :class:`GraphStore`)."""

    def get_owner(self, key: str) -> str | None: ...


@dataclass(slots=True)
class Household:
    household_id: str
    founded: list[Any]  # [event time, event id] of the event that founded it
    values: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    events: int = 0  # events that named nobody but the household
    last_ts: float | None = None
    address: dict[str, Any] | None = None
    address_ts: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "household_id": self.household_id,
            "founded": list(self.founded),
            "values": list(self.values),
            "members": list(self.members),
            "events": self.events,
            "last_ts": self.last_ts,
            "address": self.address,
            "address_ts": self.address_ts,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Household:
        return cls(
            str(d["household_id"]),
            list(d["founded"]),
            [str(v) for v in d.get("values") or []],
            [str(m) for m in d.get("members") or []],
            int(d.get("events") or 0),
            d.get("last_ts"),
            d.get("address"),
            d.get("address_ts"),
        )


@dataclass(slots=True)
class HouseholdChange:
    """What one decision changed: the households to publish anew (``changed``), those merged
    away (``gone``, tombstoned), and the people whose household is new to them."""

    changed: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    joined: dict[str, str] = field(default_factory=dict)  # member key -> household id
    #: a person the household could not take (it is full): the value is not a household's
    full: bool = False

    def add(self, other: HouseholdChange) -> None:
        for hid in other.changed:
            if hid not in self.changed:
                self.changed.append(hid)
        self.gone += [h for h in other.gone if h not in self.gone]
        self.joined |= other.joined
        self.full |= other.full
        self.changed = [h for h in self.changed if h not in self.gone]

    def __bool__(self) -> bool:
        return bool(self.changed or self.gone or self.joined)


def load(store: Owners, hid: str) -> Household | None:
    raw = store.get_owner(RECORD_PREFIX + hid)
    return Household.from_dict(orjson.loads(raw)) if raw else None


def save(store: GraphStore, household: Household) -> None:
    store.set_owner(
        RECORD_PREFIX + household.household_id, orjson.dumps(household.to_dict()).decode()
    )


def of_value(store: Owners, key: str) -> str | None:
    return store.get_owner(VALUE_PREFIX + key)


def of_member(store: Owners, key: str) -> str | None:
    return store.get_owner(MEMBER_PREFIX + key)


def household_id(seed: str, store: GraphStore) -> str:
    """A household id derived from the event that founded it (replays give the same), as
    profile ids are."""
    hid = "h" + new_profile_id(seed)[1:]
    salt = 0
    while store.get_owner(RECORD_PREFIX + hid) is not None:
        salt += 1
        hid = "h" + new_profile_id(f"{seed}#{salt}")[1:]
    return hid


def note(
    store: GraphStore,
    values: Iterable[str],
    members: Iterable[str],
    ts: float,
    event_id: str,
    cap: int,
    address: dict[str, Any] | None = None,
) -> HouseholdChange:
    """An event (or a verdict) ties shared ``values`` and people (``members``: each person's
    strongest identifier) into one household. With no member, the event names only the
    household and is counted on it."""
    change = HouseholdChange()
    values = list(dict.fromkeys(values))
    members = list(dict.fromkeys(members))
    if not values:
        return change
    found = [h for h in dict.fromkeys(of_value(store, v) for v in values) if h is not None]
    # The commonest case (a known member's order to the known address): nothing changes,
    # and the record is not even read. Its address is the one stated when it last changed.
    if (
        members
        and len(found) == 1
        and all(of_value(store, v) == found[0] for v in values)
        and all(of_member(store, m) == found[0] for m in members)
    ):
        return change
    homes = [hh for hh in (load(store, h) for h in found) if hh is not None]
    homes.sort(key=lambda hh: (float(hh.founded[0]), str(hh.founded[1]), hh.household_id))
    if homes:
        home = homes[0]
    else:
        home = Household(household_id(f"household/{event_id}", store), [ts, event_id])
        change.changed.append(home.household_id)
    for other in homes[1:]:
        if len(set(home.members) | set(other.members)) <= cap:
            _absorb(store, home, other, change)
    for value in values:
        if of_value(store, value) is None:
            home.values.append(value)
            store.set_owner(VALUE_PREFIX + value, home.household_id)
            _changed(change, home)
    for member in members:
        current = of_member(store, member)
        if current == home.household_id:
            continue
        if current is not None:
            known = load(store, current)
            if known is not None and len(set(home.members) | set(known.members)) <= cap:
                _absorb(store, home, known, change)
            continue  # one household per person: too big together, they stay where they are
        if len(home.members) >= cap:
            change.full = True
            continue
        home.members.append(member)
        store.set_owner(MEMBER_PREFIX + member, home.household_id)
        change.joined[member] = home.household_id
        _changed(change, home)
    if not members:
        home.events += 1
        home.last_ts = ts if home.last_ts is None else max(home.last_ts, ts)
        _changed(change, home)
    if address and home.address != address and (home.address_ts is None or ts >= home.address_ts):
        home.address, home.address_ts = address, ts
        _changed(change, home)
    if home.household_id in change.changed:  # most events change nothing: no write
        save(store, home)
    return change


def _changed(change: HouseholdChange, home: Household) -> None:
    if home.household_id not in change.changed:
        change.changed.append(home.household_id)


def _absorb(store: GraphStore, home: Household, other: Household, change: HouseholdChange) -> None:
    """Fold ``other`` into ``home``: its values and members now point at ``home``."""
    if other.household_id == home.household_id:
        return
    for value in other.values:
        if value not in home.values:
            home.values.append(value)
        store.set_owner(VALUE_PREFIX + value, home.household_id)
    for member in other.members:
        if member not in home.members:
            home.members.append(member)
        store.set_owner(MEMBER_PREFIX + member, home.household_id)
        change.joined[member] = home.household_id
    home.events += other.events
    if other.last_ts is not None:
        home.last_ts = other.last_ts if home.last_ts is None else max(home.last_ts, other.last_ts)
    if other.address_ts is not None and (
        home.address_ts is None or other.address_ts > home.address_ts
    ):
        home.address, home.address_ts = other.address, other.address_ts
    store.del_owner(RECORD_PREFIX + other.household_id)
    _changed(change, home)
    if other.household_id in change.changed:
        change.changed.remove(other.household_id)
    change.gone.append(other.household_id)


def move_member(store: GraphStore, old: str, new: str) -> HouseholdChange:
    """A person's member key ``old`` became a shared value (their family email, found to
    be the household's): they stay a member under ``new``, their profile's own key. If
    ``new`` is already a member somewhere, ``old`` just goes (one household per person)."""
    change = HouseholdChange()
    hid = of_member(store, old)
    if hid is None or old == new:
        return change
    store.del_owner(MEMBER_PREFIX + old)
    home = load(store, hid)
    if home is None:
        return change
    members = [m for m in home.members if m != old]
    if of_member(store, new) is None and new not in members:
        members.append(new)
        store.set_owner(MEMBER_PREFIX + new, hid)
        change.joined[new] = hid
    home.members = members
    save(store, home)
    _changed(change, home)
    return change


def forget_member(store: GraphStore, keys: Iterable[str]) -> tuple[HouseholdChange, list[str]]:
    """Take erased identifier ``keys`` out of their households. A household left with
    nobody goes altogether (its shared values and address were only its members' data).
    Returns what changed and the owners-map keys to purge from disk."""
    change = HouseholdChange()
    purge: list[str] = []
    for key in keys:
        hid = of_member(store, key)
        if hid is None:
            continue
        store.del_owner(MEMBER_PREFIX + key)
        purge.append(MEMBER_PREFIX + key)
        home = load(store, hid)
        if home is None or key not in home.members:
            continue
        home.members.remove(key)
        if home.members:
            save(store, home)
            _changed(change, home)
            continue
        for value in home.values:
            store.del_owner(VALUE_PREFIX + value)
            purge.append(VALUE_PREFIX + value)
            if store.get_owner(value) == HOUSEHOLD:  # nobody's data any more
                store.del_owner(value)
                purge.append(value)
        store.del_owner(RECORD_PREFIX + hid)
        purge.append(RECORD_PREFIX + hid)
        change.gone.append(hid)
        if hid in change.changed:
            change.changed.remove(hid)
    return change, purge


def members_of(store: GraphStore, keys: Iterable[str]) -> list[str]:
    """The households that any of ``keys`` (a profile's identifiers) is a member of."""
    return list(dict.fromkeys(h for h in (of_member(store, k) for k in keys) if h is not None))


def snapshot(store: Owners, hid: str) -> dict[str, Any] | None:
    """The ``households.v1`` value: members as their live profiles now, the shared values,
    the address, and the household's own activity. None when the household is gone, or
    holds fewer than two people now."""
    home = load(store, hid)
    if home is None:
        return None
    profiles: list[str] = []
    for member in home.members:
        owner = store.get_owner(member)
        if owner is not None and owner[0] != "!" and owner not in profiles:
            profiles.append(owner)
    if len(profiles) < 2:
        # Not (or no longer) two people: one person's profiles that merged since they
        # joined (a guest order and the account, stating one address) are no household.
        return None
    shared: dict[str, list[str]] = {}
    for value in home.values:
        kind, _, raw = value.partition(":")
        if kind != ADDRESS:  # the address key is the record's address, not an identifier
            shared.setdefault(kind, []).append(raw)
    return {
        "household_id": hid,
        "members": profiles,
        "identifiers": shared,
        "address": home.address,
        "founded_ts": home.founded[0],
        "event_count": home.events,
        "last_event_ts": home.last_ts,
    }


def escalate(store: GraphStore, value: str, generic_owner: str) -> HouseholdChange:
    """``value`` ties more people than any household holds: it becomes generic (owner
    ``generic_owner``) and leaves its household; a household left without a shared value
    is dissolved (a placeholder's "household" of strangers was never one)."""
    change = HouseholdChange()
    hid = of_value(store, value)
    store.del_owner(VALUE_PREFIX + value)
    store.set_owner(value, generic_owner)
    home = load(store, hid) if hid is not None else None
    if home is None:
        return change
    if value in home.values:
        home.values.remove(value)
    if home.values:
        save(store, home)
        change.changed.append(home.household_id)
        return change
    for member in home.members:
        store.del_owner(MEMBER_PREFIX + member)
        change.joined[member] = ""
    store.del_owner(RECORD_PREFIX + home.household_id)
    change.gone.append(home.household_id)
    return change


def address_key(traits: dict[str, Any]) -> str | None:
    """``address:<postcode>|<street>|<surname>`` for an event that states a postal address
    and a surname, folded (case, accents, spacing, punctuation): people with one surname
    at one street address are one household. The surname keeps neighbours in a block of
    flats apart; a couple with two surnames is found through what else they share."""
    address = traits.get("address")
    surname = traits.get("last_name")
    if not isinstance(address, dict) or not isinstance(surname, str):
        return None
    street, postcode = address.get("street"), address.get("postcode")
    if not isinstance(street, str) or not isinstance(postcode, str):
        return None
    parts = [_fold(postcode), _fold(street), _fold(surname)]
    return f"{ADDRESS}:{'|'.join(parts)}" if all(parts) else None


def _fold(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.casefold().replace("ß", "ss"))
    return "".join(ch for ch in folded if ch.isalnum())


def view_for(store: Owners, keys: Iterable[str]) -> dict[str, Any] | None:
    """The household of a profile with identifier ``keys`` as its view shows it (the
    ``households.v1`` snapshot and the identifier the person is a member under), or None."""
    for key in keys:
        hid = of_member(store, key)
        if hid is not None:
            view = snapshot(store, hid)
            if view is not None:
                return view | {"member_as": key}
    return None
