"""Consent, objection and erasure commands in the stream, and the suppression list.

Resolver side (:class:`ResolverPrivacy`, inside the single-writer resolve stage):

* ``consent`` and ``object`` commands: the subject (profile id, or an identifier, which
  gets a profile of its own if nobody owns it yet, as an event naming only it would) is
  resolved to a profile, and the command goes to the profile's owner on
  ``profiles.events.v1`` keyed by profile id, like every other resolver output.
* ``erase``: the graph forgets the person (``scv.domain.erasure``), their identifiers go on
  the suppression list (``identity-suppressed``), the profile owner is told, and an audit
  record without personal data goes to ``audit.v1``.
* every event, and every other command, is screened against the suppression list first; one
  that names an erased identifier is dropped whole (docs/privacy.md says why), counted and
  audited, and never dead-lettered (a DLQ would keep the personal data).

Profile side (:class:`ProfileEraser`): the profile's state is replaced by an ``erased``
marker (no personal data), the compacted ``profiles.v1`` gets a tombstone, and the ids once
merged into the profile get the same. Messages that reach an erased id later (a merge
hand-over or adoption decided before the erasure, still on its way) are dropped.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import orjson

from scv.domain import households
from scv.domain.commands import Command, CommandError, node_of
from scv.domain.erasure import erase, scrub_state
from scv.domain.governance import Rules
from scv.domain.graph import BLOCK_PREFIX, GENERIC, GraphStore
from scv.domain.model import NormalizedEvent, parse_ident
from scv.domain.profile import OPEN, ProfileState
from scv.domain.resolver import resolve
from scv.domain.suppression import SuppressionList, digest
from scv.settings import LOCAL_SUPPRESSION_KEY, Settings
from scv.streams import metrics
from scv.streams.households import household_messages
from scv.streams.output import Sink
from scv.streams.state import Table

log = logging.getLogger(__name__)

#: Where a decision's messages go (names of :class:`~scv.topics.Topics` properties), as in
#: ``scv.streams.resolve``.
EVENTS, AUDIT = "profile_events", "audit"

#: (topic, key, value) to send, in order.
Outgoing = tuple[str, bytes | None, bytes | None]

#: What a profile key holds once erased: ``{"erased": <command id>}``.
ERASED = "erased"


class Erased:
    """The marker an erased profile id keeps in the profile table: no personal data, only
    enough to drop what still arrives for the id (and to say which command erased it)."""

    __slots__ = ("command_id",)

    def __init__(self, command_id: str) -> None:
        self.command_id = command_id

    def encode(self) -> bytes:
        return orjson.dumps({ERASED: self.command_id})


def _audit(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)


def _types(keys: dict[str, bytes]) -> dict[str, int]:
    """How many of ``keys`` there are per identifier type (the audit's view of them)."""
    return dict(sorted(Counter(k.partition(":")[0] for k in keys).items()))


class ResolverPrivacy:
    """The resolver's part: suppression screening and the three privacy commands."""

    def __init__(self, settings: Settings, owners: Table, nodes: Table, suppressed: Table) -> None:
        self.owners, self.nodes, self.table = owners, nodes, suppressed
        secret = settings.suppression_key.get_secret_value()
        if secret == LOCAL_SUPPRESSION_KEY:
            log.warning(
                "SCV_SUPPRESSION_KEY is the built-in local key: set your own before the first "
                "erasure (docs/privacy.md)"
            )
        self._secret = secret.encode()
        self._list: SuppressionList | None = None

    @property
    def suppression(self) -> SuppressionList:
        """The list over the resolver's partition (made anew after a reassignment)."""
        if self._list is None:
            self._list = SuppressionList(self.table[0], self._secret)
        return self._list

    def reset(self) -> None:
        self._list = None

    # --- screening ---------------------------------------------------------------------
    def screen_event(self, event: NormalizedEvent) -> list[Outgoing] | None:
        """None if the event may be resolved; else the audit record of dropping it.

        An event without identifiers is checked by the ``contact:<event id>`` key the
        matcher would file it under (its replay must not re-create that profile either).
        """
        suppression = self.suppression
        if not len(suppression):  # nobody erased yet: no keys to build for every event
            return None
        keys = [f"{kind}:{value}" for kind, value in event.identifiers]
        if not keys:
            keys = [f"contact:{event.event_id}"]
        found = suppression.matching(keys)
        if not found:
            return None
        metrics.SUPPRESSED_INPUT.labels("event").inc()
        record = {
            "kind": "suppressed_event",
            "stage": "resolve",
            "processed_at": time.time(),
            "event_id": event.event_id,
            "source": event.source,
            "event_type": event.type,
            "event_ts": event.ts,
            "identifier_types": _types(found),
            "counts": {"identifiers": len(keys), "suppressed": len(found)},
            "by_commands": self.suppression.commands(found.values()),
        }
        return [(AUDIT, event.event_id.encode(), _audit(record))]

    def screen_command(self, cmd: Command) -> list[Outgoing] | None:
        """As :meth:`screen_event`, for a command naming an erased identifier (an erase
        itself always goes on: asking twice is no reason to keep anything)."""
        if cmd.type == "erase":
            return None
        keys = [k for k in (cmd.subject_key, *cmd.identifiers) if k]
        found = self.suppression.matching(keys)
        if not found:
            return None
        metrics.SUPPRESSED_INPUT.labels("command").inc()
        record = {
            "kind": "suppressed_command",
            "stage": "resolve",
            "processed_at": time.time(),
            "command_id": cmd.command_id,
            "command_type": cmd.type,
            "identifier_types": _types(found),
            "counts": {"identifiers": len(keys), "suppressed": len(found)},
            "by_commands": self.suppression.commands(found.values()),
        }
        return [(AUDIT, cmd.command_id.encode(), _audit(record))]

    # --- commands ----------------------------------------------------------------------
    def command(self, cmd: Command, store: GraphStore, rules: Rules) -> list[Outgoing]:
        """Carry out a ``consent``, ``object`` or ``erase`` command (:class:`CommandError`
        when the subject cannot be found or made)."""
        if cmd.type == "erase":
            return self._erase(cmd, store, rules)
        pid, anchor = self._subject(cmd, store, rules)
        body: dict[str, Any] = {
            "kind": cmd.type,
            "profile_id": pid,
            "command_id": cmd.command_id,
            "ts": cmd.ts,
            "anchor": anchor,
            "source": cmd.source or "command",
        }
        if cmd.type == "consent":
            body["consent"] = cmd.consent
        else:
            body["withdraw"] = cmd.withdraw
        return [(EVENTS, pid.encode(), orjson.dumps(body))]

    @staticmethod
    def _subject(cmd: Command, store: GraphStore, rules: Rules) -> tuple[str, str | None]:
        """The profile a consent or objection is about, and the identifier it is filed under.

        A subject identifier nobody owns gets a profile, as an event naming only it would:
        a denial recorded before the person's first event must hold against an older grant
        that event may carry.
        """
        if cmd.profile_id is not None or cmd.subject_key is None:
            node = node_of(cmd, store)
            return node.profile_id, node.keeper()
        key = cmd.subject_key
        owner = store.get_owner(key)
        if owner == GENERIC:
            raise CommandError("subject_is_generic")
        if owner is not None and store.get_node(owner) is not None:
            return owner, key
        event = NormalizedEvent(cmd.command_id, "command", cmd.type, cmd.ts, [parse_ident(key)])
        res = resolve(event, store, rules)
        if res.profile_id is None:
            raise CommandError("subject_blocked")
        return res.profile_id, key

    def _erase(self, cmd: Command, store: GraphStore, rules: Rules) -> list[Outgoing]:
        done = erase(cmd, store, rules)
        done.counts["suppressed"] = self.suppression.add(done.keys, cmd.command_id, cmd.ts)
        # The old values leave the disk too, not only the tables' current view.
        self.owners[0].purge.update(k.encode() for k in done.keys)
        self.owners[0].purge.update((BLOCK_PREFIX + b).encode() for b in done.blocks)
        self.nodes[0].purge.update(p.encode() for p in (*done.profile_ids, *done.scrubbed))
        metrics.ERASURES.labels("resolve").inc()
        log.info(
            "erase %s: %d profile(s), %d identifier(s) suppressed",
            cmd.command_id,
            len(done.profile_ids),
            len(done.keys),
        )
        out: list[Outgoing] = []
        for pid in done.profile_ids:
            body = {"kind": "erase", "profile_id": pid, "command_id": cmd.command_id, "ts": cmd.ts}
            out.append((EVENTS, pid.encode(), orjson.dumps(body)))
        # Profiles whose graph named her may name her in their state too (hashes only).
        hashes = [digest(self._secret, key).hex() for key in done.keys]
        for pid in done.scrubbed:
            body = {"kind": "scrub", "profile_id": pid, "command_id": cmd.command_id}
            out.append((EVENTS, pid.encode(), orjson.dumps(body | {"digests": hashes})))
        # Out of her household; one left with nobody goes (its values were its members').
        change, purge = households.forget_member(store, done.keys)
        self.owners[0].purge.update(k.encode() for k in purge)
        out += household_messages(change, [], store, 0)
        key = (done.profile_ids[0] if done.profile_ids else cmd.command_id).encode()
        out.append((AUDIT, key, _audit(done.audit(time.time()))))
        return out


class ProfileEraser:
    """The profile stage's part: erase a profile's state, drop what arrives for it later."""

    def __init__(self, events_topic: str, audit_topic: str, secret: bytes) -> None:
        self._events, self._audit = events_topic, audit_topic
        self._secret = secret

    def scrub(self, state: ProfileState, msg: dict[str, Any]) -> int:
        """Take the erased identifiers (sent as suppression hashes) out of another person's
        state; how many entries went."""
        hashes = {bytes.fromhex(h) for h in msg.get("digests") or []}
        secret = self._secret
        return scrub_state(state, lambda key: digest(secret, key) in hashes)

    def erase(
        self, out: Sink, pid: str, msg: dict[str, Any], slot: Any, now: float
    ) -> Erased | ProfileState:
        """What the profile key holds after ``msg`` (kind ``erase``).

        ``slot`` is what it held: a live state, a merged-away marker, an earlier erasure or
        nothing. An erase sent on to an id merged into an erased profile (``of``) never
        erases a live profile: ids are never reused, so that would be a bug, not a person.
        """
        command_id = str(msg["command_id"])
        of = msg.get("of")
        if isinstance(slot, Erased):
            return slot
        if of is not None and isinstance(slot, ProfileState):
            log.error("erase of %s (merged into %s) found a live profile: kept", pid, of)
            return slot
        counts: dict[str, int] = {}
        if isinstance(slot, ProfileState):
            counts = {
                "events": slot.event_count,
                "open_carts": sum(1 for c in slot.carts.values() if c["status"] == OPEN),
                "merged_ids": len(slot.merged_from),
            }
            self._cascade(out, slot.merged_from, command_id, float(msg.get("ts") or now), pid)
        metrics.ERASURES.labels("profiles").inc()
        record = {
            "kind": "erasure",
            "stage": "profiles",
            "command_id": command_id,
            "processed_at": time.time(),
            "outcome": "erased",
            "profile_id": pid,
            "of": of,
            "counts": counts | {"state": int(isinstance(slot, ProfileState))},
        }
        out.send(self._audit, pid.encode(), _audit(record))
        return Erased(command_id)

    def late(self, out: Sink, pid: str, msg: dict[str, Any], marker: Erased) -> None:
        """A message for an erased id: dropped. A merge hand-over decided before the
        erasure carries the ids merged in; their markers are erased too."""
        kind = str(msg.get("kind"))
        if kind in ("erase", "tick", "scrub"):
            return  # asked again (or a second path of the cascade), or nothing left to check
        if kind == "absorb":
            state = msg.get("state") or {}
            ids = [str(msg.get("absorbed")), *state.get("merged_from", [])]
            self._cascade(out, ids, marker.command_id, float(state.get("updated_ts") or 0), pid)
        metrics.ERASED_LATE.labels(kind).inc()
        record = {
            "kind": "erasure",
            "stage": "profiles",
            "command_id": marker.command_id,
            "processed_at": time.time(),
            "outcome": "late_message_dropped",
            "profile_id": pid,
            "message_kind": kind,
        }
        out.send(self._audit, pid.encode(), _audit(record))

    def _cascade(self, out: Sink, ids: list[str], command_id: str, ts: float, of: str) -> None:
        for other in dict.fromkeys(ids):
            if other and other != of:
                body = {
                    "kind": "erase",
                    "profile_id": other,
                    "command_id": command_id,
                    "ts": ts,
                    "of": of,
                }
                out.send(self._events, other.encode(), orjson.dumps(body))
