"""Identity governance rules: defaults, blocking, priority order and config loading."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from scv.domain.governance import DEFAULT_RULES_PATH, IdentifierRule, Rules, load_rules


@pytest.fixture(scope="module")
def rules() -> Rules:
    return Rules.default()


def test_default_limits_and_priorities(rules: Rules) -> None:
    expected = {
        "customer_id": (1, 100, None),
        "loyalty_id": (1, 95, None),
        "email": (5, 90, 6),
        "hashed_email": (5, 89, 6),
        "phone": (3, 80, 6),
        "device_id": (10, 40, 6),
        "anonymous_id": (50, 30, 6),
    }
    for kind, (limit, prio, generic) in expected.items():
        # every value people may share is a household's up to six people, generic past that
        assert rules.rule(kind) == IdentifierRule(limit, prio, generic, generic is not None)
    assert rules.rule("some_new_type") == IdentifierRule(max_per_profile=10, priority=10)
    assert rules.merge_cap == 100


def test_default_is_loaded_from_the_shipped_yaml() -> None:
    assert DEFAULT_RULES_PATH.is_file()
    assert load_rules(None) is Rules.default()
    assert load_rules(DEFAULT_RULES_PATH) == Rules.default()


@pytest.mark.parametrize(
    "ident",
    [
        ("email", "test@test.com"),
        ("email", "noreply@example.com"),
        ("email", "no-reply@shop.co.uk"),
        ("email", "donotreply@bank.com"),
        ("email", "test@gmail.com"),
        ("email", "jane@example.org"),
        ("email", "jane@mail.example.com"),
        ("phone", "+442079460000"),
        ("phone", "+440000000000"),
        ("phone", "0000000"),
        ("phone", "+447777777777"),
        ("anonymous_id", "null"),
        ("anonymous_id", "NULL"),
        ("device_id", " Unknown "),
        ("customer_id", "0"),
        ("customer_id", "-"),
        ("loyalty_id", "n/a"),
        ("anonymous_id", "undefined"),
        ("device_id", "None"),
        ("customer_id", ""),
        ("customer_id", "   "),
        ("hashed_email", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ],
)
def test_blocked(rules: Rules, ident: tuple[str, str]) -> None:
    assert rules.is_blocked(ident)


@pytest.mark.parametrize(
    "ident",
    [
        ("email", "jane.doe@gmail.com"),
        ("email", "contest@gmail.com"),  # "test" only blocked as the whole local part
        ("email", "jane@notexample.com"),
        ("email", "jane@examples.com"),
        ("phone", "+447700900123"),
        ("phone", "+442079460001"),  # one digit off the call-centre number
        ("customer_id", "C-1000"),
        ("customer_id", "10"),
        ("anonymous_id", "nullable-cookie"),
        ("device_id", "0000000000"),  # phone patterns apply to phones only
    ],
)
def test_not_blocked(rules: Rules, ident: tuple[str, str]) -> None:
    assert not rules.is_blocked(ident)


def test_exact_blocking_is_per_type(rules: Rules) -> None:
    # The call-centre number is blocked as a phone, not when some source uses it as an id.
    assert not rules.is_blocked(("customer_id", "+442079460000"))


def test_priority_order_breaks_ties_by_key_not_input_order(rules: Rules) -> None:
    idents = [
        ("anonymous_id", "a1"),
        ("email", "x@y.com"),
        ("device_id", "d1"),
        ("customer_id", "c1"),
        ("email", "z@y.com"),
        ("mystery", "m1"),
        ("anonymous_id", "a0"),
    ]
    assert rules.priority_order(idents) == [
        ("customer_id", "c1"),
        ("email", "x@y.com"),
        ("email", "z@y.com"),
        ("device_id", "d1"),
        ("anonymous_id", "a0"),
        ("anonymous_id", "a1"),
        ("mystery", "m1"),
    ]
    assert rules.priority_order(reversed(idents)) == rules.priority_order(idents)


def test_priority_order_of_a_pair_is_the_sorted_order(rules: Rules) -> None:
    """Two identifiers are ordered without a sort: the same answer as sorting them."""
    idents = [
        ("anonymous_id", "a1"),
        ("email", "x@y.com"),
        ("customer_id", "c1"),
        ("email", "z@y.com"),
        ("mystery", "m1"),
        ("mystery", "m1"),
    ]
    for a in idents:
        for b in idents:
            assert rules.priority_order([a, b]) == rules.priority_order(iter([a, b]))


def test_rules_are_immutable_copies() -> None:
    idents = {"email": IdentifierRule(1, 5)}
    r = Rules(identifiers=idents, blocked_values=frozenset({"NULL"}))
    idents["email"] = IdentifierRule(99, 5)
    assert r.rule("email").max_per_profile == 1
    assert r.is_blocked(("x", "null"))  # values are folded at construction
    with pytest.raises(TypeError):
        r.identifiers["phone"] = IdentifierRule(1, 1)  # type: ignore[index]


def test_from_mapping_minimal_and_pattern_semantics() -> None:
    r = Rules.from_mapping(
        {
            "identifiers": {"email": {"max_per_profile": 2, "priority": 7}},
            "blocked": {"patterns": {"email": ["^bot"]}},
        }
    )
    assert r.rule("email") == IdentifierRule(2, 7)
    assert r.default_rule == IdentifierRule(10, 10)
    assert r.merge_cap == 100
    assert r.blocked_values == frozenset()
    assert r.is_blocked(("email", "BOT1@x.com"))  # search, case-insensitive
    assert not r.is_blocked(("email", "robot@x.com"))  # anchored pattern
    assert not r.is_blocked(("phone", "bot"))
    assert r.blocked_patterns["email"][0].flags & re.IGNORECASE


def test_load_rules_from_yaml(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_RULES_PATH.read_text())
    data["identifiers"]["email"]["max_per_profile"] = 2
    data["merge_cap"] = 7
    data["blocked"]["exact"].append("customer_id:DEMO")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data))
    r = load_rules(path)
    assert r.rule("email") == IdentifierRule(2, 90, 6, household=True)
    assert r.merge_cap == 7
    assert r.is_blocked(("customer_id", "DEMO"))
    assert r.is_blocked(("email", "test@test.com"))


def test_empty_yaml_file_means_no_rules(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing\n")
    r = load_rules(path)
    assert r.identifiers == {}
    assert not r.is_blocked(("anonymous_id", "null"))


def test_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        load_rules(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "expected a mapping at top level"),
        ({"merge_cp": 3}, "unknown key(s) merge_cp"),
        ({"merge_cap": -1}, "rules.merge_cap"),
        ({"merge_cap": "ten"}, "rules.merge_cap"),
        ({"merge_cap": True}, "rules.merge_cap"),
        ({"identifiers": ["email"]}, "rules.identifiers: expected a mapping"),
        ({"identifiers": {"email": 5}}, "rules.identifiers.email: expected a mapping"),
        (
            {"identifiers": {"email": {"max_per_profile": 0, "priority": 1}}},
            "rules.identifiers.email.max_per_profile",
        ),
        (
            {"identifiers": {"email": {"max_per_profile": 1.5, "priority": 1}}},
            "rules.identifiers.email.max_per_profile",
        ),
        (
            {"identifiers": {"email": {"max_per_profile": 1, "priority": "high"}}},
            "rules.identifiers.email.priority",
        ),
        ({"identifiers": {"email": {"priority": 1}}}, "missing max_per_profile"),
        (
            {"identifiers": {"email": {"max_per_profle": 1, "priority": 1}}},
            "unknown key(s) max_per_profle",
        ),
        ({"identifiers": {"a:b": {"max_per_profile": 1, "priority": 1}}}, "without ':'"),
        ({"default": {"max_per_profile": 1}}, "rules.default: missing priority"),
        ({"blocked": ["x"]}, "rules.blocked: expected a mapping"),
        ({"blocked": {"value": ["x"]}}, "unknown key(s) value"),
        ({"blocked": {"values": "null"}}, "rules.blocked.values: expected a list"),
        ({"blocked": {"values": [0]}}, "rules.blocked.values[0]: expected a string"),
        ({"blocked": {"values": [None]}}, "quote it in YAML"),
        ({"blocked": {"exact": ["test@test.com"]}}, "expected 'type:value'"),
        ({"blocked": {"patterns": ["^x"]}}, "rules.blocked.patterns: expected a mapping"),
        ({"blocked": {"patterns": {"email": ["(unclosed"]}}}, "invalid regex"),
    ],
)
def test_bad_config_raises_clear_value_error(data: object, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        Rules.from_mapping(data)  # type: ignore[arg-type]
    assert message in str(exc.value)


def test_bad_yaml_file_names_the_file(tmp_path: Path) -> None:
    bad_syntax = tmp_path / "syntax.yaml"
    bad_syntax.write_text("identifiers: {email: [\n")
    with pytest.raises(ValueError, match=r"syntax\.yaml: invalid YAML"):
        load_rules(bad_syntax)
    bad_value = tmp_path / "value.yaml"
    bad_value.write_text("merge_cap: lots\n")
    with pytest.raises(ValueError, match=r"value\.yaml: rules\.merge_cap"):
        load_rules(bad_value)


def test_generic_after_is_optional_and_checked() -> None:
    base = {"identifiers": {"phone": {"max_per_profile": 3, "priority": 80}}}
    assert Rules.from_mapping(base).rule("phone").generic_after is None
    base["identifiers"]["phone"]["generic_after"] = 4
    assert Rules.from_mapping(base).rule("phone").generic_after == 4
    base["identifiers"]["phone"]["generic_after"] = 0
    with pytest.raises(ValueError, match=r"identifiers.phone.generic_after: expected an integer"):
        Rules.from_mapping(base)


def test_household_is_a_boolean_and_needs_a_largest_household() -> None:
    base: dict[str, Any] = {"identifiers": {"phone": {"max_per_profile": 3, "priority": 80}}}
    base["identifiers"]["phone"]["household"] = True
    with pytest.raises(ValueError, match=r"identifiers.phone.household: needs generic_after"):
        Rules.from_mapping(base)
    base["identifiers"]["phone"]["household"] = "yes"
    base["identifiers"]["phone"]["generic_after"] = 4
    with pytest.raises(ValueError, match=r"identifiers.phone.household: expected true or false"):
        Rules.from_mapping(base)
    base["identifiers"]["phone"]["household"] = True
    assert Rules.from_mapping(base).rule("phone") == IdentifierRule(3, 80, 4, household=True)
