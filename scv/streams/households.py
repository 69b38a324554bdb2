"""What a decision tells about households (the wiring of :mod:`scv.domain.households`).

The resolver and its privacy commands change households; both publish the change the same
way: each household changed anew on ``households.v1`` (compacted, keyed by household id), a
tombstone for one merged away or dissolved, and to each person whose household changed a
``household`` message on ``profiles.events.v1`` (the profile stage puts the id on the
person's ``profiles.v1`` snapshot).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson

from scv.domain import households
from scv.domain.graph import GraphStore
from scv.domain.households import HouseholdChange

#: Names of :class:`~scv.topics.Topics` properties the messages go to.
HOUSEHOLDS, EVENTS = "households", "profile_events"

#: (topic, key, value); a None value is a tombstone.
Outgoing = tuple[str, bytes | None, bytes | None]


def household_messages(
    change: HouseholdChange | None,
    moved: Iterable[Mapping[str, object]],
    store: GraphStore,
    seq: int,
) -> list[Outgoing]:
    """The messages for ``change``, and for the profiles a merge or split just made
    (``moved``: each split's parts, the survivor of a merge): their households' member
    lists changed, and a split's new parts must be told their household."""
    change = change or HouseholdChange()
    joined = dict(change.joined)
    touched = list(change.changed)
    for parts in moved:
        for pid in parts:
            node = store.get_node(pid)
            for key in node.keys() if node is not None else ():
                hid = households.of_member(store, key)
                if hid is not None:
                    joined.setdefault(key, hid)
                    if hid not in touched:
                        touched.append(hid)
    out: list[Outgoing] = []
    real: dict[str, bool] = {}  # household id -> holds two people or more now
    for hid in touched:
        if hid in change.gone:
            continue
        view = households.snapshot(store, hid)
        real[hid] = view is not None
        # One person's profiles that merged are no household: a tombstone (harmless if
        # it was never published).
        out.append((HOUSEHOLDS, hid.encode(), orjson.dumps(view) if view else None))
    out += [(HOUSEHOLDS, hid.encode(), None) for hid in change.gone]
    told: set[str] = set()
    for member, hid in joined.items():
        owner = store.get_owner(member)
        if owner is None or owner[0] == "!" or owner in told:
            continue
        told.add(owner)
        current = hid if hid and real.get(hid, False) else None
        body = {"kind": "household", "profile_id": owner, "household_id": current, "seq": seq}
        out.append((EVENTS, owner.encode(), orjson.dumps(body)))
    return out
