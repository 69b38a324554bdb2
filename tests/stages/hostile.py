"""Hypothesis strategies for hostile input to every raw topic and to ``identity.commands.v1``.

Valid events are the starting point (:func:`good_doc`, one rich shape per source and
variant, with identifiers unique within a batch). The strategies break them the ways
sources and attackers do:

* ``bad`` cases, which must be dead-lettered: invalid JSON (syntax errors, invalid UTF-8,
  lone surrogate escapes, NaN/Infinity, comments, trailing garbage, a BOM), truncated
  messages, nesting past the decoder's depth limit, documents of megabytes, JSON that is no
  object, missing required fields, every field of the schema (nested ones too) given a
  wrong type (numbers as strings, huge integers, null, arrays, objects), values the schema
  refuses (too long, empty, out of range, not in the enum), duplicate keys whose last value
  is wrong, timestamps that are no dates; for commands also ones that cannot be carried
  out (unknown profile, identifiers not in it, an identifier that is no email);
* ``weird`` cases, which pass the schema but carry hostile strings (control characters,
  NUL, zero-width and bidi characters, fullwidth and homoglyph letters, IDNA edge cases,
  very long local parts, phone numbers in foreign digits), edge timestamps, deep but legal
  nesting and duplicate keys in unknown fields: either outcome is fine, but what is accepted
  must be clean (see ``fuzzkit.check``).

The schemas are read to find each field's allowed types, so a new field gets wrong-typed
without touching this file.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from fuzzkit import COMMANDS, Case
from hypothesis import strategies as st

from scv.domain.model import SOURCES
from scv.schemas import load_schema

# --------------------------------------------------------------------------------------------
# Valid events and commands
# --------------------------------------------------------------------------------------------

#: Cases of one batch are numbered within a block of this size (see :func:`batches`).
BLOCK = 100

#: How many shapes :func:`good_doc` knows per target.
VARIANTS = {"web": 4, "email": 3, "transactions": 2, "callcenter": 2, COMMANDS: 1}


def ids(n: int) -> dict[str, str]:
    """Identifier values of the ``n``-th good event: unique within a batch."""
    return {
        "anonymous_id": f"ck-fz-{n}",
        "customer_id": f"C-FZ-{n:05d}",
        "email": f"Fuzz.Person{n}@Acme-Corp.CO.UK",
        "phone": f"07700 9{n % 100_000:05d}",
        "device_id": f"dev-fz-{n}",
    }


def good_doc(source: str, n: int, variant: int) -> dict[str, Any]:
    """A valid raw event of ``source`` (every optional structure the schema has, in one of
    a few shapes), with the identifiers of :func:`ids`."""
    i = ids(n)
    base: dict[str, Any] = {"event_id": f"fz-{source}-{n}", "timestamp": 1714554000 + n}
    item = {"sku": f"SKU-{n}", "name": "Kettle", "qty": 2, "price": 29.99}
    if source == "web":
        base |= {"anonymous_id": i["anonymous_id"], "session_id": f"sess-{n}"}
        if variant == 0:
            return base | {
                "type": "product_view",
                "timestamp": "2024-05-01T09:00:00.250+01:00",
                "device_id": i["device_id"],
                "page": {"url": "https://shop.example/p/1", "title": "Kettle", "referrer": ""},
                "product": {"sku": "SKU-1", "name": "Kettle", "price": 29.99},
            }
        if variant == 1:
            cart = {"cart_id": f"cart-{n}", "items": [item], "currency": "gbp"}
            return base | {"type": "cart_add", "cart": cart, "email": i["email"]}
        if variant == 2:
            return base | {
                "type": "signup",
                "customer_id": i["customer_id"],
                "email": i["email"],
                "traits": {"first_name": "Jane", "last_name": "Doe"},
                "consent": {"marketing": True, "analytics": False},
            }
        return base | {"type": "consent_update", "consent": {"marketing": False}}
    if source == "email":
        base |= {"email": i["email"]}
        if variant == 0:
            return base | {"type": "open", "campaign_id": "cmp-1", "link_url": None}
        if variant == 1:
            return base | {"type": "subscribe", "timestamp": "2024-05-01 09:00Z"}
        return base | {
            "type": "click",
            "campaign_id": "cmp-2",
            "link_url": "https://shop.example/sale",
            "anonymous_id": i["anonymous_id"],
            "customer_id": i["customer_id"],
        }
    if source == "transactions":
        base |= {"order_id": f"O-{n}", "items": [item], "total": 59.98}
        if variant == 0:
            return base | {
                "type": "order",
                "currency": "GBP",
                "email": i["email"],
                "phone": i["phone"],
                "first_name": "Jane",
                "last_name": "Doe",
                "birth_date": "1980-02-29",
                "address": {
                    "street": "1 High Street",
                    "line2": None,
                    "city": "London",
                    "region": "Greater London",
                    "postcode": "sw1a 1aa",
                    "country": "gb",
                },
                "cart_id": f"cart-{n}",
                "anonymous_id": i["anonymous_id"],
                "marketing_opt_in": True,
                "national_id": "AB 12 34 56 C",
            }
        return base | {"type": "return", "total": -29.99, "customer_id": i["customer_id"]}
    if source == "callcenter":
        base |= {"type": "call"}
        if variant == 0:
            return base | {
                "phone": i["phone"],
                "agent_id": "agent-7",
                "first_name": "Jane",
                "last_name": "Doe",
                "birth_date": "",
                "postcode": "SW1A 1AA",
                "disposition": {"code": "cancel_request", "notes": "wants to cancel"},
                "duration_s": 120.5,
            }
        return base | {
            "customer_id": i["customer_id"],
            "email": i["email"],
            "address": {"street": "2 Mill Lane", "city": "Leeds", "country": "GB"},
            "national_id": "123-45-6789",
            "consent": {"marketing": True},
            "disposition": {"code": "inquiry", "cancel_intent": False},
        }
    raise ValueError(source)


def command_doc(n: int, ctype: str = "ban_link") -> dict[str, Any]:
    """A valid command naming identifiers of the first two good events of ``n``'s batch (web
    and email, which every batch holds; a batch numbers its cases from a multiple of
    :data:`BLOCK`): a ``ban_link`` between two people that can be carried out."""
    first = n - n % BLOCK
    a, b = ids(first), ids(first + 1)
    return {
        "command_id": f"cmd-{n}",
        "type": ctype,
        "timestamp": "2024-05-02T10:00:00Z",
        "subject": {"type": "anonymous_id", "value": a["anonymous_id"]},
        "identifiers": [
            {"type": "anonymous_id", "value": a["anonymous_id"]},
            {"type": "email", "value": b["email"]},
        ],
        "requested_by": "steward-1",
        "reason": "two people",
    }


def template(target: str, n: int, variant: int) -> dict[str, Any]:
    if target == COMMANDS:
        return command_doc(n)
    return good_doc(target, n, variant % VARIANTS[target])


def schema_of(target: str) -> dict[str, Any]:
    return load_schema("identity.commands.v1" if target == COMMANDS else f"raw.{target}.v1")


# --------------------------------------------------------------------------------------------
# Schema walking: which fields exist and which JSON types each allows
# --------------------------------------------------------------------------------------------

Path = tuple[str | int, ...]


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref:
        return schema["definitions"][ref.rsplit("/", 1)[1]]  # type: ignore[no-any-return]
    return node


def allowed_types(schema: dict[str, Any], node: dict[str, Any]) -> set[str]:
    node = _resolve(schema, node)
    if "type" in node:
        kinds = node["type"]
        return {kinds} if isinstance(kinds, str) else set(kinds)
    found: set[str] = set()
    for key in ("anyOf", "oneOf"):
        for sub in node.get(key, []):
            found |= allowed_types(schema, sub)
    return found


def field_paths(schema: dict[str, Any], doc: Any, node: dict[str, Any] | None = None) -> list:
    """(path, node) of every field of ``doc`` the schema describes, nested ones included."""
    node = _resolve(schema, node if node is not None else schema)
    out: list[tuple[Path, dict[str, Any]]] = []
    if isinstance(doc, dict):
        for key, prop in node.get("properties", {}).items():
            if key in doc:
                out.append(((key,), prop))
                out += [((key, *p), n) for p, n in field_paths(schema, doc[key], prop)]
    elif isinstance(doc, list) and "items" in node and doc:
        out.append(((0,), node["items"]))
        out += [((0, *p), n) for p, n in field_paths(schema, doc[0], node["items"])]
    return out


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


#: Values of every JSON type, including the classic confusions: numbers as strings, huge
#: integers (orjson reads them as floats), ``"NaN"``, empty containers.
WRONG_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1.5,
    2**70,
    -(2**70),
    "x",
    "",
    "12.5",
    "1714554120",
    "NaN",
    "true",
    "null",
    [],
    ["a"],
    [[[]]],
    {},
    {"a": 1},
    {"$ref": "#"},
)


def wrong_values(allowed: set[str]) -> list[Any]:
    ok = set(allowed)
    if "number" in ok:
        ok.add("integer")
    return [v for v in WRONG_VALUES if json_type(v) not in ok]


def set_path(doc: Any, path: Path, value: Any) -> None:
    for step in path[:-1]:
        doc = doc[step]
    doc[path[-1]] = value


# --------------------------------------------------------------------------------------------
# Hostile strings
# --------------------------------------------------------------------------------------------

#: Characters that break naive text handling: controls (NUL, ESC, C1), zero-width and bidi
#: format characters, odd separators and spaces, combining marks, fullwidth, homoglyph and
#: compatibility letters and digits, a private-use and an unassigned code point, astral ones.
HOSTILE_CHARS: tuple[str, ...] = tuple(
    "\x00\x01\x07\x08\t\n\r\x0b\x0c\x1b\x1f\x7f\x80\x85\x9f\xa0\xad\u034f\u061c\u115f\u180e"
    "\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2060\u2066"
    "\u2067\u2068\u2069\u3000\u3164\ufeff\ufff9\ufffc\ufffd\ufffe\uffff\U000e0001\U000e0041"
    "\U0010ffff\ue000\u0378\U0001f600\u0301\u0338\u0130\u0131\xdf\u1e9e\ufb01\u212a\u212b"
    "\u017f\uff4a\uff2a\uff20\uff0e\u3002\u0430\u0435\u043e\u0440\u0441\u0445\u0455\u0458"
    "\u212f\U0001d41a\u2460\xb2\u0660\u06f1\uff10\uff19\uff0b"
)

hostile_char = st.sampled_from(HOSTILE_CHARS)
hostile_text = st.text(
    alphabet=hostile_char | st.characters(codec="utf-8"), min_size=1, max_size=24
)


@st.composite
def spiked(draw: st.DrawFn, value: str) -> str:
    """``value`` with hostile characters inserted, or replaced by hostile text."""
    if draw(st.integers(0, 4)) == 0:
        return draw(hostile_text)
    chars = list(value)
    for _ in range(draw(st.integers(1, 4))):
        chars.insert(draw(st.integers(0, len(chars))), draw(hostile_char))
    return "".join(chars)


def fullwidth(text: str) -> str:
    """``text`` in the fullwidth forms an East Asian input method types (U+FF01-FF5E)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" for c in text)


#: Email spellings at the edges of the syntax and of IDNA.
EMAIL_EDGES: tuple[str, ...] = (
    fullwidth("jane.doe@example.com"),  # also the @ and the dots
    "jane@" + fullwidth("example.com"),
    "jane@example\u3002com",  # ideographic full stop
    "j\u0430ne@example.com",  # Cyrillic a: a different address, must stay different
    "JANE@EXAMPLE.COM",
    "jane\u200b@example.com",
    "\u202ejane@example.com",
    "jane@exam\u00adple.com",
    "jane\x00@example.com",
    "jane@example.com\x00",
    "a" * 64 + "@example.com",
    "a" * 65 + "@example.com",
    "a" * 300 + "@example.com",
    "jane@" + "a" * 63 + ".com",
    "jane@" + "a" * 64 + ".com",
    "jane@" + ".".join(["a" * 60] * 5) + ".com",
    "jane@xn--mnchen-3ya.de",
    "jane@m\xfcnchen.de",
    "jane@M\xdcNCHEN.DE",
    "jane@fa\xdf.de",
    "jane@xn--.com",
    "jane@xn--zz.com",
    "jane@xn--a.com",
    "jane@-example.com",
    "jane@example-.com",
    "jane@ex..ample.com",
    "jane@example.com.",
    "jane@.example.com",
    "jane@localhost",
    "jane@[127.0.0.1]",
    "jane@[IPv6:::1]",
    '"jane doe"@example.com',
    "jane@@example.com",
    "jane@example@com",
    "@example.com",
    "jane@",
    "jane.@example.com",
    ".jane@example.com",
    "ja..ne@example.com",
    "jane+tag@example.com",
    "\u0130@example.com",
    "\xdf@stra\xdfe.de",
    "\ufb01@example.com",
    "\u212a@example.com",
    "\u7528\u6237@\u4f8b\u5b50.\u5e7f\u544a",
    "\u03b8\u03c3\u03b5\u03c1@\u03b5\u03c7\u03b1\u03bc\u03c0\u03bb\u03b5.\u03c8\u03bf\u03bc",
    "jane@\u2603.net",
    "jane@\u0645\u062b\u0627\u0644.\u0625\u062e\u062a\u0628\u0627\u0631",
    "jane@example.com\n",
    " \t jane@example.com \r\n",
    "jane@exa\u0301mple.com",
    "jane@e\u200dxample.com",
)

#: Phone spellings: foreign digits, letters, extensions, lengths at the limit.
PHONE_EDGES: tuple[str, ...] = (
    fullwidth("07700") + " " + fullwidth("900123"),
    "\u0660\u0667\u0667\u0660\u0660\u0669\u0660\u0660\u0661\u0662\u0663",
    "+44\u200b7700900123",
    "+44 7700 900123\x00",
    "+" + fullwidth("44 7700 900123"),
    "+1 800 FLOWERS",
    "tel:+44-7700-900123",
    "+44 7700 900123 ext. 42",
    "+4477009001234567890",
    "+" + "9" * 63,
    "0" * 64,
    "+800 1234 5678",
    "+999 1234",
    "+44 (0) 7700 900123",
    "0044 7700 900123",
    "+",
    "()",
    "+44\u202e7700900123",
)

EDGE_TIMESTAMPS: tuple[Any, ...] = (
    0,
    0.0,
    1e-300,
    99_999_999_999,
    100_000_000_000,
    100_000_000_001,
    99_999_999_999_999,
    100_000_000_000_000,
    "1970-01-01T00:00:00Z",
    "9999-12-31T23:59:59+00:00",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "2024-02-29T12:00:00",
    "2023-02-29T12:00:00Z",
    "2024-05-01t09:00:00z",
    "2024-05-01 09:00",
    "2024-05-01T09:00:00,123456789Z",
    "2024-05-01T24:00:00Z",
    "2024-13-01T00:00:00Z",
    "2024-05-01T09:00:00+2359",
    "2024-05-01T09:00:00+99:99",
)


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------


def dumps(doc: Any, escaped: bool = False) -> bytes:
    """JSON bytes; ``escaped`` spells every non-ASCII character as a ``\\u`` escape (the other
    way JSON carries them, which the decoder must read the same)."""
    if escaped:
        return json.dumps(doc, ensure_ascii=True).encode()
    try:
        return orjson.dumps(doc)
    except TypeError:  # an integer past 64 bits: JSON has no limit, orjson has
        return json.dumps(doc, ensure_ascii=False).encode()


def _dump_with_keys(pairs: list[tuple[str, Any]]) -> bytes:
    """An object with the keys in order, repeated keys kept (JSON allows the text)."""
    body = b",".join(orjson.dumps(k) + b":" + dumps(v) for k, v in pairs)
    return b"{" + body + b"}"


@st.composite
def bad_case(draw: st.DrawFn, target: str, n: int) -> Case:
    """A message the stage must dead-letter."""
    variant = draw(st.integers(0, VARIANTS[target] - 1))
    doc = template(target, n, variant)
    raw = orjson.dumps(doc)
    schema = schema_of(target)
    kind = draw(
        st.sampled_from(
            (
                "invalid_json",
                "truncated",
                "too_deep",
                "huge",
                "not_object",
                "missing",
                "wrong_type",
                "out_of_schema",
                "duplicate_key",
                "bad_timestamp",
                "empty",
            )
            + (("unworkable_command",) if target == COMMANDS else ())
        )
    )
    value: bytes | None
    if kind == "invalid_json":
        value = draw(_broken_json(raw))
        if _parses_as_object(value):  # a comma inserted into a string is still JSON
            return Case(target, "json_mutation", value, "weird")
    elif kind == "truncated":
        value = raw[: draw(st.integers(1, len(raw) - 1))]
    elif kind == "too_deep":
        depth = draw(st.integers(1025, 20000))
        opener, closer = draw(st.sampled_from(((b"[", b"]"), (b'{"a":', b"}"))))
        nested = opener * depth + b"1" + closer * depth
        inside = draw(st.booleans())  # as a field's value, or the whole message
        value = raw[:-1] + b',"page":' + nested + b"}" if inside else nested
    elif kind == "huge":
        size = draw(st.sampled_from((65_537, 100_000, 1_000_000, 4_000_000)))
        field = draw(st.sampled_from(("event_id", "blob", "email", "notes")))
        if draw(st.booleans()):
            doc[field] = "x" * size
        else:
            doc[field] = [1] * (size // 2)
        value = orjson.dumps(doc)
    elif kind == "not_object":
        value = draw(
            st.sampled_from(
                (b"[]", b"[{}]", b'"event"', b"null", b"true", b"42", b"-0.0", b"1e308")
            )
            | st.just(b"[" + raw + b"]")
            | st.just(orjson.dumps(raw.decode()))  # the event as a JSON string
        )
    elif kind == "missing":
        required = [f for f in schema["required"] if f in doc]
        del doc[draw(st.sampled_from(required))]
        value = dumps(doc, draw(st.booleans()))
    elif kind == "wrong_type":
        paths = [
            (p, wrong_values(allowed_types(schema, node))) for p, node in field_paths(schema, doc)
        ]
        path, options = draw(st.sampled_from([p for p in paths if p[1]]))
        set_path(doc, path, draw(st.sampled_from(options)))
        value = dumps(doc, draw(st.booleans()))
    elif kind == "out_of_schema":
        value = dumps(draw(_out_of_schema(target, doc)), draw(st.booleans()))
    elif kind == "duplicate_key":
        required = [f for f in schema["required"] if f in doc]
        field = draw(st.sampled_from(required))
        options = wrong_values(allowed_types(schema, schema["properties"][field]))
        pairs = [*doc.items(), (field, draw(st.sampled_from(options)))]
        value = _dump_with_keys(pairs)
    elif kind == "bad_timestamp":
        doc["timestamp"] = draw(
            st.sampled_from(
                (
                    "yesterday",
                    "",
                    "2024-05-01",
                    "01/05/2024 09:00",
                    "2024-05-01T09:00:00Z\n",
                    "2024-05-01T09:00:00Z ",
                    " 2024-05-01T09:00:00Z",
                    "2024-05-01T09:00:00.1234567890Z",
                    "2024-13-45T99:99:99Z",
                    "0000-01-01T00:00:00Z",
                    "2024-02-30T00:00:00Z",
                    fullwidth("2024") + "-05-01T09:00:00Z",
                    -1,
                    -0.5,
                    1e15,
                    2**64,
                )
            )
        )
        value = dumps(doc)
    elif kind == "unworkable_command":
        value = orjson.dumps(draw(_unworkable_command(doc)))
    else:
        value = draw(st.sampled_from((b"", None)))
    return Case(target, kind, value, "bad")


def _parses_as_object(value: bytes) -> bool:
    try:
        return isinstance(orjson.loads(value), dict)
    except orjson.JSONDecodeError:
        return False


@st.composite
def _broken_json(draw: st.DrawFn, raw: bytes) -> bytes:
    text = raw.decode()
    how = draw(st.integers(0, 12))
    at = draw(st.integers(1, len(raw) - 2))
    if how == 0:  # a random byte where a structural one was
        return raw[:at] + draw(st.sampled_from((b"{", b"}", b"[", b",", b":", b'"'))) + raw[at:]
    if how == 1:  # invalid UTF-8 inside a string
        bad = draw(st.sampled_from((b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x80")))
        quote = raw.index(b'":"') + 3
        return raw[:quote] + bad + raw[quote:]
    if how == 2:  # a lone surrogate escape
        esc = draw(st.sampled_from((b"\\ud800", b"\\udfff", b"\\ud800\\u0041", b"\\udc00\\ud800")))
        quote = raw.index(b'":"') + 3
        return raw[:quote] + esc + raw[quote:]
    if how == 3:
        literal = draw(st.sampled_from(("NaN", "Infinity", "-Infinity", "undefined", "0x10")))
        return text.replace('"timestamp":', f'"timestamp":{literal},"t2":', 1).encode()
    if how == 4:
        return raw + draw(st.sampled_from((b" x", b",", b"{}", b"\x00", raw)))
    if how == 5:
        return b"\xef\xbb\xbf" + raw  # a UTF-8 byte-order mark
    if how == 6:
        return text.replace('"', "'").encode()
    if how == 7:
        return (
            text.replace('"event_id"', "event_id", 1)
            .replace('"command_id"', "command_id", 1)
            .encode()
        )
    if how == 8:
        return raw[:-1] + b",}"
    if how == 9:
        return b"/* c */" + raw
    if how == 10:
        return raw.replace(b":", b"=", 1)
    if how == 11:
        return raw.decode().encode("utf-16")
    return draw(st.binary(min_size=1, max_size=64)).replace(b"{", b"").replace(b"}", b"") + b"{"


@st.composite
def _out_of_schema(draw: st.DrawFn, target: str, doc: dict[str, Any]) -> dict[str, Any]:
    """A value of the right type that the schema refuses."""
    schema = schema_of(target)
    options: list[tuple[Path, Any]] = []
    for path, node in field_paths(schema, doc):
        node = _resolve(schema, node)
        if "enum" in node:
            for v in (node["enum"][0].upper(), node["enum"][0] + " ", "\u200b" + node["enum"][0]):
                options.append((path, v))
        if "maxLength" in node:
            options.append((path, "\xe9" * (node["maxLength"] + 1)))
        if node.get("minLength") == 1:
            options.append((path, ""))
        if node.get("pattern") == "\\S":
            options.append((path, draw(st.sampled_from((" ", "\t\n", "\u3000", "\xa0\x85")))))
        if "maximum" in node:
            options.append((path, node["maximum"] * 10 + 1))
        if "minimum" in node:
            options.append((path, node["minimum"] - 1))
        if node.get("additionalProperties") is False:
            options.append((path, {**(doc_at(doc, path) or {}), "jane.doe@example.com": 1}))
        if node.get("maxItems"):
            options.append((path, [doc_at(doc, path)[0]] * (node["maxItems"] + 1)))
        if node.get("minItems"):
            options.append((path, []))
        if node.get("pattern", "").startswith("^[A-Za-z]{3}"):
            options += [(path, v) for v in ("GB", "GBPX", "G1P", fullwidth("GBP"), "gbp\n")]
    path, value = draw(st.sampled_from(options))
    if draw(st.booleans()) and target == "web" and doc["type"] != "cart_add":
        doc["type"] = "cart_add"  # the conditional: a cart event without a cart
        doc.pop("cart", None)
        return doc
    set_path(doc, path, value)
    return doc


def doc_at(doc: Any, path: Path) -> Any:
    for step in path:
        doc = doc[step]
    return doc


@st.composite
def _unworkable_command(draw: st.DrawFn, doc: dict[str, Any]) -> dict[str, Any]:
    """Well-formed commands that cannot be carried out."""
    how = draw(st.integers(0, 6))
    if how == 0:
        return doc | {"type": "unmerge", "subject": {"profile_id": "p_no_such_profile"}}
    if how == 1:
        return doc | {
            "subject": {"type": "email", "value": "nobody@nowhere.example"},
            "type": "unmerge",
        }
    if how == 2:
        bad = draw(st.sampled_from(("not an email", "jane@", "@x.com", "jane\x00@@x")))
        return doc | {"identifiers": [{"type": "email", "value": bad}]}
    if how == 3:
        return doc | {
            "identifiers": [{"type": "phone", "value": draw(st.sampled_from(("12", "+", "abc")))}]
        }
    if how == 4:
        return doc | {"identifiers": doc["identifiers"][:1]}  # ban_link needs two
    if how == 5:
        return doc | {"type": "link"}  # link needs a profile id subject
    return doc | {
        "identifiers": [
            {"type": "anonymous_id", "value": "ck-nobody-1"},
            {"type": "anonymous_id", "value": "ck-nobody-2"},
        ]
    }


@st.composite
def weird_case(draw: st.DrawFn, target: str, n: int) -> Case:
    """A message that passes the schema but carries hostile values."""
    variant = draw(st.integers(0, VARIANTS[target] - 1))
    doc = template(target, n, variant)
    schema = schema_of(target)
    kind = draw(
        st.sampled_from(
            (
                "hostile_strings",
                "edge_email",
                "edge_phone",
                "edge_timestamp",
                "deep_extra",
                "duplicate_key_ok",
                "junk_id",
            )
        )
    )
    if target == COMMANDS and kind in ("edge_email", "edge_phone"):
        ident = {
            "type": kind[5:],
            "value": draw(st.sampled_from(EMAIL_EDGES if kind == "edge_email" else PHONE_EDGES)),
        }
        doc["identifiers"][1] = ident
    elif kind == "edge_email":
        doc["email"] = draw(
            st.sampled_from(EMAIL_EDGES)
            | st.builds(
                lambda local, dom: f"{local}@{dom}",
                hostile_text,
                st.sampled_from(
                    (
                        "example.com",
                        fullwidth("example.com"),
                        "xn--mnchen-3ya.de",
                    )
                ),
            )
        )
    elif kind == "edge_phone" and target in ("transactions", "callcenter"):
        doc["phone"] = draw(st.sampled_from(PHONE_EDGES))
    elif kind == "edge_timestamp":
        doc["timestamp"] = draw(st.sampled_from(EDGE_TIMESTAMPS))
    elif kind == "deep_extra":
        depth = draw(st.integers(2, 1000))
        doc["x_extra"] = orjson.loads(b"[" * depth + b"1" + b"]" * depth)
        big = str(draw(st.sampled_from((2**64, 2**80, -(2**70), 10**400)))).encode()
        value = dumps(doc)[:-1] + b',"x_big_int":' + big + b"}"  # orjson cannot write them
        return Case(target, kind, value, "weird")
    elif kind == "duplicate_key_ok":
        pairs = [("event_id", 12345), *doc.items()]  # the last one, the valid one, counts
        return Case(target, kind, _dump_with_keys(pairs), "weird")
    elif kind == "junk_id":
        field = draw(
            st.sampled_from(
                [f for f in ("anonymous_id", "customer_id", "device_id") if f in doc] or ["x_none"]
            )
        )
        doc[field] = draw(
            st.sampled_from(
                (
                    "null",
                    fullwidth("null"),
                    "null\u200b",
                    "\u200bunknown",
                    "NULL ",
                    "n/a",
                    "-",
                    "\u3164",
                    "\u200b",
                    "\x00",
                )
            )
        )
    else:
        strings = [
            (p, node)
            for p, node in field_paths(schema, doc)
            if "string" in allowed_types(schema, node)
            and isinstance(doc_at(doc, p), str)
            and "enum" not in _resolve(schema, node)
            and p != ("timestamp",)
        ]
        for _ in range(draw(st.integers(1, 4))):
            path, node = draw(st.sampled_from(strings))
            value = draw(spiked(doc_at(doc, path)))
            limit = _resolve(schema, node).get("maxLength")
            set_path(doc, path, value[:limit] if limit else value)
    return Case(target, kind, dumps(doc, draw(st.booleans())), "weird")


def good_case(target: str, n: int, variant: int) -> Case:
    doc = template(target, n, variant)
    if target == COMMANDS:
        return Case(target, "ban_link", orjson.dumps(doc), "good")
    return Case(target, "valid", orjson.dumps(doc), "good", event_id=doc["event_id"])


@st.composite
def batches(draw: st.DrawFn, max_bad: int = 40, weird: bool = True, first: int = 0) -> list[Case]:
    """A batch as a consumer hands it over: good events of every source (two of them, web
    and email, always, as good commands name their identifiers), bad and weird cases in
    between, in random order. Cases are numbered from ``first`` (a multiple of
    :data:`BLOCK`), so batches with different ``first`` share no identifier."""
    assert first % BLOCK == 0 and max_bad < BLOCK - 10
    cases = [good_case("web", first, 0), good_case("email", first + 1, 0)]
    n = first + 2
    for _ in range(draw(st.integers(0, 6))):
        target = draw(st.sampled_from(SOURCES))
        cases.append(good_case(target, n, draw(st.integers(0, VARIANTS[target] - 1))))
        n += 1
    if draw(st.booleans()):
        cases.append(good_case(COMMANDS, n, 0))
        n += 1
    for _ in range(draw(st.integers(1, max_bad))):
        target = draw(st.sampled_from((*SOURCES, COMMANDS)))
        if weird and draw(st.integers(0, 3)) == 0:
            cases.append(draw(weird_case(target, n)))
        else:
            cases.append(draw(bad_case(target, n)))
        n += 1
    return draw(st.permutations(cases))


def example_docs() -> list[tuple[str, dict[str, Any]]]:
    """Every good shape once, for the harness's own self-check."""
    return [
        (t, template(t, i, v))
        for i, t in enumerate((*SOURCES, COMMANDS))
        for v in range(VARIANTS[t])
    ]
