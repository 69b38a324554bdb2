"""Rule diffs: re-resolving the same events under other rules says what would split or merge,
and why. Rule files are written to tmp_path like a steward would write them."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from examples import ev

from scv.domain.governance import Rules, load_rules
from scv.domain.model import Identifier, NormalizedEvent
from scv.domain.resolver import DictStore
from scv.domain.rulediff import compare, event_time_order, render_text, replay

PHONE = "+447700900001"  # Ofcom drama range: not a real number


def rules_file(
    tmp_path: Path, name: str, *, email_max: int = 5, blocked: tuple[str, ...] = ()
) -> Rules:
    """A complete, small rule file (nothing is merged in from the shipped defaults)."""
    data: dict[str, Any] = {
        "merge_cap": 100,
        "identifiers": {
            "customer_id": {"max_per_profile": 1, "priority": 100},
            "email": {"max_per_profile": email_max, "priority": 90},
            "phone": {"max_per_profile": 3, "priority": 80},
            "anonymous_id": {"max_per_profile": 50, "priority": 30},
        },
        "default": {"max_per_profile": 10, "priority": 10},
        "blocked": {"values": ["null"], "exact": list(blocked)},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_rules(path)


def e(event_id: str, ts: float, *idents: Identifier) -> NormalizedEvent:
    return ev("web", "page_view", ts, list(idents), event_id=event_id)


def test_replay_reads_profiles_from_the_final_graph(tmp_path: Path) -> None:
    rules = rules_file(tmp_path, "base")
    events = [
        e("a", 1, ("email", "a@x.test")),
        e("b", 2, ("email", "b@x.test")),
        e("c", 3, ("email", "a@x.test"), ("email", "b@x.test")),  # merges a's and b's profiles
        e("d", 4, ("anonymous_id", "null")),  # blocked: nobody's
    ]
    result = replay(events, rules, DictStore())
    owners = {eid: o.profile_id for eid, o in result.outcomes.items()}
    assert owners["a"] == owners["b"] == owners["c"] is not None
    assert owners["d"] is None
    assert result.outcomes["c"].merges == (("deterministic", ("email:b@x.test",)),)
    with pytest.raises(ValueError, match="twice"):
        replay([*events, events[0]], rules, DictStore())


def test_blocking_a_shared_phone_splits_the_profile(tmp_path: Path) -> None:
    base = rules_file(tmp_path, "base")
    cand = rules_file(tmp_path, "new", blocked=(f"phone:{PHONE}",))
    events = [
        e("jane-1", 1, ("email", "jane@x.test"), ("phone", PHONE)),
        e("john-1", 2, ("email", "john@x.test"), ("phone", PHONE)),
        e("jane-2", 3, ("email", "jane@x.test")),
        e("call-1", 4, ("phone", PHONE)),  # only the phone: no profile once it is blocked
    ]
    d = compare(events, base, cand)

    assert (d.events, d.profiles_before, d.profiles_after) == (4, 1, 2)
    assert (d.unassigned_before, d.unassigned_after) == (0, 1)
    assert d.merges == ()
    assert d.events_moved == 2  # jane's 2 events stay; john's and the call move
    assert d.unchanged_profiles == 0
    [split] = d.splits
    assert split.events == 4
    assert split.identifiers == ("email:jane@x.test", "email:john@x.test", f"phone:{PHONE}")
    assert [(p.events, p.identifiers) for p in split.parts] == [
        (2, ("email:jane@x.test",)),
        (1, ("email:john@x.test",)),
        (1, ()),
    ]
    assert split.parts[-1].profile_id is None
    [why] = split.newly_dropped
    assert (why.identifier, why.reason, why.events, why.first_event) == (
        f"phone:{PHONE}",
        "blocked",
        3,
        "jane-1",
    )
    text = render_text(d)
    assert "would split (1)" in text
    assert f"because: phone:{PHONE} dropped (blocked) on 3 events, first jane-1" in text
    assert "(no profile)  1 event  no identifiers" in text


def test_raising_the_email_limit_merges_profiles_with_the_merge_reason(tmp_path: Path) -> None:
    base = rules_file(tmp_path, "base", email_max=1)
    cand = rules_file(tmp_path, "new", email_max=2)
    events = [
        e("login", 1, ("customer_id", "C-1"), ("email", "a@x.test")),
        e("newsletter", 2, ("email", "b@x.test"), ("anonymous_id", "ck-1")),
        e("checkout", 3, ("customer_id", "C-1"), ("email", "b@x.test")),
    ]
    d = compare(events, base, cand)

    assert (d.profiles_before, d.profiles_after, d.splits) == (2, 1, ())
    assert d.events_moved == 1  # the newsletter event joins the customer's profile
    [merge] = d.merges
    assert [(p.events, p.identifiers) for p in merge.sources] == [
        (2, ("customer_id:C-1", "email:a@x.test")),
        (1, ("email:b@x.test", "anonymous_id:ck-1")),  # strongest identifier first
    ]
    [link] = merge.links
    assert (link.rule, link.identifiers, link.event_id) == (
        "deterministic",
        ("email:b@x.test",),
        "checkout",
    )
    [accepted] = merge.newly_accepted
    assert (accepted.identifier, accepted.reason) == ("email:b@x.test", "limit:email")
    text = render_text(d)
    assert "would merge (1)" in text
    assert "because: merge deterministic on email:b@x.test at event checkout" in text
    assert "email:b@x.test accepted (baseline dropped it: limit:email)" in text


def test_unblocking_a_value_merges_profiles(tmp_path: Path) -> None:
    base = rules_file(tmp_path, "base", blocked=(f"phone:{PHONE}",))
    cand = rules_file(tmp_path, "new")
    events = [
        e("web-1", 1, ("email", "a@x.test"), ("phone", PHONE)),
        e("crm-1", 2, ("email", "b@x.test")),
        e("call-1", 3, ("email", "b@x.test"), ("phone", PHONE)),
    ]
    d = compare(events, base, cand)

    [merge] = d.merges
    assert merge.events == 3 and len(merge.sources) == 2
    assert [link.event_id for link in merge.links] == ["call-1"]
    [why] = merge.newly_accepted
    assert (why.identifier, why.reason, why.events, why.first_event) == (
        f"phone:{PHONE}",
        "blocked",
        2,
        "web-1",
    )


def test_identical_rules_give_an_empty_diff(tmp_path: Path) -> None:
    rules = rules_file(tmp_path, "base", email_max=1, blocked=(f"phone:{PHONE}",))
    events = shared_history()
    d = compare(
        events, rules, rules_file(tmp_path, "copy", email_max=1, blocked=(f"phone:{PHONE}",))
    )
    assert d.empty
    assert d.unchanged_profiles == d.profiles_before == d.profiles_after > 1
    assert "would merge (0)\n  none" in render_text(d)


def shared_history() -> list[NormalizedEvent]:
    """Events that share identifiers a lot, so limits and event order matter."""
    rng = random.Random(3)
    events = []
    for i in range(120):
        idents: list[Identifier] = []
        if rng.random() < 0.4:
            idents.append(("customer_id", f"C-{rng.randrange(8)}"))
        idents.append(("email", f"u{rng.randrange(15)}@x.test"))
        if rng.random() < 0.5:
            idents.append(("phone", rng.choice([PHONE, "+447700900002", "+447700900003"])))
        if rng.random() < 0.5:
            idents.append(("anonymous_id", f"ck-{rng.randrange(30)}"))
        events.append(e(f"ev-{i:03d}", float(rng.randrange(50)), *idents))  # ties in ts too
    return events


def test_diff_is_deterministic_whatever_the_input_order(tmp_path: Path) -> None:
    base = rules_file(tmp_path, "base", email_max=1)
    cand = rules_file(tmp_path, "new", email_max=3, blocked=(f"phone:{PHONE}",))
    events = shared_history()
    expected = compare(events, base, cand)
    assert expected.merges and expected.splits  # a diff worth comparing
    for seed in range(3):
        shuffled = list(events)
        random.Random(seed).shuffle(shuffled)
        got = compare(shuffled + shuffled[:5], base, cand)  # re-deliveries are ignored too
        assert got == expected
        assert render_text(got) == render_text(expected)
    assert [x.event_id for x in event_time_order(events)] == [
        x.event_id for x in sorted(events, key=lambda x: (x.ts, x.event_id))
    ]
    json.dumps(expected.to_dict())  # JSON-able as is


def test_render_text_caps_each_section(tmp_path: Path) -> None:
    phones = [f"+44770090010{n}" for n in range(3)]
    base = rules_file(tmp_path, "base")
    cand = rules_file(tmp_path, "new", blocked=tuple(f"phone:{p}" for p in phones))
    events = []
    for n, phone in enumerate(phones):  # three households, each glued by its shared phone
        events += [
            e(f"h{n}-a", n, ("email", f"a{n}@x.test"), ("phone", phone)),
            e(f"h{n}-b", n, ("email", f"b{n}@x.test"), ("phone", phone)),
        ]
    d = compare(events, base, cand)
    assert len(d.splits) == 3
    text = render_text(d, limit=1)
    assert "would split (3)" in text
    assert text.count("    -> ") == 2  # only the first split is shown ...
    assert "  … and 2 more" in text  # ... and the rest are counted
    assert "… and" not in render_text(d, limit=3)
