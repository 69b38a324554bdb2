"""Identity commands: parsing (identity.commands.v1), un-merge and ban-link on the graph."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_split import (
    DEFAULT,
    UNIVERSE,
    check_graph,
    check_resolution,
    ev,
    event_sequences,
    groups,
    random_rules,
)

from scv.domain.commands import Command, CommandResult, apply_command, parse_command
from scv.domain.governance import Rules
from scv.domain.graph import GENERIC, DictStore, new_profile_id
from scv.domain.model import Identifier, NormalizedEvent, ident_key
from scv.domain.normalize import InvalidEvent
from scv.domain.resolver import resolve

C1 = ("customer_id", "C1")
COOKIE = ("anonymous_id", "k")
BOB = ("email", "bob@acme-corp.co.uk")
BOB_PHONE = ("phone", "+447700900666")


def raw(
    command_id: str = "cmd-1",
    type_: str = "unmerge",
    identifiers: list[Identifier] | None = None,
    subject: dict[str, Any] | None = None,
    timestamp: Any = "2024-06-01T12:00:00Z",
    **extra: Any,
) -> bytes:
    doc: dict[str, Any] = {
        "command_id": command_id,
        "type": type_,
        "timestamp": timestamp,
        "subject": subject if subject is not None else {"profile_id": "p_x"},
    }
    if identifiers is not None:
        doc["identifiers"] = [{"type": t, "value": v} for t, v in identifiers]
    return orjson.dumps(doc | extra)


def command(
    command_id: str,
    type_: str,
    identifiers: list[Identifier],
    subject: dict[str, Any] | None = None,
) -> Command:
    return parse_command(raw(command_id, type_, identifiers, subject, timestamp=1000))


# --------------------------------------------------------------------------- parse_command


def test_parse_unmerge_with_profile_subject() -> None:
    cmd = parse_command(
        raw(
            "cmd-1",
            "unmerge",
            [("email", "Jane.Doe@Acme-Corp.co.uk"), ("phone", "07700 900123")],
            {"profile_id": "p_abc"},
            requested_by="steward@acme-corp.co.uk",
            reason="two people fused by a shared login",
        )
    )
    assert cmd.command_id == "cmd-1" and cmd.type == "unmerge"
    assert cmd.ts == 1717243200.0
    assert cmd.profile_id == "p_abc" and cmd.subject_key is None
    assert cmd.identifiers == ["email:jane.doe@acme-corp.co.uk", "phone:+447700900123"]
    assert cmd.raw["requested_by"] == "steward@acme-corp.co.uk"


def test_parse_unmerge_with_identifier_subject_normalises_it() -> None:
    cmd = parse_command(
        raw(
            subject={"type": "email", "value": "Jane.Doe@Acme-Corp.co.uk"},
            identifiers=[("anonymous_id", "  ck  1 "), ("anonymous_id", "ck 1")],
            timestamp=1717243200000,  # epoch milliseconds
        )
    )
    assert cmd.profile_id is None
    assert cmd.subject_key == "email:jane.doe@acme-corp.co.uk"
    assert cmd.identifiers == ["anonymous_id:ck 1"]  # normalised, then de-duplicated
    assert cmd.ts == 1717243200.0


def test_parse_other_command_types() -> None:
    ban = parse_command(raw(type_="ban_link", identifiers=[C1, BOB]))
    assert ban.identifiers == ["customer_id:C1", "email:bob@acme-corp.co.uk"]
    erase = parse_command(raw(type_="erase", subject={"type": "customer_id", "value": "C1"}))
    assert erase.type == "erase" and erase.identifiers == []
    consent = parse_command(raw(type_="consent", purpose="marketing", granted=False))
    assert consent.raw["granted"] is False


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'"unmerge"', "not_an_object"),
    ],
)
def test_parse_rejects_undecodable_input(payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as exc:
        parse_command(payload)
    assert exc.value.reason == reason


def _without(key: str) -> bytes:
    doc = orjson.loads(raw(identifiers=[BOB]))
    del doc[key]
    return orjson.dumps(doc)


@pytest.mark.parametrize(
    "payload",
    [
        raw(identifiers=None),  # unmerge needs identifiers
        raw(type_="ban_link", identifiers=None),
        raw(identifiers=[]),  # minItems 1
        raw(type_="merge", identifiers=[BOB]),  # not a command type
        raw(type_="consent", identifiers=[BOB]),  # consent needs purpose and granted
        raw(identifiers=[BOB], subject={"profile_id": "p", "type": "email"}),
        raw(identifiers=[BOB], subject={"type": "email"}),
        raw(identifiers=[BOB], subject={}),
        raw(identifiers=[("Email", "a@acme-corp.co.uk")]),  # type pattern
        raw(identifiers=[BOB], timestamp="yesterday"),
        raw(identifiers=[BOB], timestamp=-1),
        raw(identifiers=[BOB], command_id=""),
        raw(identifiers=[BOB], unknown_field=1),
        _without("command_id"),
        _without("timestamp"),
        _without("subject"),
    ],
)
def test_parse_rejects_schema_violations(payload: bytes) -> None:
    with pytest.raises(InvalidEvent) as exc:
        parse_command(payload)
    assert exc.value.reason.startswith("schema: "), exc.value.reason


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (raw(identifiers=[("email", "not-an-email")]), "invalid_identifier:email"),
        (raw(identifiers=[("phone", "12")]), "invalid_identifier:phone"),
        (raw(identifiers=[("anonymous_id", "   ")]), "invalid_identifier:anonymous_id"),
        (
            raw(identifiers=[BOB], subject={"type": "email", "value": "nope"}),
            "invalid_identifier:email",
        ),
        (raw(identifiers=[BOB], timestamp="2024-13-45T00:00:00Z"), "bad_timestamp"),
    ],
)
def test_parse_rejects_values_that_do_not_normalise(payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as exc:
        parse_command(payload)
    assert exc.value.reason == reason


# --------------------------------------------------------------------------- unmerge


def _fused(bob_first: bool = False) -> tuple[DictStore, str]:
    """Ann (customer C1, cookie k) and Bob (email + phone) fused when Bob logged in on
    Ann's computer. With ``bob_first`` Bob's identifiers are older than Ann's."""
    store = DictStore()
    bob_ts = 0.5 if bob_first else 1.5
    resolve(ev("ann1", 1.0, C1, COOKIE), store, DEFAULT)
    resolve(ev("bob1", bob_ts, BOB, BOB_PHONE), store, DEFAULT)
    fuse = resolve(FUSING_EVENT, store, DEFAULT)
    assert len(fuse.merges) == 1 and len(store.nodes) == 1
    return store, fuse.profile_id or ""


FUSING_EVENT = ev("bob-login", 2.0, BOB, COOKIE)
ANN_KEYS = {"customer_id:C1", "anonymous_id:k"}
BOB_KEYS = {"email:bob@acme-corp.co.uk", "phone:+447700900666"}


def test_unmerge_splits_the_second_person_off() -> None:
    store, pid = _fused()
    cmd = command("cmd-unmerge", "unmerge", [BOB], {"profile_id": pid})
    result = apply_command(cmd, store, DEFAULT)

    assert result.error is None
    [split] = result.splits
    assert split.profile_id == pid and split.removed == []
    assert (split.reason.rule, split.reason.event_id) == ("unmerge", "cmd-unmerge")
    assert split.reason.identifiers == [ident_key(BOB)]
    new_id = new_profile_id(f"cmd-unmerge/{ident_key(BOB)}")
    # The survivor keeps the id and the oldest identifier; Bob's phone goes with his email.
    assert {k: set(v) for k, v in split.parts.items()} == {pid: ANN_KEYS, new_id: BOB_KEYS}
    assert groups(store) == {frozenset(ANN_KEYS), frozenset(BOB_KEYS)}
    keeper = store.nodes[pid].keeper()
    assert keeper in ANN_KEYS
    assert result.bans == [(ident_key(BOB), keeper)]
    assert store.nodes[pid].bans == {keeper: [ident_key(BOB)]}
    assert store.nodes[new_id].bans == {ident_key(BOB): [keeper]}
    assert store.owners[ident_key(BOB)] == new_id
    assert store.owners[ident_key(BOB_PHONE)] == new_id
    # The fusing link survives only as refused evidence: one end outside each profile.
    for node in store.nodes.values():
        keys = set(node.keys())
        for lk in node.links:
            if {lk[0], lk[1]} == {ident_key(BOB), ident_key(COOKIE)}:
                assert len(keys & {lk[0], lk[1]}) == 1
    check_graph(store, DEFAULT)


def test_unmerge_by_identifier_subject_and_several_identifiers() -> None:
    store, pid = _fused()
    cmd = command(
        "cmd-2",
        "unmerge",
        [BOB_PHONE, BOB],
        {"type": "customer_id", "value": "C1"},
    )
    result = apply_command(cmd, store, DEFAULT)
    assert result.error is None
    [split] = result.splits
    assert set(split.parts[pid]) == ANN_KEYS
    assert len(result.bans) == 2
    check_graph(store, DEFAULT)


def test_unmerge_new_id_is_deterministic_on_replay() -> None:
    ids = []
    for _ in range(2):
        store, pid = _fused()
        result = apply_command(
            command("cmd-unmerge", "unmerge", [BOB], {"profile_id": pid}), store, DEFAULT
        )
        ids.append(sorted(result.splits[0].parts))
        snapshot = store.to_dict()
    assert ids[0] == ids[1]
    store, pid = _fused()
    apply_command(command("cmd-unmerge", "unmerge", [BOB], {"profile_id": pid}), store, DEFAULT)
    assert store.to_dict() == snapshot
    # A different command id gives a different new profile.
    store, pid = _fused()
    other = apply_command(
        command("cmd-other", "unmerge", [BOB], {"profile_id": pid}), store, DEFAULT
    )
    assert sorted(other.splits[0].parts) != ids[0]


@pytest.mark.parametrize(
    "event",
    [
        FUSING_EVENT,
        ev("replay-reordered", 2.0, COOKIE, BOB),
        ev("via-phone", 3.0, BOB_PHONE, COOKIE),
        ev("via-customer", 3.0, C1, BOB),
    ],
    ids=lambda e: e.event_id,
)
def test_unmerged_people_are_not_fused_again(event: NormalizedEvent) -> None:
    store, pid = _fused()
    apply_command(command("cmd-u", "unmerge", [BOB], {"profile_id": pid}), store, DEFAULT)
    bob_pid = store.owners[ident_key(BOB)]
    before = groups(store)

    res = resolve(event, store, DEFAULT)
    assert res.merges == []
    assert groups(store) == before
    [dropped] = res.dropped
    assert dropped.reason == "banned"
    assert dropped.owner in (pid, bob_pid) and dropped.owner != res.profile_id
    check_resolution(event, res, store)
    check_graph(store, DEFAULT)


def test_unmerge_keeps_the_id_on_the_remaining_identifiers_even_if_younger() -> None:
    """Bob's identifiers are older than Ann's; the steward un-merges all of them. The rest
    of the profile (Ann's) keeps the id, as commands.py documents. (Regression: the keeper
    used to be recomputed over *all* keys in split_profile, so the leaving part kept it.)"""
    store, pid = _fused(bob_first=True)
    cmd = command("cmd-u", "unmerge", [BOB, BOB_PHONE], {"profile_id": pid})
    result = apply_command(cmd, store, DEFAULT)
    assert result.error is None
    [split] = result.splits
    assert {frozenset(v) for v in split.parts.values()} == {
        frozenset(ANN_KEYS),
        frozenset(BOB_KEYS),
    }
    assert set(split.parts[pid]) == ANN_KEYS, (
        f"the un-merged identifiers kept the profile id: parts={split.parts} (pid={pid})"
    )
    check_graph(store, DEFAULT)


def test_unmerge_moves_the_listed_identifier_out_even_if_its_own_phone_is_oldest() -> None:
    """Bob's email and phone are older than Ann's identifiers; the steward un-merges Bob's
    email only. The oldest remaining identifier is Bob's own phone, but the ban must go to
    the rest of the *other* person, so the email leaves (taking the phone it alone ties) and
    the fusing login stays refused. (Regression: the ban used to go to the oldest remaining
    key, Bob's phone, leaving the email fused with Ann's customer id.)"""
    store, pid = _fused(bob_first=True)
    result = apply_command(command("cmd-u", "unmerge", [BOB], {"profile_id": pid}), store, DEFAULT)
    assert result.error is None
    assert store.owners[ident_key(BOB)] != store.owners[ident_key(C1)], (
        f"the un-merged email still shares a profile with customer_id:C1: bans={result.bans} "
        f"parts={result.splits[0].parts if result.splits else None}"
    )
    assert groups(store) == {frozenset(ANN_KEYS), frozenset(BOB_KEYS)}
    assert set(result.splits[0].parts[pid]) == ANN_KEYS
    res = resolve(FUSING_EVENT, store, DEFAULT)
    assert [d.reason for d in res.dropped] == ["banned"]
    check_graph(store, DEFAULT)


def _unchanged_error(store: DictStore, cmd: Command) -> CommandResult:
    before = store.to_dict()
    result = apply_command(cmd, store, DEFAULT)
    assert result.splits == [] and result.bans == []
    assert store.to_dict() == before
    return result


def test_unmerge_errors() -> None:
    store, pid = _fused()
    unknown = command("c", "unmerge", [BOB], {"profile_id": "p_nobody"})
    assert _unchanged_error(store, unknown).error == "unknown_profile"
    not_found = command("c", "unmerge", [BOB], {"type": "email", "value": "x@acme-corp.co.uk"})
    assert _unchanged_error(store, not_found).error == "subject_not_found"
    foreign = command("c", "unmerge", [BOB, ("email", "zed@acme-corp.co.uk")], {"profile_id": pid})
    assert _unchanged_error(store, foreign).error == "not_in_profile:1"
    everything = command("c", "unmerge", [C1, COOKIE, BOB, BOB_PHONE], {"profile_id": pid})
    assert _unchanged_error(store, everything).error == "nothing_would_remain"
    erase = parse_command(raw(type_="erase", subject={"profile_id": pid}))
    assert _unchanged_error(store, erase).error == "unsupported_command:erase"
    consent = parse_command(
        raw(type_="consent", subject={"profile_id": pid}, purpose="marketing", granted=True)
    )
    assert _unchanged_error(store, consent).error == "unsupported_command:consent"


def test_unmerge_of_a_generic_subject_is_not_found() -> None:
    store = DictStore()
    store.set_owner("phone:+447700900111", GENERIC)
    cmd = command("c", "unmerge", [BOB], {"type": "phone", "value": "+447700900111"})
    assert _unchanged_error(store, cmd).error == "subject_not_found"


# --------------------------------------------------------------------------- ban_link


def test_ban_link_between_two_profiles_prevents_a_later_merge() -> None:
    store = DictStore()
    ann = resolve(ev("a", 1.0, C1, COOKIE), store, DEFAULT).profile_id or ""
    bob = resolve(ev("b", 2.0, BOB, BOB_PHONE), store, DEFAULT).profile_id or ""
    result = apply_command(command("ban", "ban_link", [C1, BOB]), store, DEFAULT)
    assert result.error is None and result.splits == []
    assert result.bans == [(ident_key(C1), ident_key(BOB))]
    assert store.nodes[ann].bans == {"customer_id:C1": [ident_key(BOB)]}
    assert store.nodes[bob].bans == {ident_key(BOB): ["customer_id:C1"]}

    # Any path between the two profiles is refused, not just the banned pair itself.
    for event in (ev("x", 3.0, C1, BOB), ev("y", 4.0, BOB_PHONE, COOKIE)):
        res = resolve(event, store, DEFAULT)
        assert res.merges == []
        assert [d.reason for d in res.dropped] == ["banned"]
        assert res.dropped[0].owner in (ann, bob)
    assert groups(store) == {frozenset(ANN_KEYS), frozenset(BOB_KEYS)}
    check_graph(store, DEFAULT)


def test_ban_link_with_one_unknown_identifier_keeps_it_out() -> None:
    store = DictStore()
    ann = resolve(ev("a", 1.0, C1, COOKIE), store, DEFAULT).profile_id
    result = apply_command(command("ban", "ban_link", [C1, BOB]), store, DEFAULT)
    assert result.error is None
    res = resolve(ev("x", 3.0, BOB, COOKIE), store, DEFAULT)
    assert res.profile_id != ann
    assert [(d.identifier, d.reason) for d in res.dropped] == [(COOKIE, "banned")]
    check_graph(store, DEFAULT)


def test_ban_link_inside_one_profile_splits_it() -> None:
    store = DictStore()
    pid = resolve(ev("e", 1.0, C1, BOB, COOKIE), store, DEFAULT).profile_id or ""
    result = apply_command(command("ban", "ban_link", [BOB, C1]), store, DEFAULT)
    assert result.error is None
    [split] = result.splits
    assert split.reason.rule == "ban_link"
    # C1-k and C1-email were recorded; the ban refuses the second one.
    assert {frozenset(v) for v in split.parts.values()} == {
        frozenset(ANN_KEYS),
        frozenset({ident_key(BOB)}),
    }
    assert set(split.parts[pid]) == ANN_KEYS  # the cookie is the oldest key (tie -> key)
    check_graph(store, DEFAULT)
    res = resolve(ev("again", 2.0, C1, BOB), store, DEFAULT)
    assert [d.reason for d in res.dropped] == ["banned"]


def test_ban_link_errors() -> None:
    store = DictStore()
    resolve(ev("a", 1.0, C1, COOKIE), store, DEFAULT)
    one = parse_command(raw(type_="ban_link", identifiers=[C1, C1]))  # de-duplicated to one
    assert _unchanged_error(store, one).error == "ban_link_needs_two_identifiers"
    three = command("b", "ban_link", [C1, COOKIE, BOB])
    assert _unchanged_error(store, three).error == "ban_link_needs_two_identifiers"
    nobody = command("b", "ban_link", [BOB, BOB_PHONE])
    assert _unchanged_error(store, nobody).error == "identifiers_not_found"


# --------------------------------------------------------------------------- properties


def _op(data: st.DataObject, store: DictStore, i: int) -> Command | NormalizedEvent:
    kind = data.draw(st.sampled_from(["event", "event", "unmerge", "ban_link", "bad"]))
    splittable = sorted(pid for pid, node in store.nodes.items() if len(node.keys()) > 1)
    if kind == "unmerge" and splittable:
        pid = data.draw(st.sampled_from(splittable))
        keys = store.nodes[pid].keys()
        leaving = data.draw(
            st.lists(st.sampled_from(keys), min_size=1, max_size=len(keys) - 1, unique=True)
        )
        subject_key = data.draw(st.sampled_from(keys))
        by_key = data.draw(st.booleans())
        return Command(
            f"cmd{i}",
            "unmerge",
            float(i),
            None if by_key else pid,
            subject_key if by_key else None,
            leaving,
        )
    if kind == "ban_link":
        inside = data.draw(st.booleans())
        if splittable and inside:  # a pair inside one profile
            keys = store.nodes[data.draw(st.sampled_from(splittable))].keys()
        else:
            keys = [ident_key(p) for p in UNIVERSE]
        pair = data.draw(st.lists(st.sampled_from(keys), min_size=2, max_size=2, unique=True))
        return Command(f"cmd{i}", "ban_link", float(i), None, None, pair)
    if kind == "bad":
        keys = [ident_key(x) for x in data.draw(st.lists(st.sampled_from(UNIVERSE), min_size=1))]
        pid = data.draw(st.sampled_from([*sorted(store.nodes), "p_nobody"]))
        type_ = data.draw(st.sampled_from(["unmerge", "ban_link", "erase"]))
        return Command(f"cmd{i}", type_, float(i), pid, None, list(dict.fromkeys(keys)))
    [event] = data.draw(event_sequences(max_size=1))
    return ev(f"ev{i}", event.ts, *event.identifiers)


@settings(max_examples=150, deadline=None)
@given(rules=st.one_of(st.just(DEFAULT), random_rules()), data=st.data())
def test_invariants_hold_under_events_and_commands(rules: Rules, data: st.DataObject) -> None:
    store = DictStore()
    steps = data.draw(st.integers(5, 30))
    for i in range(steps):
        op = _op(data, store, i)
        if isinstance(op, NormalizedEvent):
            res = resolve(op, store, rules)
            check_resolution(op, res, store)
        else:
            result = apply_command(op, store, rules)  # never raises
            for split in result.splits:
                for part, keys in split.parts.items():
                    assert sorted(store.nodes[part].keys()) == sorted(keys)
            if op.type == "unmerge" and op.subject_key is not None:
                assert result.error is None, result.error  # a strict subset of a live profile
            if op.type == "unmerge" and result.error is None:
                # The listed identifiers left the part that kept the id.
                [split] = result.splits
                kept = store.nodes.get(split.profile_id)
                assert kept is not None and not set(op.identifiers) & set(kept.keys())
        check_graph(store, rules)


# --------------------------------------------------------------------------- link (review)


def test_link_joins_the_profiles_a_reviewer_accepted() -> None:
    store = DictStore()
    ann = resolve(ev("ann1", 1.0, C1, COOKIE), store, DEFAULT).profile_id or ""
    caller = resolve(ev("call1", 2.0, BOB_PHONE), store, DEFAULT).profile_id or ""
    result = apply_command(
        command("rev-1", "link", [BOB_PHONE], {"profile_id": ann}), store, DEFAULT
    )
    assert result.error is None
    assert [(m.survivor, m.absorbed, m.reason.rule) for m in result.merges] == [
        (ann, caller, "review")
    ]
    assert result.merges[0].reason.event_id == "rev-1"
    assert groups(store) == {frozenset({"customer_id:C1", "anonymous_id:k", ident_key(BOB_PHONE)})}
    node = store.nodes[ann]
    assert any(lk[2] == "review" and ident_key(BOB_PHONE) in lk[:2] for lk in node.links)
    check_graph(store, DEFAULT)
    # Accepting the same match again changes nothing.
    again = apply_command(
        command("rev-2", "link", [BOB_PHONE], {"profile_id": ann}), store, DEFAULT
    )
    assert again.error is None and again.merges == []


def test_link_still_obeys_governance_and_names_the_reason() -> None:
    store = DictStore()
    ann = resolve(ev("ann1", 1.0, C1, COOKIE), store, DEFAULT).profile_id or ""
    resolve(ev("other", 2.0, ("customer_id", "C2"), BOB), store, DEFAULT)
    result = apply_command(command("rev-1", "link", [BOB], {"profile_id": ann}), store, DEFAULT)
    assert result.error == "refused:limit:customer_id" and result.merges == []
    assert len(store.nodes) == 2
    missing = apply_command(
        command("rev-2", "link", [("email", "nobody@acme-corp.co.uk")], {"profile_id": ann}),
        store,
        DEFAULT,
    )
    assert missing.error == "identifier_not_found"
    by_identifier = apply_command(
        command("rev-3", "link", [BOB], {"type": "customer_id", "value": "C1"}), store, DEFAULT
    )
    assert by_identifier.error == "link_needs_a_profile_and_one_identifier"
