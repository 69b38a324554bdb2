"""Erasure in the identity graph (``scv.domain.erasure``): every map and index forgets the
person, other people's nodes lose the evidence that names them, and nothing else changes."""

from __future__ import annotations

from typing import Any

import orjson

from scv.domain.commands import Command, apply_command, parse_command
from scv.domain.erasure import erase
from scv.domain.governance import load_rules
from scv.domain.graph import GENERIC, RETIRED, DictStore, GraphStore, MappingStore
from scv.domain.matching.blocking import blocking_keys
from scv.domain.model import Identifier, NormalizedEvent, ident_key
from scv.domain.resolver import resolve

RULES = load_rules(None)
# Not @example.*: the default rules block those (placeholder addresses).
ALICE = ("email", "alice.erased@acme-corp.co.uk")
ALICE_CUSTOMER = ("customer_id", "C-ALICE")
ALICE_COOKIE = ("anonymous_id", "ck-alice")
SECOND_CUSTOMER = ("customer_id", "C-SECOND")  # refused: one customer id per profile
BOB = ("email", "bob.kept@acme-corp.co.uk")
BOB_COOKIE = ("anonymous_id", "ck-bob")
ALICE_VALUES = ["alice.erased", "C-ALICE", "ck-alice"]
ALICE_RECORD = {"given_name": "alice", "surname": "zyxwright", "postcode": "ZZ9 9ZZ"}
BOB_RECORD = {"given_name": "bob", "surname": "zyxwright", "postcode": "ZZ9 9ZZ"}


def event(event_id: str, ts: float, *idents: Identifier) -> NormalizedEvent:
    return NormalizedEvent(event_id, "web", "login", ts, [*idents])


def erase_command(subject: dict[str, Any], *extra: Identifier, cid: str = "erase-1") -> Command:
    doc: dict[str, Any] = {
        "command_id": cid,
        "type": "erase",
        "timestamp": 5000,
        "subject": subject,
    }
    if extra:
        doc["identifiers"] = [{"type": t, "value": v} for t, v in extra]
    return parse_command(orjson.dumps(doc))


def story(store: GraphStore) -> tuple[str, str, str]:
    """Alice: a cookie profile merged into her customer profile; a second customer id on one
    of her events is refused (a profile of its own, the refused link on both sides); Bob is
    banned from her cookie and shares a blocking key with her. Returns the three ids."""
    resolve(event("e1", 1000, ALICE_COOKIE), store, RULES)
    resolve(event("e2", 1100, ALICE_CUSTOMER, ALICE), store, RULES)
    merged = resolve(event("e3", 1200, ALICE, ALICE_COOKIE), store, RULES)
    assert merged.merges, "the cookie profile is merged into Alice's"
    refused = resolve(event("e4", 1300, SECOND_CUSTOMER, ALICE_CUSTOMER), store, RULES)
    assert [d.reason for d in refused.dropped] == ["limit:customer_id"]
    resolve(event("e5", 1400, BOB, BOB_COOKIE), store, RULES)
    ban = parse_command(
        orjson.dumps(
            {
                "command_id": "ban-1",
                "type": "ban_link",
                "timestamp": 1500,
                "subject": {"type": "email", "value": BOB[1]},
                "identifiers": [
                    {"type": "anonymous_id", "value": ALICE_COOKIE[1]},
                    {"type": "email", "value": BOB[1]},
                ],
            }
        )
    )
    assert apply_command(ban, store, RULES).error is None
    alice = store.get_owner(ident_key(ALICE)) or ""
    bob = store.get_owner(ident_key(BOB)) or ""
    second = store.get_owner(ident_key(SECOND_CUSTOMER)) or ""
    for pid, key, record in (
        (alice, ident_key(ALICE), ALICE_RECORD),
        (bob, ident_key(BOB), BOB_RECORD),
    ):
        node = store.get_node(pid)
        assert node is not None
        node.records[key] = dict(record)
        store.put_node(node)
        for bkey in blocking_keys(record):
            store.add_block(bkey, key)
    store.flush()
    return alice, bob, second


def test_erase_forgets_the_person_everywhere_and_only_them() -> None:
    store = DictStore()
    alice, bob, second = story(store)
    bob_before = store.get_node(bob)
    assert bob_before is not None and bob_before.bans  # the ban names Alice's cookie
    second_node = store.get_node(second)
    assert second_node is not None
    assert any(ident_key(ALICE_CUSTOMER) in link[:2] for link in second_node.links)

    done = erase(erase_command({"type": "email", "value": ALICE[1]}), store, RULES)

    assert done.profile_ids == [alice]
    assert set(done.keys) == {ident_key(ALICE), ident_key(ALICE_CUSTOMER), ident_key(ALICE_COOKIE)}
    assert done.identifier_types == {"email": 1, "customer_id": 1, "anonymous_id": 1}
    assert store.get_node(alice) is None and store.used(alice)  # retired: never reused
    assert all(store.get_owner(k) is None for k in done.keys)
    # Nothing anywhere still names Alice: owners, nodes (Bob's ban, the refused link on the
    # second customer's profile) and the blocking index (keys and members).
    everything = orjson.dumps([store.to_dict(), store.blocks]).decode()
    for value in [*ALICE_VALUES, "alice"]:
        assert value not in everything, value
    # Everyone else is intact: Bob keeps his identifiers and his blocking entries.
    bob_after = store.get_node(bob)
    assert bob_after is not None
    assert bob_after.keys() == [ident_key(BOB), ident_key(BOB_COOKIE)]
    assert bob_after.bans == {}
    for bkey in blocking_keys(BOB_RECORD):
        assert store.get_block(bkey) == [ident_key(BOB)]
    assert store.get_owner(ident_key(SECOND_CUSTOMER)) == second
    assert done.counts["nodes_scrubbed"] == 2
    assert done.counts["foreign_links"] == 1 and done.counts["foreign_bans"] == 1
    assert done.counts["identifiers"] == 3 and done.counts["merged_in"] == 1
    audit = orjson.dumps(done.audit(6000.0)).decode()
    for value in ALICE_VALUES:
        assert value not in audit


def test_erase_through_the_write_back_store_leaves_no_value_in_the_maps() -> None:
    """The resolver's store: deletes reach the maps (changelog tombstones), and neither the
    maps nor the store's caches keep an erased identifier or blocking key."""
    owners: dict[bytes, bytes] = {}
    nodes: dict[bytes, bytes] = {}
    store = MappingStore(owners, nodes)
    alice, _, _ = story(store)
    erase(erase_command({"profile_id": alice}), store, RULES)
    store.flush()
    assert nodes[alice.encode()] == RETIRED
    dumped = repr((owners, nodes, store._owner_cache, store._block_cache, store._node_cache))
    for value in [*ALICE_VALUES, "alice"]:
        assert value not in dumped, value
    assert owners  # Bob and the second customer are still there


def test_erase_of_several_identifiers_takes_every_profile_they_name() -> None:
    store = DictStore()
    alice, bob, _ = story(store)
    done = erase(erase_command({"type": "email", "value": ALICE[1]}, BOB), store, RULES)
    assert set(done.profile_ids) == {alice, bob}
    assert store.get_owner(ident_key(BOB_COOKIE)) is None


def test_erase_of_an_unknown_identifier_still_lists_it() -> None:
    """Nobody is found, yet the person asked: their identifier goes on the suppression list
    so that it is never processed later."""
    store = DictStore()
    done = erase(erase_command({"type": "email", "value": "unseen@acme-corp.co.uk"}), store, RULES)
    assert done.profile_ids == []
    assert done.keys == ["email:unseen@acme-corp.co.uk"]
    assert done.audit(1.0)["outcome"] == "nothing_found"


def test_erase_never_lists_generic_or_blocked_values() -> None:
    """A shared phone or a placeholder address is not one person's: listing it would drop
    everybody's events."""
    store = DictStore()
    store.set_owner("phone:+447700900111", GENERIC)
    generic = erase_command({"type": "phone", "value": "+447700900111"})
    done = erase(generic, store, RULES)
    assert done.keys == [] and done.counts["generic_skipped"] == 1
    placeholder = erase_command({"type": "email", "value": "test@example.com"})
    assert erase(placeholder, store, RULES).keys == []


def test_erase_drops_the_identifiers_from_the_governance_memo() -> None:
    store = DictStore()
    story(store)
    assert ALICE in RULES._blocked  # the resolver asked about it
    erase(erase_command({"type": "email", "value": ALICE[1]}), store, RULES)
    assert ALICE not in RULES._blocked and ALICE_COOKIE not in RULES._blocked


def test_an_emptied_blocking_key_is_deleted_but_a_shared_one_kept() -> None:
    store = DictStore()
    store.add_block("em:x", "email:a")
    store.add_block("nn:shared", "email:a")
    store.add_block("nn:shared", "email:b")
    assert store.remove_block("em:x", "email:a") and "em:x" not in store.blocks
    assert store.remove_block("nn:shared", "email:a")
    assert store.get_block("nn:shared") == ["email:b"]
    assert not store.remove_block("nn:shared", "email:a")  # idempotent


def test_the_steward_builds_privacy_commands_the_resolver_parses() -> None:
    from scv.steward import build_command

    erase_doc = build_command("erase", ["email:Alice.Erased@acme-corp.co.uk", "phone:07700 900123"])
    cmd = parse_command(orjson.dumps(erase_doc))
    assert (cmd.type, cmd.subject_key) == ("erase", ident_key(ALICE))
    assert cmd.identifiers == ["phone:+447700900123"]
    consent_doc = build_command(
        "consent", ["email:a@acme-corp.co.uk"], consent={"marketing": False}, source="call"
    )
    consent = parse_command(orjson.dumps(consent_doc))
    assert (consent.consent, consent.source, consent.identifiers) == (
        {"marketing": False},
        "call",
        [],
    )
    withdraw = parse_command(
        orjson.dumps(build_command("object", [], profile_id="p_1", withdraw=True))
    )
    assert (withdraw.type, withdraw.profile_id, withdraw.withdraw) == ("object", "p_1", True)
