"""Topic contracts: load the JSON Schema files and compile them once.

The ``schemas/`` directory at the repository root is the single source of truth for every
topic's message shape; producers, tests and the normalise stage all read the same files.
A wheel install carries them as ``scv/schemas/`` (pyproject force-includes the directory), so
that location wins when it exists and the repository layout is the fallback for a checkout.

Compiling with fastjsonschema turns a schema into generated Python code, which is expensive
(milliseconds) but makes each validation cheap (microseconds), so compiled validators are
cached for the life of the process.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson

from scv.schemacheck import acceptor

__all__ = [
    "all_schema_names",
    "load_schema",
    "schema_dir",
    "schema_path",
    "schema_reason",
    "validator",
]

#: Topic base names are plain ``a.b.v1`` words; anything else (``..``, ``/``) is refused so a
#: name can never escape the schema directory.
_NAME = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")


@cache
def schema_dir() -> Path:
    """The directory holding ``<topic>.json`` files: packaged copy first, then the repo's."""
    here = Path(__file__).resolve()
    packaged = here.parent / "schemas"
    if packaged.is_dir():
        return packaged
    return here.parents[1] / "schemas"


def schema_path(topic_base: str) -> Path:
    """The schema file of a topic given without its deployment prefix (``"raw.web.v1"``).

    Raises ``KeyError`` for a name that has no schema, so a typo in a topic name fails at
    start-up instead of silently skipping validation.
    """
    if not _NAME.match(topic_base):
        raise KeyError(f"not a topic name: {topic_base!r}")
    path = schema_dir() / f"{topic_base}.json"
    if not path.is_file():
        raise KeyError(f"no schema for topic {topic_base!r} in {schema_dir()}")
    return path


@cache
def load_schema(topic_base: str) -> dict[str, Any]:
    """The parsed schema document of a topic (cached; treat it as read-only)."""
    document = orjson.loads(schema_path(topic_base).read_bytes())
    if not isinstance(document, dict):
        raise ValueError(f"schema {topic_base!r} is not a JSON object")
    return document


#: A conditional requirement: when ``doc[prop]`` is one of ``values``, ``required`` must exist.
_Condition = tuple[str, frozenset[str], tuple[str, ...]]


def _condition(entry: Any) -> _Condition | None:
    """``{"if": {"properties": {P: {"enum": [...]}}, "required": [P]}, "then": {"required":
    [...]}}`` as a tuple, or None for any other ``allOf`` entry."""
    if not isinstance(entry, dict) or set(entry) != {"if", "then"}:
        return None
    cond, then = entry["if"], entry["then"]
    if set(cond) != {"properties", "required"} or set(then) != {"required"}:
        return None
    props = cond["properties"]
    if len(props) != 1 or cond["required"] != list(props):
        return None
    ((prop, rule),) = props.items()
    if set(rule) != {"enum"} or not all(isinstance(v, str) for v in rule["enum"]):
        return None
    return prop, frozenset(rule["enum"]), tuple(then["required"])


@cache
def validator(topic_base: str) -> Callable[[Any], Any]:
    """A compiled validator for a topic: call it with decoded JSON; it returns the data or
    raises ``fastjsonschema.JsonSchemaValueException`` whose ``message`` names the field path.

    ``use_default=False`` because validation must never rewrite the message it checks.

    ``allOf`` entries of the form "when ``type`` is one of these, that field is required" are
    checked here instead of by the generated code. fastjsonschema evaluates each ``if`` by
    raising an exception (with the whole schema as its ``definition``) whenever the condition
    does not hold, which is most events: that was a third of a web event's validation.

    A yes/no predicate (:func:`scv.schemacheck.acceptor`) of the whole schema, conditions
    included, runs first; the code above runs only for the documents it does not accept.
    Valid events thus skip fastjsonschema's error bookkeeping (one call instead of four),
    and invalid ones still get its exact message.
    """
    schema = load_schema(topic_base)
    conditions = [_condition(entry) for entry in schema.get("allOf", [])]
    if not conditions or None in conditions or schema.get("type") != "object":
        compiled: Callable[[Any], Any] = fastjsonschema.compile(schema, use_default=False)
        return _accepting(schema, compiled, compiled)
    base = fastjsonschema.compile(
        {k: v for k, v in schema.items() if k != "allOf"}, use_default=False
    )
    checks = [c for c in conditions if c is not None]

    def validate(data: Any) -> Any:
        base(data)  # an object from here on: the schema's type is object
        for prop, values, required in checks:
            value = data.get(prop)
            if isinstance(value, str) and value in values:
                missing = [name for name in required if name not in data]
                if missing:
                    raise fastjsonschema.JsonSchemaValueException(
                        f"data must contain {sorted(missing)} properties",
                        value=data,
                        name="data",
                        definition={"required": list(required)},
                        rule="required",
                    )
        return data

    return _accepting(schema, base, validate)


def _accepting(
    schema: dict[str, Any], compiled: Callable[[Any], Any], slow: Callable[[Any], Any]
) -> Callable[[Any], Any]:
    """``slow`` behind the fast predicate of ``schema``, when there is one (``compiled`` is
    the fastjsonschema function whose regular expressions the predicate shares)."""
    patterns = getattr(compiled, "__globals__", {}).get("REGEX_PATTERNS", {})
    accept = acceptor(schema, patterns)
    if accept is None:
        return slow

    def validate(data: Any) -> Any:
        try:
            accepted = accept(data)
        except Exception:  # never the verdict: the slow path decides
            accepted = False
        return data if accepted else slow(data)

    return validate


def all_schema_names() -> list[str]:
    """Every topic base name with a schema file, sorted (for tests, docs and start-up checks)."""
    return sorted(p.name.removesuffix(".json") for p in schema_dir().glob("*.json"))


def schema_reason(exc: fastjsonschema.JsonSchemaValueException) -> str:
    """The DLQ reason for a schema violation: the field path and the rule broken.

    fastjsonschema's messages name no values, except that ``additionalProperties`` lists the
    unknown keys (``must not contain {'jane@example.com'} properties``): keys are the
    sender's data too (a source may key a map by email), so they are left out.
    """
    if exc.rule == "additionalProperties":
        return f"schema: {exc.name} must not contain unknown properties"
    return f"schema: {exc.message}"
