"""Identity commands (``identity.commands.v1``) the resolver carries out: un-merge, ban-link.

A data steward who finds two people fused says so once; the resolver splits the profile
along its recorded links and installs a **ban** (a pair of identifiers that must never share
a profile again), so the same evidence arriving later cannot re-fuse them.

* ``unmerge``: ``subject`` names the profile (``profile_id``, or any identifier it owns);
  ``identifiers`` are what to take out. Each is banned from the profile's oldest remaining
  identifier, and the profile is re-resolved from its links: the listed identifiers go, with
  whatever their own evidence ties to them, to new profiles; the rest keeps the id.
* ``ban_link``: ``identifiers`` are exactly two keys that must never share a profile. If
  they share one now, it is split the same way.
* ``link``: the answer to a possible match on ``identity.review.v1``: ``subject`` is the
  candidate profile, ``identifiers`` one identifier of the profile to join it. Governance
  (limits, merge cap, bans) still applies; the link is recorded with rule ``review``.

``consent``, ``object`` and ``erase`` are parsed here too; the resolver finds their subject
and hands them on (``scv.domain.erasure``, ``scv.streams.privacy``, docs/privacy.md).

Pure module: no Faust, no Kafka.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import fastjsonschema
import orjson

from scv.domain.governance import Rules
from scv.domain.graph import GENERIC, GraphStore, ProfileNode
from scv.domain.model import LinkReason, MergeEvent, Split
from scv.domain.normalize import (
    DEFAULT_CONFIG,
    InvalidEvent,
    NormalizeConfig,
    _parse_timestamp,
    canonical_value,
)
from scv.domain.resolver import refusal
from scv.domain.split import partition, split_profile
from scv.schemas import schema_reason, validator

#: Command types that change the identity graph (:func:`apply_command`).
RESOLVER_COMMANDS = frozenset({"unmerge", "ban_link", "link"})
#: Command types about a person's rights (``scv.domain.erasure`` and the profile stage).
PRIVACY_COMMANDS = frozenset({"consent", "object", "erase"})


@dataclass(slots=True)
class Command:
    command_id: str
    type: str
    ts: float
    profile_id: str | None  # subject given as a profile id
    subject_key: str | None  # subject given as an identifier
    identifiers: list[str]
    raw: dict[str, Any] = field(default_factory=dict)
    #: ``consent``: purpose -> granted (``consent`` and ``purpose``/``granted`` together)
    consent: dict[str, bool] = field(default_factory=dict)
    #: ``consent``/``object``: where the decision was captured
    source: str | None = None
    #: ``object``: true withdraws an earlier objection
    withdraw: bool = False


@dataclass(slots=True)
class CommandResult:
    """What a command did: the splits to publish, or why it could not be carried out."""

    command: Command
    splits: list[Split] = field(default_factory=list)
    merges: list[MergeEvent] = field(default_factory=list)
    bans: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None


class CommandError(Exception):
    """A well-formed command that cannot be carried out (unknown profile, foreign key)."""


def parse_command(raw: bytes, config: NormalizeConfig = DEFAULT_CONFIG) -> Command:
    """Decode and validate one command; identifiers are normalised as events' are.

    Raises :class:`InvalidEvent` (reason as on the DLQ) for anything malformed.
    """
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidEvent("invalid_json") from None
    if not isinstance(doc, dict):
        raise InvalidEvent("not_an_object")
    try:
        validator("identity.commands.v1")(doc)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise InvalidEvent(schema_reason(exc)) from None
    subject = doc["subject"]
    keys = [_key(i, config) for i in doc.get("identifiers") or []]
    consent: dict[str, bool] = dict(doc.get("consent") or {})
    if "purpose" in doc and "granted" in doc:
        consent[doc["purpose"]] = doc["granted"]
    return Command(
        command_id=doc["command_id"],
        type=doc["type"],
        ts=_parse_timestamp(doc["timestamp"]),
        profile_id=subject.get("profile_id"),
        subject_key=_key(subject, config) if "type" in subject else None,
        identifiers=list(dict.fromkeys(keys)),
        raw=doc,
        consent=consent,
        source=doc.get("source"),
        withdraw=bool(doc.get("withdraw", False)),
    )


def _key(ident: dict[str, Any], config: NormalizeConfig) -> str:
    value = canonical_value(ident["type"], ident["value"], config)
    if value is None:
        raise InvalidEvent(f"invalid_identifier:{ident['type']}")
    return f"{ident['type']}:{value}"


def apply_command(cmd: Command, store: GraphStore, rules: Rules) -> CommandResult:
    """Carry out ``cmd`` on the graph; errors are returned, never raised, so the stage can
    dead-letter the command with the reason and go on."""
    result = CommandResult(cmd)
    try:
        if cmd.type == "unmerge":
            _unmerge(cmd, store, rules, result)
        elif cmd.type == "ban_link":
            _ban_link(cmd, store, rules, result)
        elif cmd.type == "link":
            _link(cmd, store, rules, result)
        else:
            raise CommandError(f"unsupported_command:{cmd.type}")
    except CommandError as exc:
        result.error = str(exc)
    return result


def node_of(cmd: Command, store: GraphStore) -> ProfileNode:
    """The live profile the command's subject names (:class:`CommandError` if none)."""
    if cmd.profile_id is not None:
        node = store.get_node(cmd.profile_id)
        if node is None:
            raise CommandError("unknown_profile")
        return node
    owner = store.get_owner(cmd.subject_key or "")
    node = store.get_node(owner) if owner and owner != GENERIC else None
    if node is None:
        raise CommandError("subject_not_found")
    return node


def _unmerge(cmd: Command, store: GraphStore, rules: Rules, result: CommandResult) -> None:
    node = node_of(cmd, store)
    owned = set(node.keys())
    foreign = [k for k in cmd.identifiers if k not in owned]
    if foreign:
        raise CommandError(f"not_in_profile:{len(foreign)}")
    leaving = frozenset(cmd.identifiers)
    core = _core(node, leaving, rules)
    if core is None:
        raise CommandError("nothing_would_remain")
    for key in cmd.identifiers:
        node.add_ban(key, core)
        node.add_ban(core, key)
        result.bans.append((key, core))
    reason = LinkReason("unmerge", list(cmd.identifiers), cmd.command_id, cmd.ts)
    split = split_profile(node, store, rules, reason, keep=core)
    if split is None:  # cannot happen with a ban between two owned keys; keep the bans
        store.put_node(node)
    else:
        result.splits.append(split)


def _core(node: ProfileNode, leaving: frozenset[str], rules: Rules) -> str | None:
    """The identifier that stands for "the rest of the person" when ``leaving`` goes.

    Without the leaving identifiers the profile may fall apart (a phone that was only tied to
    the leaving email); the part that stays is the one holding the strongest identifier
    (priority, then age), and its oldest identifier keeps the id and gets the bans.
    """
    rest = partition(node, rules, leaving)
    if not rest:
        return None

    def strength(group: list[str]) -> tuple[int, float]:
        best = max(rules.rule(k.partition(":")[0]).priority for k in group)
        oldest = min(float(node.origins.get(k, (node.first_seen, ""))[0]) for k in group)
        return (best, -oldest)

    main = max(rest, key=strength)
    return min(main, key=lambda k: (float(node.origins.get(k, (node.first_seen, ""))[0]), k))


def _ban_link(cmd: Command, store: GraphStore, rules: Rules, result: CommandResult) -> None:
    if len(cmd.identifiers) != 2:
        raise CommandError("ban_link_needs_two_identifiers")
    a, b = cmd.identifiers
    owner_a, owner_b = store.get_owner(a), store.get_owner(b)
    nodes = {
        pid: node
        for pid in (owner_a, owner_b)
        if pid and pid != GENERIC and (node := store.get_node(pid)) is not None
    }
    if not nodes:
        raise CommandError("identifiers_not_found")
    for pid, node in nodes.items():
        if pid == owner_a:
            node.add_ban(a, b)
        if pid == owner_b:
            node.add_ban(b, a)
    result.bans.append((a, b))
    if owner_a == owner_b:
        node = nodes[owner_a]  # type: ignore[index]
        reason = LinkReason("ban_link", [a, b], cmd.command_id, cmd.ts)
        split = split_profile(node, store, rules, reason)
        if split is not None:
            result.splits.append(split)
            return
    for node in nodes.values():
        store.put_node(node)


def _link(cmd: Command, store: GraphStore, rules: Rules, result: CommandResult) -> None:
    if cmd.profile_id is None or len(cmd.identifiers) != 1:
        raise CommandError("link_needs_a_profile_and_one_identifier")
    target = node_of(cmd, store)
    key = cmd.identifiers[0]
    owner = store.get_owner(key)
    other = store.get_node(owner) if owner and owner != GENERIC else None
    if other is None:
        raise CommandError("identifier_not_found")
    if other.profile_id == target.profile_id:
        return  # already together
    counts = {kind: len(values) for kind, values in target.identifiers.items()}
    refused = refusal(
        other, counts, target.absorbed, 1, set(target.keys()), target.ban_targets(), rules
    )
    if refused is not None:
        raise CommandError(f"refused:{refused}")
    survivor, absorbed = sorted((target, other), key=lambda n: (n.first_seen, n.profile_id))
    anchor = target.keeper() or key
    reason = LinkReason("review", [anchor, key], cmd.command_id, cmd.ts)
    survivor.take(absorbed)
    survivor.add_link(anchor, key, "review", cmd.command_id, cmd.ts, None)
    for moved in absorbed.keys():
        store.set_owner(moved, survivor.profile_id)
    store.del_node(absorbed.profile_id)
    store.put_node(survivor)
    result.merges.append(MergeEvent(survivor.profile_id, absorbed.profile_id, reason))
