"""The single customer view: one profile as the profile API and the agent's page show it.

Two halves live on different workers: the identity graph (identifiers, links and their
reasons) on the resolver's partition, the profile state (traits, consent, activity,
actions) on the partition that owns the profile id. :func:`state_view` shapes the second
where it is stored; :func:`profile_view` joins it to the graph where the graph is stored.

Pure module: no Kafka, no HTTP.
"""

from __future__ import annotations

from typing import Any

from scv.domain.explain import explain
from scv.domain.graph import ProfileNode, link_order
from scv.domain.model import parse_ident
from scv.domain.profile import ProfileState, snapshot, timeline

#: Recent orders shown (the state keeps more for de-duplication).
ORDERS_SHOWN = 5


def state_view(state: ProfileState) -> dict[str, Any]:
    """What the profile state contributes: the ``profiles.v1`` snapshot plus the timeline,
    the actions sent, recent orders and the split history (internal bookkeeping left out)."""
    view = snapshot(state)
    view["activity"] = [
        {"ts": ts, "source": source, "type": etype, "event_id": event_id}
        for ts, source, etype, event_id in reversed(timeline(state))
    ]
    view["actions"] = {
        "recent": [
            {
                "ts": ts,
                "type": kind,
                "channel": channel,
                "action_id": action_id,
                "trigger_event_id": trigger,
            }
            for ts, kind, channel, action_id, trigger in reversed(state.actions)
        ],
        "last_by_type": dict(sorted(state.last_action_ts.items())),
        "sent": len(state.fired),
    }
    recent = sorted(state.orders.get("recent") or [], key=lambda o: o["ts"], reverse=True)
    view["orders"]["recent"] = recent[:ORDERS_SHOWN]
    view["splits"] = [
        {"identifier": key, "to": to or None, "decision": seq}
        for key, (to, seq) in sorted(state.moved.items())
    ]
    return view


def graph_view(node: ProfileNode) -> dict[str, Any]:
    """The identity graph of one profile: each identifier with how it is tied to the one
    holding the profile id, and every link with its rule, event, time and score."""
    expl = explain(node)
    identifiers = []
    for item in expl["identifiers"]:
        kind, value = parse_ident(item["identifier"])
        identifiers.append({"type": kind, "value": value, **item})
    links = [
        {"a": a, "b": b, "rule": rule, "event_id": event_id, "ts": ts, "score": score}
        for a, b, rule, event_id, ts, score in sorted(node.links, key=link_order)
    ]
    return {
        "keeper": expl["keeper"],
        "identifiers": identifiers,
        "links": links,
        "bans": expl["bans"],
        "absorbed": node.absorbed,
    }


def profile_view(
    node: ProfileNode, state: dict[str, Any] | None, household: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The whole view: graph from ``node``, the rest from a :func:`state_view` (None while
    the profile's first event is still on its way to the profile's partition), and the
    person's household (:func:`scv.domain.households.view_for`; None: none known)."""
    return {
        "profile_id": node.profile_id,
        "first_seen": node.first_seen,
        "graph": graph_view(node),
        "profile": state,
        "household": household,
    }
