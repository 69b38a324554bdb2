"""A fast yes/no check of a JSON document against a schema, in front of fastjsonschema.

fastjsonschema's generated code is built to explain a failure: it copies every object's keys
into a set and removes them one by one, calls a function per ``$ref`` with a formatted path
(``.format(**locals())`` per array item), and runs each ``anyOf`` branch inside a
``try``/``except``. Almost every event is valid, so that bookkeeping was most of the
normalise stage's schema cost (6.5 µs of a web event, 13 µs of an order).

:func:`acceptor` compiles a schema into a plain predicate that says only *whether* a document
is valid. The validator calls it first and calls the fastjsonschema function only when it
says no, so a failure still gets fastjsonschema's exact message (the DLQ reason) and an
accepted document is one fastjsonschema accepts too. The predicate mirrors fastjsonschema's
draft-07 semantics keyword by keyword (the same type tests, guards, bounds and compiled
regular expressions, ``if``/``then``/``else`` included), for documents made of the built-in
types a JSON decoder produces (dict, list, str, int, float, bool, None; Decimal too), which
is everything scv validates: the two agree on every such document, in both directions,
because an ``if`` condition must be exact, not merely cautious. It supports the keywords the
topic schemas use; for a schema with any other keyword it returns None and fastjsonschema
does all the work.

Pure: no Faust or Kafka import.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

__all__ = ["acceptor"]

#: Keywords that never affect validity (``definitions`` is only read through ``$ref``).
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "examples", "definitions"}
)

#: Keywords the predicate checks; anything else makes :func:`acceptor` give up.
_CHECKED = frozenset(
    {
        "type",
        "enum",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "required",
        "properties",
        "additionalProperties",
        "items",
        "minItems",
        "maxItems",
        "anyOf",
        "allOf",
        "if",
        "then",
        "else",
    }
)

#: fastjsonschema's Python types per JSON type (``draft04.JSON_TYPE_TO_PYTHON_TYPE``).
_PY_TYPES = {
    "null": "NoneType",
    "boolean": "bool",
    "number": "int, float, Decimal",
    "integer": "int",
    "string": "str",
    "array": "list, tuple",
    "object": "dict",
}

#: The guard under which fastjsonschema applies a keyword of each value class.
_GUARD = {
    "string": "isinstance({v}, str)",
    "number": "isinstance({v}, (int, float, Decimal)) and not isinstance({v}, bool)",
    "array": "isinstance({v}, (list, tuple))",
    "object": "isinstance({v}, dict)",
}

#: Which value class each checked keyword applies to (None: any value).
_CLASS = {
    "minLength": "string",
    "maxLength": "string",
    "pattern": "string",
    "minimum": "number",
    "maximum": "number",
    "required": "object",
    "properties": "object",
    "additionalProperties": "object",
    "items": "array",
    "minItems": "array",
    "maxItems": "array",
}

#: A pattern that only asks for one non-whitespace character. ``re``'s ``\S`` and
#: ``str.isspace`` use the same Unicode whitespace test, so ``str.isspace`` answers the same
#: question for a fifth of the cost of a regex search.
_NON_BLANK = "\\S"

#: How deep ``$ref`` chains and nesting may go before the schema is left to fastjsonschema.
_MAX_DEPTH = 32

#: A local definition, optionally behind the schema's own ``$id`` (fastjsonschema rewrites
#: the ``$ref`` values of the schema it compiles into that absolute form).
_REF = re.compile(r"^([^#]*)#/definitions/([A-Za-z0-9_]+)$")


class _Unsupported(Exception):
    """The schema uses something the predicate does not mirror."""


class _Generator:
    """Python source for a schema: statements (``return False`` on the first broken rule)
    for the main function, and single expressions where a value is tested inside another
    test (``anyOf`` branches, ``if`` conditions), which saves a function call each."""

    def __init__(self, root: Mapping[str, Any], patterns: Mapping[str, re.Pattern[str]]) -> None:
        self.root = root
        self.patterns = patterns
        self.names: dict[str, Any] = {"Decimal": Decimal, "NoneType": type(None)}
        self.functions: list[list[str]] = []
        self.counter = 0

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def constant(self, value: Any) -> str:
        name = self.fresh("_c")
        self.names[name] = value
        return name

    def resolve(self, schema: Any, depth: int) -> Mapping[str, Any]:
        while isinstance(schema, dict) and "$ref" in schema:
            if set(schema) - {"$ref"} - _ANNOTATIONS or depth > _MAX_DEPTH:
                raise _Unsupported("$ref with siblings")
            match = _REF.match(schema["$ref"]) if isinstance(schema["$ref"], str) else None
            definitions = self.root.get("definitions")
            if match is None or not isinstance(definitions, dict):
                raise _Unsupported("$ref")
            if match.group(1) not in ("", self.root.get("$id")):
                raise _Unsupported("$ref to another document")
            if match.group(2) not in definitions:
                raise _Unsupported("$ref target")
            schema = definitions[match.group(2)]
            depth += 1
        if not isinstance(schema, dict):
            raise _Unsupported("boolean schema")
        unknown = set(schema) - _CHECKED - _ANNOTATIONS
        if unknown:
            raise _Unsupported(f"keywords {sorted(unknown)}")
        if ("then" in schema or "else" in schema) and "if" not in schema:
            raise _Unsupported("then/else without if")
        if depth > _MAX_DEPTH:
            raise _Unsupported("too deep")
        return schema

    def function(self, schema: Any, depth: int) -> str:
        """A predicate function for ``schema``; returns its name."""
        name = self.fresh("_f")
        lines = [f"def {name}(v0):"]
        self.emit(schema, "v0", lines, 1, depth)
        lines.append("    return True")
        self.functions.append(lines)
        return name

    def test(self, schema: Any, v: str, depth: int) -> str:
        """A condition that holds when ``v`` is valid: an expression, or a function call."""
        expression = self.expression(schema, v, depth)
        return expression if expression is not None else f"{self.function(schema, depth)}({v})"

    # -- statements ----------------------------------------------------------------------------

    def emit(self, schema: Any, v: str, out: list[str], ind: int, depth: int) -> None:
        """Lines that ``return False`` when the value in variable ``v`` breaks ``schema``."""
        schema = self.resolve(schema, depth)
        pad = "    " * ind
        known = self.known_class(schema)
        if "type" in schema:
            out.append(f"{pad}if not ({self.type_test(schema['type'], v)}):")
            out.append(f"{pad}    return False")
        for cls, keywords in self.by_class(schema).items():
            if cls is None or cls == known:
                self.statements(schema, keywords, v, out, ind, depth)
            elif known is None:
                block: list[str] = []
                self.statements(schema, keywords, v, block, ind + 1, depth)
                if block:
                    out.append(f"{pad}if {_GUARD[cls].format(v=v)}:")
                    out.extend(block)
            # else: the type test rules this class out, so its keywords cannot apply

    def statements(
        self,
        schema: Mapping[str, Any],
        keywords: list[str],
        v: str,
        out: list[str],
        ind: int,
        depth: int,
    ) -> None:
        pad = "    " * ind
        for keyword in keywords:
            value = schema[keyword]
            if keyword == "properties":
                if not isinstance(value, dict):
                    raise _Unsupported("properties")
                missing = self.constant(_MISSING)
                for key, sub in value.items():
                    w = self.fresh("v")
                    block: list[str] = []
                    self.emit(sub, w, block, ind + 1, depth + 1)
                    if block:
                        out.append(f"{pad}{w} = {v}.get({key!r}, {missing})")
                        out.append(f"{pad}if {w} is not {missing}:")
                        out.extend(block)
            elif keyword == "items":
                if not isinstance(value, dict):
                    raise _Unsupported("items")
                w = self.fresh("v")
                block = []
                self.emit(value, w, block, ind + 1, depth + 1)
                if block:
                    out.append(f"{pad}for {w} in {v}:")
                    out.extend(block)
            elif keyword == "allOf":
                if not isinstance(value, list):
                    raise _Unsupported("allOf")
                for sub in value:
                    self.emit(sub, v, out, ind, depth + 1)
            elif keyword == "if":
                then: list[str] = []
                otherwise: list[str] = []
                if "then" in schema:
                    self.emit(schema["then"], v, then, ind + 1, depth + 1)
                if "else" in schema:
                    self.emit(schema["else"], v, otherwise, ind + 1, depth + 1)
                condition = self.test(value, v, depth + 1)
                if then:
                    out.append(f"{pad}if {condition}:")
                    out.extend(then)
                    if otherwise:
                        out.append(f"{pad}else:")
                        out.extend(otherwise)
                elif otherwise:
                    out.append(f"{pad}if not ({condition}):")
                    out.extend(otherwise)
            elif keyword in ("then", "else"):
                continue  # part of "if"
            else:
                condition = self.check(keyword, value, schema, v, depth)
                if condition != "True":
                    out.append(f"{pad}if not ({condition}):")
                    out.append(f"{pad}    return False")

    # -- expressions ---------------------------------------------------------------------------

    def expression(self, schema: Any, v: str, depth: int) -> str | None:
        """``schema`` as one boolean expression over ``v``, or None when it needs statements
        (arrays of items, conditionals)."""
        schema = self.resolve(schema, depth)
        if {"items", "if", "allOf"} & set(schema):
            return None
        known = self.known_class(schema)
        parts: list[str] = []
        if "type" in schema:
            parts.append(f"({self.type_test(schema['type'], v)})")
        for cls, keywords in self.by_class(schema).items():
            tests: list[str] = []
            for keyword in keywords:
                if keyword == "properties":
                    properties = schema[keyword]
                    if not isinstance(properties, dict):
                        raise _Unsupported("properties")
                    missing = self.constant(_MISSING)
                    for key, sub in properties.items():
                        w = self.fresh("v")
                        inner = self.expression(sub, w, depth + 1)
                        if inner is None:
                            return None
                        if inner != "True":
                            tests.append(
                                f"(({w} := {v}.get({key!r}, {missing})) is {missing} or ({inner}))"
                            )
                else:
                    condition = self.check(keyword, schema[keyword], schema, v, depth)
                    if condition != "True":
                        tests.append(f"({condition})")
            if not tests:
                continue
            if cls is None or cls == known:
                parts.extend(tests)
            elif known is None:
                parts.append(f"(not ({_GUARD[cls].format(v=v)}) or ({' and '.join(tests)}))")
        return " and ".join(parts) if parts else "True"

    # -- single keywords -----------------------------------------------------------------------

    def check(self, keyword: str, value: Any, schema: Mapping[str, Any], v: str, depth: int) -> str:
        """A condition that holds when ``v`` meets one keyword (its class guard already holds).

        Comparisons are written as ``not (v < bound)``, as fastjsonschema writes them, so a
        NaN behaves the same on both sides.
        """
        if keyword == "enum":
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise _Unsupported("enum of non-strings")
            return f"isinstance({v}, str) and {v} in {self.constant(frozenset(value))}"
        if keyword in ("minLength", "maxLength", "minItems", "maxItems"):
            if not isinstance(value, int) or isinstance(value, bool):
                raise _Unsupported(keyword)
            op = "<" if keyword.startswith("min") else ">"
            return f"not (len({v}) {op} {value!r})"
        if keyword == "pattern":
            compiled = self.patterns.get(value) if isinstance(value, str) else None
            if compiled is None:
                raise _Unsupported("pattern not compiled by fastjsonschema")
            if (
                value == _NON_BLANK
                and compiled.pattern == _NON_BLANK
                and not compiled.flags & ~re.UNICODE
            ):
                return f"len({v}) > 0 and not str.isspace({v})"
            return f"{self.constant(compiled.search)}({v})"
        if keyword in ("minimum", "maximum"):
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise _Unsupported(keyword)
            op = "<" if keyword == "minimum" else ">"
            return f"not ({v} {op} {value!r})"
        if keyword == "required":
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise _Unsupported("required")
            if not value:
                return "True"
            if len(value) <= 8:  # a chain of ``in`` tests is about twice as fast as a set test
                return " and ".join(f"{key!r} in {v}" for key in value)
            return f"{v}.keys() >= {self.constant(frozenset(value))}"
        if keyword == "additionalProperties":
            if value is True:
                return "True"
            if value is not False:
                raise _Unsupported("additionalProperties schema")
            properties = schema.get("properties", {})
            if not isinstance(properties, dict):
                raise _Unsupported("properties")
            return f"{self.constant(frozenset(properties))}.issuperset({v})"
        if keyword == "anyOf":
            if not isinstance(value, list) or not value:
                raise _Unsupported("anyOf")
            return " or ".join(f"({self.test(sub, v, depth + 1)})" for sub in value)
        raise _Unsupported(keyword)  # pragma: no cover - _CHECKED and this chain agree

    # -- types ---------------------------------------------------------------------------------

    @staticmethod
    def known_class(schema: Mapping[str, Any]) -> str | None:
        """The value class a schema's type test pins down (so its guard need not be repeated)."""
        types = schema.get("type")
        if isinstance(types, list) and len(types) == 1:
            types = types[0]
        if not isinstance(types, str):
            return None
        if types in _GUARD:
            return types
        return "number" if types == "integer" else None

    @staticmethod
    def by_class(schema: Mapping[str, Any]) -> dict[str | None, list[str]]:
        grouped: dict[str | None, list[str]] = {}
        for keyword in schema:
            if keyword in _CHECKED and keyword != "type":
                grouped.setdefault(_CLASS.get(keyword), []).append(keyword)
        return grouped

    @staticmethod
    def type_test(declared: Any, v: str) -> str:
        """fastjsonschema's draft-06+ type test, as a condition that holds for valid values.

        Each test first tries the exact built-in type (``type(v) is float``), which is all
        decoded JSON ever holds, then fastjsonschema's own ``isinstance`` test unchanged.
        """
        types = declared if isinstance(declared, list) else [declared]
        if not types or not all(isinstance(t, str) and t in _PY_TYPES for t in types):
            raise _Unsupported("type")
        python = ", ".join(_PY_TYPES[t] for t in types)
        test = f"isinstance({v}, ({python},))"
        if "integer" in types:
            test = f"({test} or (isinstance({v}, float) and {v}.is_integer()))"
        if ("number" in types or "integer" in types) and "boolean" not in types:
            test = f"{test} and not isinstance({v}, bool)"
        exact = {
            "null": f"{v} is None",
            "string": f"type({v}) is str",
            "number": f"type({v}) is float or type({v}) is int",
            "integer": f"type({v}) is int",
            "object": f"type({v}) is dict",
            "array": f"type({v}) is list",
            "boolean": f"{v} is True or {v} is False",
        }
        shortcuts = " or ".join(exact[t] for t in types)
        return f"{shortcuts} or ({test})"


#: Stands for an absent property (JSON null is None, so None cannot).
_MISSING = object()


def acceptor(
    schema: Mapping[str, Any], patterns: Mapping[str, re.Pattern[str]]
) -> Callable[[Any], bool] | None:
    """A predicate that is True only for documents fastjsonschema accepts under ``schema``
    (draft 07), or None when the schema uses a keyword it does not mirror.

    ``patterns`` are the regular expressions fastjsonschema compiled for the same schema
    (its ``REGEX_PATTERNS``, keyed by the schema's pattern text), so both sides match with
    the very same expressions.
    """
    generator = _Generator(schema, patterns)
    try:
        main = generator.function(schema, 0)
    except _Unsupported:
        return None
    source = "\n".join("\n".join(lines) for lines in generator.functions)
    namespace = dict(generator.names)
    exec(compile(source, f"<acceptor {schema.get('$id', '')}>", "exec"), namespace)
    predicate: Callable[[Any], bool] = namespace[main]
    return predicate
