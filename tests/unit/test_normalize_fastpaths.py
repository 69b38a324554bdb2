"""The shortcuts in ``scv.domain.normalize`` give what the general rules give.

Each hot-path shortcut (printable ASCII identifiers, ...) is checked against the public
normalisers it stands in for, on hand-picked edge cases and on random text.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from scv.domain.normalize import (
    DEFAULT_CONFIG,
    _identifiers,
    normalize_email,
    normalize_id,
    normalize_phone,
    visible,
)

EDGE_VALUES = [
    "",
    " ",
    "a",
    " a",
    "a ",
    "a  b",
    "a\tb",
    "\x1ca\x1f",
    "ck-jane-1",
    "CK-Jane-1",
    "Jane.Doe@Example.COM",
    " jane.doe@example.com ",
    "jane doe@example.com",
    "jane\u200b@example.com",
    "\uff4a\uff41\uff4e\uff45@example.com",
    "07700 900123",
    "07700900123",
    "+447700900123",
    "+44 7700 900123",
    "0044 7700 900123",
    "not a phone",
    "null",
    "~!@#$%^&*()_+{}|:<>?",
    "é",
    "\x00",
    "\x7f",
]


def _expected(kind: str, value: str) -> tuple[list[list[str]], list[str]]:
    """Identifiers and warnings the general rules give for one field."""
    if not value.strip():
        return [], []
    if kind == "email":
        canonical = normalize_email(value)
    elif kind == "phone":
        canonical = normalize_phone(value, DEFAULT_CONFIG.default_region)
    else:
        canonical = normalize_id(value)
    return ([[kind, canonical]], []) if canonical else ([], [f"{kind}:invalid"])


def _identifiers_of(kind: str, value: str) -> tuple[list[list[str]], list[str]]:
    """What normalisation makes of an event stating only ``kind`` = ``value``."""
    warnings: list[str] = []
    found = _identifiers("callcenter", {kind: value}, "GB", DEFAULT_CONFIG, warnings)
    return [list(ident) for ident in found], warnings


def _check(value: str) -> None:
    for kind in ("customer_id", "email", "phone"):
        assert _identifiers_of(kind, value) == _expected(kind, value), (kind, value)


def test_identifier_shortcut_matches_general_rules_on_edge_cases() -> None:
    for value in EDGE_VALUES:
        _check(value)


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=30)
    | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=30)
    | st.from_regex(r"[a-z0-9.+ ]{1,12}@[a-z]{1,8}\.(com|co\.uk)", fullmatch=True)
    | st.from_regex(r"(\+44|0) ?7700 ?900[0-9]{3}", fullmatch=True)
)
def test_identifier_shortcut_matches_general_rules_on_random_text(value: str) -> None:
    _check(value)


def _normalize_id_general(value: str) -> str | None:
    """normalize_id without its printable-ASCII shortcut."""
    return " ".join(visible(value).split()) or None


def test_normalize_id_shortcut_matches_general_rule_on_edge_cases() -> None:
    for value in EDGE_VALUES:
        assert normalize_id(value) == _normalize_id_general(value), value


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=30)
    | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=30)
)
def test_normalize_id_shortcut_matches_general_rule_on_random_text(value: str) -> None:
    assert normalize_id(value) == _normalize_id_general(value)
