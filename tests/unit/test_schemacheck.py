"""The fast schema predicate (``scv.schemacheck``) must never accept what fastjsonschema
refuses: every validator runs it first and trusts a yes. These tests compare the two on the
examples, the demo workload and many mutations of them (every field set to values at and
around each bound, of every JSON type, removed, or joined by an unknown key)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import fastjsonschema
import orjson
import pytest
from examples import VALID_EXAMPLES
from hypothesis import given, settings
from hypothesis import strategies as st

from scv.connectors.demo import generate
from scv.domain.model import Action, LinkReason, MergeEvent
from scv.schemacheck import acceptor
from scv.schemas import all_schema_names, load_schema, validator

#: Values tried at every position: each JSON type, and each bound the schemas use ± 1.
_LENGTHS = (0, 1, 2, 3, 4, 63, 64, 65, 127, 128, 129, 255, 256, 257, 320, 321, 2048, 2049)
PROBES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    1.0,
    2.5,
    -0.5,
    100000,
    100001,
    100000.0,
    1e9,
    1e9 + 1,
    1e14,
    1e14 + 1,
    10**20,
    Decimal("1.5"),
    Decimal("-1"),
    [],
    [1],
    [{}],
    {},
    {"x": 1},
    " ",
    "\n",
    "\u200b",
    "\x1c",
    "\xa0",
    "\u3000 ",
    "\x85",
    " a ",
    "cart_remove",
    "consent_update",
    "unsubscribe",
    "complaint",
    "GBP",
    "gbp",
    "GBP\n",
    "GB",
    "2024-05-01T09:00:00Z",
    "2024-05-01t09:00:00z",
    "2024-05-01 09:00",
    "2024-05-01T09:00:00.1234567890Z",
    "2024-05-01T09:00:00+0100",
    "2024-05-01T09:00:00Z\n",
    "01/05/2024 09:00",
    "1999-12-31",
    "+447700900123",
    "jane@example.com",
    "page_view",
    "cart_add",
    "subscribe",
    "purchase",
    "cancel_request",
    "email",
    *("a" * n for n in _LENGTHS),
    *(" " * n for n in (1, 64, 65)),
]


def _compiled(name: str) -> tuple[Callable[[Any], bool], Callable[[Any], Any]]:
    """The predicate and the plain fastjsonschema function of a topic's whole schema
    (``allOf`` conditions included: fastjsonschema's own code is the reference)."""
    schema = copy.deepcopy(load_schema(name))
    compiled = fastjsonschema.compile(schema, use_default=False)
    accept = acceptor(schema, compiled.__globals__["REGEX_PATTERNS"])
    assert accept is not None, f"{name} has no fast predicate"
    return accept, compiled


def _fjs_accepts(compiled: Callable[[Any], Any], doc: Any) -> bool:
    try:
        compiled(doc)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def _positions(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key or index path inside ``doc``."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield (*path, key)
            yield from _positions(value, (*path, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield (*path, index)
            yield from _positions(value, (*path, index))


def _containers(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths of every object inside ``doc`` (the root included)."""
    if isinstance(doc, dict):
        yield path
        for key, value in doc.items():
            yield from _containers(value, (*path, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _containers(value, (*path, index))


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def _mutations(doc: dict[str, Any]) -> Iterator[Any]:
    yield doc
    for probe in PROBES:
        yield probe  # the document itself replaced
    for path in _positions(doc):
        for probe in PROBES:
            changed = copy.deepcopy(doc)
            _at(changed, path[:-1])[path[-1]] = probe
            yield changed
        if isinstance(path[-1], str):
            removed = copy.deepcopy(doc)
            del _at(removed, path[:-1])[path[-1]]
            yield removed
    for path in _containers(doc):
        for key in ("unknown", "sku", "email", "type"):
            added = copy.deepcopy(doc)
            _at(added, path)[key] = "x"
            yield added


def _check(name: str, docs: list[Any]) -> int:
    accept, compiled = _compiled(name)
    accepted = 0
    for base in docs:
        for doc in _mutations(base):
            expected = _fjs_accepts(compiled, doc)
            assert accept(doc) == expected, (name, doc)
            accepted += expected
    return accepted


def _demo(source: str, limit: int) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for event in generate(3000, 11):
        if event.source != source or len(docs) >= limit:
            continue
        try:
            doc = orjson.loads(event.value)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict):
            docs.append(doc)
    return docs


@pytest.mark.parametrize("source", list(VALID_EXAMPLES))
def test_predicate_agrees_with_fastjsonschema_on_raw_events(source: str) -> None:
    docs = [*VALID_EXAMPLES[source], *_demo(source, 12)]
    assert _check(f"raw.{source}.v1", docs) > len(docs)  # mutants both pass and fail


def test_predicate_agrees_with_fastjsonschema_on_merges_and_actions() -> None:
    reason = LinkReason("shared_identifier", ["email:jane@example.com"], "web-1", 1.0, 0.9)
    merge = MergeEvent(survivor="p-1", absorbed="p-2", reason=reason).to_dict()
    action = Action(
        action_id="a-1",
        type="abandoned_cart",
        profile_id="p-1",
        channel="email",
        payload={"cart_id": "cart-1", "items": [{"sku": "S-1", "qty": 1}]},
        trigger_event_id="web-3",
        event_ts=1.0,
        created_at=2.0,
    ).to_dict()
    assert _check("profiles.merges.v1", [merge]) > 1
    assert _check("actions.v1", [action]) > 1


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**16), 10**16)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=70)
    | st.sampled_from(PROBES[:40]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["sku", "qty", "price", "name", "x"]), children, max_size=4
        )
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    source=st.sampled_from(list(VALID_EXAMPLES)),
    pick=st.integers(0, 3),
    changes=st.dictionaries(st.text(min_size=1, max_size=12), _json, max_size=3),
    field_changes=st.lists(st.tuples(st.integers(0, 30), _json), max_size=3),
)
def test_predicate_agrees_with_fastjsonschema_on_random_values(
    source: str, pick: int, changes: dict[str, Any], field_changes: list[tuple[int, Any]]
) -> None:
    examples = VALID_EXAMPLES[source]
    doc = copy.deepcopy(examples[pick % len(examples)])
    keys = list(doc)
    for index, value in field_changes:
        doc[keys[index % len(keys)]] = value
    doc.update(changes)
    accept, compiled = _compiled(f"raw.{source}.v1")
    assert accept(doc) == _fjs_accepts(compiled, doc)


def test_validators_of_raw_topics_use_the_predicate_and_keep_fastjsonschema_messages() -> None:
    for source in VALID_EXAMPLES:
        check = validator(f"raw.{source}.v1")
        event = copy.deepcopy(VALID_EXAMPLES[source][0])
        assert check(event) is event
        event["event_id"] = ""
        with pytest.raises(fastjsonschema.JsonSchemaValueException) as info:
            check(event)
        assert info.value.message == "data.event_id must be longer than or equal to 1 characters"


def test_unsupported_keywords_leave_the_work_to_fastjsonschema() -> None:
    assert acceptor({"type": "object", "propertyNames": {"maxLength": 3}}, {}) is None
    assert acceptor({"type": "object", "additionalProperties": {"type": "string"}}, {}) is None
    assert acceptor({"enum": [1, "a"]}, {}) is None
    assert acceptor({"$ref": "other.json#/definitions/x"}, {}) is None
    assert acceptor({"type": "string", "pattern": "^a$"}, {}) is None  # not compiled by fjs


@pytest.mark.parametrize("name", all_schema_names())
def test_every_schema_either_has_an_exact_predicate_or_none(name: str) -> None:
    schema = copy.deepcopy(load_schema(name))
    compiled = fastjsonschema.compile(schema, use_default=False)
    accept = acceptor(schema, compiled.__globals__["REGEX_PATTERNS"])
    if accept is not None:
        for probe in PROBES:
            assert accept(probe) == _fjs_accepts(compiled, probe)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "pattern": "\\S"},
        {"pattern": "\\S"},
        {"type": ["string", "null"], "pattern": "^[A-Za-z]{3}$", "maxLength": 3},
        {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "enum": ["a"]}]},
        {"if": {"required": ["a"]}, "then": {"required": ["b"]}, "else": {"required": ["c"]}},
        {"if": {"properties": {"a": {"enum": ["x"]}}}, "else": {"maxProperties": 1}},
    ],
)
def test_small_schemas_agree_on_every_probe(schema: dict[str, Any]) -> None:
    compiled = fastjsonschema.compile(copy.deepcopy(schema), use_default=False)
    accept = acceptor(schema, compiled.__globals__.get("REGEX_PATTERNS", {}))
    if "maxProperties" in str(schema):
        assert accept is None
        return
    assert accept is not None
    blanks = ["", " ", "\t\n", "\x1c\x1d\x1e\x1f", "\xa0", "\u2028", "\u3000", "\u200b", "a"]
    objects: list[Any] = [
        {},
        {"a": "x"},
        {"a": "y"},
        {"a": 1, "b": 2},
        {"c": 3},
        {"a": "x", "c": 1},
    ]
    for probe in [*PROBES, *blanks, *objects]:
        assert accept(probe) == _fjs_accepts(compiled, probe), (schema, probe)
