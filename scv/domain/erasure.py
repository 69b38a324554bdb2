"""Erasure (GDPR Art. 17) in the identity graph: take a person out of every map and index.

``erase`` finds the profiles the command names (its subject, and the owners of any further
identifiers listed: "these are all mine") and, for each:

* deletes every identifier's owner entry (a changelog tombstone on ``identity-owners``);
* takes each identifier out of the probabilistic matcher's blocking index, deleting a
  blocking key that is left empty (the keys are made of names, birth dates, postcodes);
* replaces the node (identifiers, links, origins, bans, matching records) with the retired
  marker. The id stays reserved, holding no data: a new profile must never get the id of an
  erased one, whose late messages the profile stage drops;
* scrubs the profiles at the other end of the erased node's evidence: a limit-refused link
  and a ban are kept on both sides, so another person's node may name an erased
  identifier. Those links and ban targets are removed (the erased identifiers are on the
  suppression list, so a ban against them has nothing left to guard).

The profile stage does the same for the profiles scrubbed here (:func:`scrub_state`): a
profile an erased identifier was split away from remembers where it went.

What it returns says which identifier keys go on the suppression list (values stay in
memory only, to be hashed) and what was removed, as counts: the audit record.

Pure module: no Kafka.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scv.domain.commands import Command
from scv.domain.governance import Rules
from scv.domain.graph import GENERIC, GraphStore, ProfileNode
from scv.domain.matching.blocking import blocking_keys
from scv.domain.model import parse_ident
from scv.domain.profile import ProfileState


@dataclass(slots=True)
class Erasure:
    """What an erase command did. ``keys`` are identifier values: never publish them."""

    command_id: str
    requested_ts: float
    profile_ids: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    identifier_types: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)
    #: blocking keys rewritten and other profiles scrubbed (their old values hold erased
    #: identifiers too: the stage purges them from disk)
    blocks: list[str] = field(default_factory=list)
    scrubbed: list[str] = field(default_factory=list)

    def audit(self, processed_at: float) -> dict[str, Any]:
        """The ``audit.v1`` record: ids, types and counts, no identifier value."""
        return {
            "kind": "erasure",
            "stage": "resolve",
            "command_id": self.command_id,
            "requested_ts": self.requested_ts,
            "processed_at": processed_at,
            "outcome": "erased" if self.profile_ids else "nothing_found",
            "profile_ids": list(self.profile_ids),
            "identifier_types": dict(sorted(self.identifier_types.items())),
            "counts": dict(sorted(self.counts.items())),
        }


def erase(cmd: Command, store: GraphStore, rules: Rules) -> Erasure:
    """Carry out ``cmd`` (type ``erase``) on the graph. Never fails: a subject nobody owns
    still goes on the suppression list (the person asked not to be processed), and the
    audit record says nothing was found."""
    result = Erasure(cmd.command_id, cmd.ts)
    named = list(dict.fromkeys(k for k in (cmd.subject_key, *cmd.identifiers) if k))
    nodes: dict[str, ProfileNode] = {}
    if cmd.profile_id is not None:
        node = store.get_node(cmd.profile_id)
        if node is not None:
            nodes[node.profile_id] = node
    for key in named:
        owner = store.get_owner(key)
        if owner == GENERIC:
            # Shared by many people (a shop's phone): listing it would drop their events too.
            result.counts["generic_skipped"] += 1
            continue
        node = store.get_node(owner) if owner is not None else None
        if node is not None:
            nodes.setdefault(node.profile_id, node)
    erased: dict[str, None] = {}
    for node in nodes.values():
        erased.update(dict.fromkeys(node.keys()))
    for key in named:
        ident = parse_ident(key)
        if store.get_owner(key) != GENERIC and not rules.is_blocked(ident):
            erased.setdefault(key)
    gone = frozenset(erased)
    for node in nodes.values():
        _erase_node(node, store, result)
    _scrub_neighbours(list(nodes.values()), gone, store, result)
    result.profile_ids = list(nodes)
    result.keys = list(erased)
    result.identifier_types.update(key.partition(":")[0] for key in erased)
    rules.forget(parse_ident(key) for key in erased)
    return result


def _erase_node(node: ProfileNode, store: GraphStore, result: Erasure) -> None:
    counts = result.counts
    for key in node.keys():
        if store.get_owner(key) == node.profile_id:
            store.del_owner(key)
        counts["identifiers"] += 1
    for key, record in node.records.items():
        counts["matching_records"] += 1
        for bkey in blocking_keys(record):
            if store.remove_block(bkey, key):
                counts["blocking_entries"] += 1
                result.blocks.append(bkey)
    counts["links"] += len(node.links)
    counts["bans"] += sum(len(targets) for targets in node.bans.values())
    counts["merged_in"] += node.absorbed
    store.del_node(node.profile_id)


def _scrub_neighbours(
    erased: list[ProfileNode], gone: frozenset[str], store: GraphStore, result: Erasure
) -> None:
    """Remove erased identifiers from the nodes the erased nodes' evidence points at."""
    far: dict[str, None] = {}
    for node in erased:
        for link in node.links:
            far.update(dict.fromkeys(k for k in link[:2] if k not in gone))
        for targets in node.bans.values():
            far.update(dict.fromkeys(k for k in targets if k not in gone))
    seen = {node.profile_id for node in erased}
    for key in far:
        owner = store.get_owner(key)
        if owner is None or owner == GENERIC or owner in seen:
            continue
        seen.add(owner)
        other = store.get_node(owner)
        if other is not None and _scrub(other, gone, result):
            store.put_node(other)
            result.counts["nodes_scrubbed"] += 1
            result.scrubbed.append(other.profile_id)


def _scrub(node: ProfileNode, gone: frozenset[str], result: Erasure) -> bool:
    links = [link for link in node.links if gone.isdisjoint(link[:2])]
    changed = len(links) != len(node.links)
    result.counts["foreign_links"] += len(node.links) - len(links)
    node.links = links
    for key, targets in list(node.bans.items()):
        kept = [t for t in targets if t not in gone]
        if len(kept) != len(targets):
            changed = True
            result.counts["foreign_bans"] += len(targets) - len(kept)
            if kept:
                node.bans[key] = kept
            else:
                del node.bans[key]
    return changed


def scrub_state(state: ProfileState, gone: Callable[[str], bool]) -> int:
    """Remove the identifier keys ``gone`` says were erased from another person's profile
    state: its split bookkeeping (where identifiers that left it went), per-identifier
    partial states and identifier list. How many entries went."""
    removed = 0
    for key in [k for k in state.moved if gone(k)]:
        del state.moved[key]
        removed += 1
    for key in [k for k in state.parts if gone(k)]:
        del state.parts[key]
        removed += 1
    for kind, values in list(state.identifiers.items()):
        kept = [v for v in values if not gone(f"{kind}:{v}")]
        removed += len(values) - len(kept)
        if kept:
            state.identifiers[kind] = kept
        else:
            del state.identifiers[kind]
    return removed
