"""Why each identifier belongs to a profile, from the evidence the graph recorded.

The profile's oldest identifier holds its id; every other identifier is explained by the
chain of links that ties it to that one, earliest evidence first. Used by the worker's
``/profiles/{id}/explain`` page and ``scv explain``.

Pure module: no Faust.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import Any

from scv.domain.graph import ProfileNode, link_order


def explain(node: ProfileNode, household: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON-able explanation: per identifier, how it was first seen and the path of links
    from it to the identifier that holds the profile id; and the household the person is a
    member of (:func:`scv.domain.households.view_for`), if any."""
    keeper = node.keeper()
    via: dict[str, dict[str, Any]] = {}
    adjacency: dict[str, list[list[Any]]] = {}
    for link in sorted(node.links, key=link_order):
        adjacency.setdefault(link[0], []).append(link)
        adjacency.setdefault(link[1], []).append(link)
    reached = {keeper} if keeper is not None else set()
    queue = deque(reached)
    while queue:
        here = queue.popleft()
        for link in adjacency.get(here, ()):
            other = link[1] if link[0] == here else link[0]
            if other in reached:
                continue
            reached.add(other)
            via[other] = {
                "to": here,
                "rule": link[2],
                "event_id": link[3],
                "ts": link[4],
                "score": link[5],
            }
            queue.append(other)

    identifiers = []
    for key in node.keys():
        ts, event_id = node.origins.get(key, (node.first_seen, None))
        path = []
        step = key
        while step in via:
            hop = via[step]
            path.append({"from": step, **hop})
            step = hop["to"]
        identifiers.append(
            {
                "identifier": key,
                "first_seen": {"ts": ts, "event_id": event_id},
                "holds_id": key == keeper,
                "path": path,
            }
        )
    return {
        "profile_id": node.profile_id,
        "first_seen": node.first_seen,
        "absorbed": node.absorbed,
        "keeper": keeper,
        "identifiers": identifiers,
        "links": len(node.links),
        "bans": sorted([key, other] for key, others in node.bans.items() for other in others),
        "household": household,
    }


def render_text(expl: dict[str, Any]) -> str:
    """The explanation as lines a data steward reads."""
    ids = expl["identifiers"]
    lines = [
        f"profile {expl['profile_id']}: {len(ids)} identifiers, {expl['links']} links, "
        f"{expl['absorbed']} profiles merged in, first seen {_when(expl['first_seen'])}"
    ]
    width = max((len(i["identifier"]) for i in ids), default=0)
    for item in ids:
        first = item["first_seen"]
        seen = f"first seen {_when(first['ts'])} (event {first['event_id']})"
        if item["holds_id"]:
            lines.append(f"  {item['identifier']:<{width}}  holds the profile id; {seen}")
            continue
        if not item["path"]:
            lines.append(f"  {item['identifier']:<{width}}  no recorded link; {seen}")
            continue
        hops = " → ".join(
            f"{hop['to']} ({hop['rule']}{_score(hop)}, event {hop['event_id']}, {_when(hop['ts'])})"
            for hop in item["path"]
        )
        lines.append(f"  {item['identifier']:<{width}}  linked to {hops}")
    for key, other in expl["bans"]:
        lines.append(f"  ban: {key} never with {other}")
    home = expl.get("household")
    if home:
        shared = [f"{kind}:{v}" for kind, values in home["identifiers"].items() for v in values]
        others = [m for m in home["members"] if m != expl["profile_id"]]
        lines.append(
            f"  household {home['household_id']} (member as {home['member_as']}): "
            f"{len(home['members'])} people"
            + (f", with {', '.join(others)}" if others else "")
            + (f"; they share {', '.join(shared)}" if shared else "")
            + ("; same surname at one address" if home.get("address") else "")
        )
    return "\n".join(lines)


def _score(hop: dict[str, Any]) -> str:
    return f" {hop['score']:.2f}" if hop.get("score") is not None else ""


def _when(ts: float) -> str:
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
