"""Hostile values that pass the schema: what the fuzzer (tests/stages/test_fuzz_stages.py)
found, pinned down one by one.

An identifier is a key in the identity graph: a value that looks the same to a person but is
a different string (a zero-width space, a bidi mark, fullwidth letters) splits one person in
two, and a placeholder dressed that way (``null\\u200b``) escapes the blocked list and ties
strangers together. A DLQ reason is read by people and lands in logs: it must not repeat the
sender's data, keys included.
"""

from __future__ import annotations

import unicodedata

import orjson
import pytest
from examples import variant
from hypothesis import given, settings
from hypothesis import strategies as st

from scv.domain.commands import parse_command
from scv.domain.governance import load_rules
from scv.domain.normalize import (
    InvalidEvent,
    canonical_value,
    normalize,
    normalize_email,
    normalize_id,
    visible,
)

#: Controls, format characters (zero-width, bidi, BOM, soft hyphen, tags) and odd spaces.
HOSTILE = (
    "\x00\x01\x08\t\n\x0b\x1b\x7f\x85\x9f\xa0\xad\u061c\u180e\u200b\u200c\u200d\u200e\u200f"
    "\u2028\u2029\u202a\u202e\u2060\u2066\u2069\u3000\ufeff\U000e0001\U000e0041"
)
hostile_text = st.text(alphabet=st.sampled_from(HOSTILE) | st.characters(), max_size=30)


def fullwidth(text: str) -> str:
    """``text`` in the fullwidth forms an East Asian input method types (U+FF01-FF5E)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" for c in text)


def invisible(value: str) -> list[str]:
    return [c for c in value if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("ck\u200b-1", "ck-1"),  # zero-width space
        ("\u202eck-1", "ck-1"),  # right-to-left override
        ("\ufeffck-1", "ck-1"),  # byte-order mark from a CSV export
        ("ck\x00-1", "ck-1"),
        ("ck\u00ad-1", "ck-1"),  # soft hyphen
        (fullwidth("ck-1"), "ck-1"),  # from an input method
        ("ck\u3000-\t1", "ck - 1"),  # ideographic space and a tab are spaces
        ("ck-\U000e0041\U000e0001", "ck-"),  # tag characters
    ],
)
def test_invisible_and_compatibility_characters_are_folded_out_of_ids(
    typed: str, canonical: str
) -> None:
    assert normalize_id(typed) == canonical


@pytest.mark.parametrize("value", ["\u200b", "\u202e\u202c", "\x00", "\ufeff \u2060", "\x1b"])
def test_an_id_of_only_invisible_characters_is_no_id(value: str) -> None:
    event = normalize("web", orjson.dumps(variant("web", "web-1", customer_id=value)))
    assert [kind for kind, _ in event.identifiers] == ["anonymous_id"]  # no customer_id
    assert event.payload.get("warnings") == ["customer_id:invalid"]


@pytest.mark.parametrize(
    "disguised", ["null\u200b", "\u200bnull", fullwidth("null"), "NULL\ufeff", "n/a\x00"]
)
def test_a_disguised_placeholder_is_still_blocked(disguised: str) -> None:
    """Before, ``null\\u200b`` was a fresh cookie id: every source writing it linked people."""
    event = normalize("web", orjson.dumps(variant("web", "web-1", anonymous_id=disguised)))
    assert load_rules(None).unblocked(event.identifiers) == []


@pytest.mark.parametrize(
    "typed",
    [
        fullwidth("jane.doe@example.com"),
        "jane.doe\u200b@example.com",
        "\u202ejane.doe@example.com",
        "jane.doe@exam\u00adple.com",
        "jane.doe@example.com\x00",
        "JANE.DOE@EXAMPLE。COM",
    ],
)
def test_an_email_typed_with_invisible_or_fullwidth_characters_is_the_same_address(
    typed: str,
) -> None:
    assert normalize_email(typed) == "jane.doe@example.com"


def test_homoglyphs_from_another_script_stay_another_address() -> None:
    cyrillic = normalize_email("j\u0430ne@example.com")  # Cyrillic a
    assert cyrillic is not None
    assert cyrillic != "jane@example.com"


def test_ligatures_and_fullwidth_digits_in_national_ids() -> None:
    raw = variant(
        "transactions", "tx-1", national_id=fullwidth("AB 12") + "\u200b" + fullwidth("34")
    )
    assert normalize("transactions", orjson.dumps(raw)).traits["national_id"] == "AB1234"


def test_names_lose_bidi_overrides() -> None:
    """A right-to-left override in a name would reorder what an agent sees on screen."""
    raw = variant("transactions", "tx-1", first_name="\u202eenaJ", last_name="Doe\u200b")
    traits = normalize("transactions", orjson.dumps(raw)).traits
    assert (traits["first_name"], traits["last_name"]) == ("enaJ", "Doe")


@settings(max_examples=400)
@given(value=hostile_text)
def test_ids_are_visible_fixed_points(value: str) -> None:
    once = normalize_id(value)
    if once is not None:
        assert normalize_id(once) == once
        assert not invisible(once)
        assert unicodedata.normalize("NFKC", once) == once
    assert visible(visible(value)) == visible(value)


@settings(max_examples=400)
@given(
    local=hostile_text,
    domain=st.sampled_from(
        ["example.com", fullwidth("example.com"), "münchen.de", "xn--mnchen-3ya.de"]
    ),
)
def test_emails_are_visible_fixed_points(local: str, domain: str) -> None:
    once = normalize_email(f"{local}@{domain}")
    if once is not None:
        assert normalize_email(once) == once
        assert not invisible(once)
        assert once.rpartition("@")[2].isascii()


def test_commands_fold_identifiers_like_events() -> None:
    """A steward pasting an address with a zero-width space names the same identifier."""
    assert canonical_value("email", "jane\u200b@example.com") == "jane@example.com"
    command = {
        "command_id": "c-1",
        "type": "ban_link",
        "timestamp": "2024-05-01T09:00:00Z",
        "subject": {"type": "customer_id", "value": "C-1\u200b"},
        "identifiers": [
            {"type": "customer_id", "value": "C-1\u200b"},
            {"type": "email", "value": fullwidth("JANE") + "@example.com"},
        ],
    }
    parsed = parse_command(orjson.dumps(command))
    assert parsed.identifiers == ["customer_id:C-1", "email:jane@example.com"]


@pytest.mark.parametrize(
    ("source", "event"),
    [
        ("web", variant("web", "web-1", page={"url": "u", "jane.doe@example.com": 1})),
        ("web", variant("web", "web-1", traits={"Jane Doe": "x"})),
    ],
)
def test_schema_reasons_do_not_name_unknown_keys(source: str, event: dict[str, object]) -> None:
    """fastjsonschema lists unknown keys in its message; a key may be personal data."""
    with pytest.raises(InvalidEvent) as info:
        normalize(source, orjson.dumps(event))
    assert info.value.reason.endswith("must not contain unknown properties")
    assert "jane" not in info.value.reason.lower()


def test_command_schema_reasons_do_not_name_unknown_keys() -> None:
    command = {
        "command_id": "c-1",
        "type": "unmerge",
        "timestamp": 0,
        "subject": {"profile_id": "p_1"},
        "identifiers": [{"type": "email", "value": "a@b.example"}],
        "jane.doe@example.com": True,
    }
    with pytest.raises(InvalidEvent) as info:
        parse_command(orjson.dumps(command))
    assert info.value.reason == "schema: data must not contain unknown properties"
