"""The topic contracts in ``schemas/``: they load, compile, accept the examples and refuse
the shapes the pipeline cannot process."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
from examples import VALID_EXAMPLES, variant

from scv.domain.model import Action, LinkReason, MergeEvent
from scv.domain.normalize import normalize
from scv.schemas import all_schema_names, load_schema, schema_dir, schema_path, validator

EXPECTED = [
    "actions.v1",
    "audiences.v1",
    "audit.v1",
    "households.v1",
    "identity.commands.v1",
    "identity.events.v1",
    "identity.review.v1",
    "profiles.merges.v1",
    "profiles.v1",
    "raw.callcenter.v1",
    "raw.email.v1",
    "raw.transactions.v1",
    "raw.web.v1",
]
RAW = [f"raw.{source}.v1" for source in VALID_EXAMPLES]


def _is_valid(topic: str, data: Any) -> bool:
    try:
        validator(topic)(data)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def _error(topic: str, data: Any) -> str:
    with pytest.raises(fastjsonschema.JsonSchemaValueException) as info:
        validator(topic)(data)
    return info.value.message


# --- loading ----------------------------------------------------------------------------------


def test_all_schema_names_lists_every_topic() -> None:
    assert all_schema_names() == EXPECTED


def test_schema_dir_falls_back_to_repository_layout() -> None:
    repo_schemas = Path(__file__).resolve().parents[2] / "schemas"
    assert schema_dir() == repo_schemas


@pytest.mark.parametrize("name", EXPECTED)
def test_schema_metadata(name: str) -> None:
    schema = load_schema(name)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["$id"].endswith(f"/{name}.json")
    assert schema["title"]
    assert schema_path(name).name == f"{name}.json"


@pytest.mark.parametrize("name", ["raw.nope.v1", "../pyproject", "raw/web.v1", "", "RAW.WEB.V1"])
def test_unknown_or_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(KeyError):
        schema_path(name)
    with pytest.raises(KeyError):
        validator(name)


def test_validator_is_compiled_once() -> None:
    assert validator("raw.web.v1") is validator("raw.web.v1")


def _walk(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, child in node.items():
            yield from _walk(child, f"{path}/{key}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _walk(child, f"{path}/{i}")


@pytest.mark.parametrize("name", [*RAW, "identity.commands.v1"])
def test_inbound_schemas_bound_every_string_and_array(name: str) -> None:
    """Untrusted input: every string and array has an upper bound (or a fixed pattern/enum)."""
    for path, node in _walk(load_schema(name)):
        kinds = node.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if "string" in kinds and "enum" not in node:
            bounded = "maxLength" in node or str(node.get("pattern", "")).endswith("$")
            assert bounded, f"{name} {path}: unbounded string"
        if "array" in kinds:
            assert "maxItems" in node, f"{name} {path}: unbounded array"


def test_readme_documents_every_schema() -> None:
    readme = (schema_dir() / "README.md").read_text()
    for name in EXPECTED:
        assert f"`{name}.json`" in readme


# --- raw topics: valid examples ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "example"),
    [(source, ex) for source, examples in VALID_EXAMPLES.items() for ex in examples],
    ids=lambda value: value if isinstance(value, str) else value["event_id"],
)
def test_valid_examples_pass(source: str, example: dict[str, Any]) -> None:
    validator(f"raw.{source}.v1")(copy.deepcopy(example))


def test_examples_use_declared_types() -> None:
    for source, examples in VALID_EXAMPLES.items():
        types = set(load_schema(f"raw.{source}.v1")["properties"]["type"]["enum"])
        assert len(examples) >= 3
        assert {ex["type"] for ex in examples} <= types


# --- raw topics: invalid shapes ---------------------------------------------------------------


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("web", variant("web", 0, event_id=...), "must contain ['event_id']"),
    ("web", variant("web", 0, event_id=""), "data.event_id must be longer than or equal to 1"),
    ("web", variant("web", 0, event_id="x" * 129), "data.event_id must be shorter"),
    ("web", variant("web", 0, timestamp=...), "must contain ['timestamp']"),
    ("web", variant("web", 0, timestamp="yesterday"), "data.timestamp"),
    ("web", variant("web", 0, timestamp="2024-05-01"), "data.timestamp"),
    ("web", variant("web", 0, timestamp="2024-05-01T10:00:00Z\n"), "data.timestamp"),
    ("web", variant("web", 0, timestamp=-1), "data.timestamp"),
    ("web", variant("web", 0, timestamp=True), "data.timestamp"),
    ("web", variant("web", 0, type="purchase"), "data.type must be one of"),
    ("web", variant("web", 0, anonymous_id=...), "must contain ['anonymous_id']"),
    ("web", variant("web", 0, anonymous_id="   "), "data.anonymous_id must match pattern"),
    ("web", variant("web", 0, session_id=None), "data.session_id must be string"),
    ("web", variant("web", 2, cart=...), "data must contain ['cart'] properties"),
    ("web", variant("web", 2, cart={"items": []}), "data.cart must contain ['cart_id'] properties"),
    (
        "web",
        variant("web", 2, cart={"cart_id": "c", "items": [{"sku": "a", "qty": -1, "price": 1}]}),
        "data.cart.items[0].qty must be bigger than or equal to 0",
    ),
    (
        "web",
        variant("web", 2, cart={"cart_id": "c", "items": [{"sku": "a", "qty": 1.5, "price": 1}]}),
        "data.cart.items[0].qty must be integer",
    ),
    (
        "web",
        variant("web", 2, cart={"cart_id": "c", "items": [{"sku": "a", "qty": 1}]}),
        "data.cart.items[0] must contain ['price'] properties",
    ),
    (
        "web",
        variant(
            "web", 2, cart={"cart_id": "c", "items": [{"sku": "a", "qty": 1, "price": 1}] * 201}
        ),
        "data.cart.items must contain less than or equal to 200 items",
    ),
    ("web", variant("web", 2, cart={"cart_id": "c", "currency": "POUND"}), "data.cart.currency"),
    ("web", variant("web", 0, page={"url": "u", "secret": 1}), "data.page must not contain"),
    ("web", variant("web", 4, consent={"marketing": "yes"}), "data.consent.marketing must be"),
    ("web", variant("web", 6, consent=...), "must contain ['consent']"),
    ("web", variant("web", 0, traits={"first_name": "x" * 257}), "data.traits.first_name"),
    ("email", variant("email", 0, email=...), "must contain ['email']"),
    ("email", variant("email", 0, campaign_id=...), "must contain ['campaign_id']"),
    ("email", variant("email", 1, campaign_id=...), "must contain ['campaign_id']"),
    ("email", variant("email", 0, type="delivered"), "data.type must be one of"),
    ("transactions", variant("transactions", 0, order_id=...), "must contain ['order_id']"),
    ("transactions", variant("transactions", 0, items=[]), "data.items must contain at least 1"),
    ("transactions", variant("transactions", 0, total="29.99"), "data.total must be number"),
    ("transactions", variant("transactions", 0, currency="GB"), "data.currency must match"),
    ("transactions", variant("transactions", 0, birth_date="14/03/1985"), "data.birth_date"),
    ("transactions", variant("transactions", 0, marketing_opt_in="y"), "data.marketing_opt_in"),
    ("transactions", variant("transactions", 0, address={"zip": "1"}), "data.address must not"),
    ("callcenter", variant("callcenter", 0, phone=123), "data.phone must be"),
    ("callcenter", variant("callcenter", 0, address={"zip": "1"}), "data.address must not"),
    ("callcenter", variant("callcenter", 0, national_id="9" * 65), "data.national_id must be"),
    ("callcenter", variant("callcenter", 0, type="chat"), "data.type must be one of"),
    ("callcenter", variant("callcenter", 0, disposition={}), "must contain ['code']"),
    ("callcenter", variant("callcenter", 0, disposition={"code": "x"}), "disposition.code must be"),
    ("callcenter", variant("callcenter", 0, duration_s=-3), "data.duration_s must be bigger"),
    (
        "callcenter",
        variant("callcenter", 0, disposition={"code": "other", "notes": "n" * 4001}),
        "data.disposition.notes must be shorter than or equal to 4000",
    ),
]


@pytest.mark.parametrize(("source", "event", "message"), INVALID)
def test_invalid_raw_events_are_refused(source: str, event: dict[str, Any], message: str) -> None:
    assert message in _error(f"raw.{source}.v1", event)


@pytest.mark.parametrize("source", list(VALID_EXAMPLES))
def test_top_level_must_be_an_object(source: str) -> None:
    for value in ([], "x", 1, None):
        assert not _is_valid(f"raw.{source}.v1", value)


def _mutations(example: dict[str, Any], enums: dict[str, list[str]]) -> Iterator[dict[str, Any]]:
    """The example with each field removed or nulled, and with every value of every enum
    (the conditions key on them) combined with each removal."""
    keys = list(example)
    for choice in [None, *[(field, v) for field, values in enums.items() for v in values]]:
        base = copy.deepcopy(example)
        if choice is not None:
            base[choice[0]] = choice[1]
        yield base
        for key in keys:
            removed = {k: v for k, v in base.items() if k != key}
            yield removed
            yield {**removed, key: None}


@pytest.mark.parametrize("name", [n for n in all_schema_names() if "allOf" in load_schema(n)])
def test_conditions_checked_outside_the_generated_code_accept_what_the_schema_accepts(
    name: str,
) -> None:
    schema = load_schema(name)
    full = fastjsonschema.compile(schema, use_default=False)
    enums = {
        field: rule["enum"]
        for field, rule in schema["properties"].items()
        if isinstance(rule, dict) and "enum" in rule
    }
    source = name.split(".")[1]
    examples = VALID_EXAMPLES.get(source) or [
        {
            "command_id": "c-1",
            "type": "unmerge",
            "timestamp": "2026-01-01T00:00:00Z",
            "subject": {"profile_id": "p-1"},
            "identifiers": [{"type": "email", "value": "a@b.c"}],
            "purpose": "marketing",
            "granted": False,
            "reason": "r",
        }
    ]
    if name.startswith("raw."):  # their conditions are simple enough to be split off
        assert validator(name).__name__ == "validate"
    outcomes: set[bool] = set()
    for example in examples:
        for doc in _mutations(example, enums):
            try:
                full(doc)
                expected = True
            except fastjsonschema.JsonSchemaValueException:
                expected = False
            assert _is_valid(name, doc) is expected, doc
            outcomes.add(expected)
    assert outcomes == {True, False}


# --- derived topics ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "example"),
    [(source, ex) for source, examples in VALID_EXAMPLES.items() for ex in examples],
    ids=lambda value: value if isinstance(value, str) else value["event_id"],
)
def test_normalized_examples_match_identity_events_schema(
    source: str, example: dict[str, Any]
) -> None:
    import orjson

    event = normalize(source, orjson.dumps(example))
    validator("identity.events.v1")(orjson.loads(orjson.dumps(event.to_dict())))


def test_merge_event_schema() -> None:
    reason = LinkReason("deterministic", ["email:a@example.com"], "web-5", 1.0, None)
    merge = MergeEvent(survivor="p-1", absorbed="p-2", reason=reason)
    validator("profiles.merges.v1")(merge.to_dict())
    split = MergeEvent("p-1", "p-3", LinkReason("unmerge", [], "cmd-1", 2.0, 0.5), kind="split")
    validator("profiles.merges.v1")(split.to_dict())
    bad = merge.to_dict() | {"kind": "join"}
    assert "data.kind must be one of" in _error("profiles.merges.v1", bad)


def test_action_schema() -> None:
    action = Action(
        action_id="a-1",
        type="abandoned_cart",
        profile_id="p-1",
        channel="email",
        payload={"cart_id": "cart-1", "items": []},
        trigger_event_id="web-3",
        event_ts=1.0,
        created_at=2.0,
    )
    validator("actions.v1")(action.to_dict())
    assert "data.channel must be one of" in _error(
        "actions.v1", action.to_dict() | {"channel": "fax"}
    )


def _profile() -> dict[str, Any]:
    return {
        "profile_id": "p-1",
        "created_ts": 1.0,
        "updated_ts": 2.0,
        "identifiers": {"email": ["jane.doe@example.com"], "anonymous_id": ["ck-jane-1"]},
        "traits": {"first_name": "Jane"},
        "consent": {"marketing": {"granted": True, "ts": 1.0, "source": "web"}},
        "channels": {"web": 3, "email": 1},
        "last_activity": {"ts": 2.0, "source": "web", "type": "page_view"},
        "open_carts": [{"cart_id": "cart-1", "items": [], "updated_ts": 2.0}],
        "orders": {"count": 1, "total": 29.99, "last_order_id": "O-5001", "last_ts": 2.0},
        "churn_risk": None,
        "merged_from": ["p-2"],
        "event_count": 4,
    }


def test_profile_schema() -> None:
    validator("profiles.v1")(_profile())
    flagged = _profile() | {"churn_risk": {"flagged_ts": 3.0, "event_id": "cc-1"}}
    validator("profiles.v1")(flagged)
    assert "must contain ['profile_id']" in _error(
        "profiles.v1", {k: v for k, v in _profile().items() if k != "profile_id"}
    )
    assert not _is_valid("profiles.v1", _profile() | {"identifiers": {"Email!": ["x"]}})
    assert not _is_valid("profiles.v1", _profile() | {"consent": {"marketing": {"ts": 1.0}}})


COMMANDS_VALID: list[dict[str, Any]] = [
    {
        "command_id": "cmd-1",
        "type": "erase",
        "timestamp": "2024-06-01T00:00:00Z",
        "subject": {"type": "email", "value": "jane.doe@example.com"},
    },
    {
        "command_id": "cmd-2",
        "type": "erase",
        "timestamp": 1717200000,
        "subject": {"profile_id": "p"},
    },
    {
        "command_id": "cmd-3",
        "type": "consent",
        "timestamp": 1717200000,
        "subject": {"type": "customer_id", "value": "C-1001"},
        "purpose": "marketing",
        "granted": False,
    },
    {
        "command_id": "cmd-4",
        "type": "ban_link",
        "timestamp": 1717200000,
        "subject": {"profile_id": "p-1"},
        "identifiers": [{"type": "phone", "value": "+447700900000"}],
        "reason": "shared shop phone",
    },
    {
        "command_id": "cmd-5",
        "type": "unmerge",
        "timestamp": 1717200000,
        "subject": {"profile_id": "p-1"},
        "identifiers": [{"type": "email", "value": "a@example.com"}],
    },
]


@pytest.mark.parametrize("command", COMMANDS_VALID, ids=lambda c: c["command_id"])
def test_valid_commands(command: dict[str, Any]) -> None:
    validator("identity.commands.v1")(command)


@pytest.mark.parametrize(
    ("index", "changes", "message"),
    [
        (0, {"type": "delete"}, "data.type must be one of"),
        (0, {"subject": {"type": "email"}}, "data.subject"),
        (0, {"subject": {"profile_id": "p", "type": "email", "value": "x"}}, "data.subject"),
        (2, {"granted": None}, "data.granted must be boolean"),
        (3, {"identifiers": []}, "data.identifiers must contain at least 1"),
        (0, {"extra": 1}, "data must not contain"),
    ],
)
def test_invalid_commands(index: int, changes: dict[str, Any], message: str) -> None:
    command = copy.deepcopy(COMMANDS_VALID[index]) | changes
    assert message in _error("identity.commands.v1", command)


def test_consent_command_needs_purpose_and_granted() -> None:
    command = {k: v for k, v in COMMANDS_VALID[2].items() if k != "granted"}
    assert "data must contain ['granted'] properties" in _error("identity.commands.v1", command)
