"""Normalisation: canonical identifiers, traits, consent and payload per source, and the
contract that any input bytes give an event or ``InvalidEvent`` — never a crash."""

from __future__ import annotations

from typing import Any

import email_validator
import orjson
import phonenumbers
import pytest
from examples import VALID_EXAMPLES, variant
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scv.domain.model import NormalizedEvent
from scv.domain.normalize import (
    CACHE_SIZE,
    MAX_REASON,
    InvalidEvent,
    NormalizeConfig,
    _email_memo,
    _phone_memo,
    normalize,
    normalize_email,
    normalize_id,
    normalize_phone,
)
from scv.schemas import validator

JANE_TS = 1714554000.0  # 2024-05-01T09:00:00Z


def run(source: str, event: dict[str, Any], config: NormalizeConfig | None = None) -> Any:
    raw = orjson.dumps(event)
    return normalize(source, raw) if config is None else normalize(source, raw, config)


def reason_of(source: str, raw: bytes | None, config: NormalizeConfig | None = None) -> str:
    with pytest.raises(InvalidEvent) as info:
        normalize(source, raw) if config is None else normalize(source, raw, config)
    return info.value.reason


# --- normalize_phone --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "+44 7700 900123",
        "07700 900123",
        "0044 7700-900-123",
        "(07700) 900123",
        "07700900123",
        "+447700900123",
        " +44 (0) 7700 900 123 ",
        "+44.7700.900.123",
    ],
)
def test_uk_phone_formats_become_e164(value: str) -> None:
    assert normalize_phone(value, "GB") == "+447700900123"


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("+33 6 12 34 56 78", "GB", "+33612345678"),
        ("(202) 555-0143", "US", "+12025550143"),
        ("+1 202 555 0143", "DE", "+12025550143"),
        ("07700 900123", "gb", "+447700900123"),
        ("030 901820", "DE", "+4930901820"),
    ],
)
def test_phone_regions(value: str, region: str, expected: str) -> None:
    assert normalize_phone(value, region) == expected


@pytest.mark.parametrize(
    ("value", "region"),
    [
        ("", "GB"),
        ("   ", "GB"),
        ("12", "GB"),
        ("not a phone", "GB"),
        ("+999 1234 5678", "GB"),
        ("07700 900123", "ZZ"),  # national number with an unknown region
        ("0770090012345678901", "GB"),  # too long
        ("+44 7700 9001", "GB"),  # too short
    ],
)
def test_impossible_phones_are_none(value: str, region: str) -> None:
    assert normalize_phone(value, region) is None


def test_phone_require_valid_rejects_unallocated_ranges() -> None:
    # Ofcom reserves 07700 900xxx for drama: possible (right length) but never allocated.
    assert normalize_phone("07700 900123", "GB") == "+447700900123"
    assert normalize_phone("07700 900123", "GB", require_valid=True) is None
    assert normalize_phone("+33 6 12 34 56 78", "GB", require_valid=True) == "+33612345678"


# --- normalize_email --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (" John.Doe@Example.COM ", "john.doe@example.com"),
        ("JANE+news@EXAMPLE.co.uk", "jane+news@example.co.uk"),
        ("x@münchen.de", "x@xn--mnchen-3ya.de"),
        ("X@MÜNCHEN.DE", "x@xn--mnchen-3ya.de"),
        ("x@xn--mnchen-3ya.de", "x@xn--mnchen-3ya.de"),
        ("Jörg@Bücher.de", "jörg@xn--bcher-kva.de"),
        ("\tjane@example.org\n", "jane@example.org"),
    ],
)
def test_emails_are_canonical(value: str, expected: str) -> None:
    assert normalize_email(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "jane",
        "jane@",
        "@example.com",
        "jane@localhost",
        "jane doe@example.com",
        "jane@@example.com",
        "jane@example..com",
        "Jane <jane@example.com>",
        '"quoted"@example.com',
        "jane@" + "a" * 250 + ".com",
        "jane@exa mple.com",
        "jane@-example.com",
    ],
)
def test_invalid_emails_are_none(value: str) -> None:
    assert normalize_email(value) is None


# --- normalize_id -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  C-1001 ", "C-1001"),
        ("ck\t 1", "ck 1"),
        ("a \n\n b  c", "a b c"),
        ("CaseKept", "CaseKept"),
        ("", None),
        (" \t\n", None),
    ],
)
def test_normalize_id(value: str, expected: str | None) -> None:
    assert normalize_id(value) == expected


# --- identifiers per source -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "event_id", "identifiers"),
    [
        ("web", "web-1", [("anonymous_id", "ck-jane-1")]),
        ("web", "web-2", [("device_id", "dev-ios-42"), ("anonymous_id", "ck-jane-1")]),
        (
            "web",
            "web-5",
            [
                ("customer_id", "C-1001"),
                ("email", "jane.doe@example.com"),
                ("anonymous_id", "ck-jane-1"),
            ],
        ),
        ("web", "web-6", [("customer_id", "C-1001"), ("anonymous_id", "ck-jane-2")]),
        ("email", "em-1", [("email", "jane.doe@example.com")]),
        ("email", "em-2", [("email", "jane.doe@example.com"), ("anonymous_id", "ck-jane-1")]),
        ("email", "em-3", [("customer_id", "C-1001"), ("email", "jane.doe@example.com")]),
        (
            "transactions",
            "tx-1",
            [
                ("customer_id", "C-1001"),
                ("email", "jane.doe@example.com"),
                ("phone", "+447700900123"),
                ("anonymous_id", "ck-jane-1"),
            ],
        ),
        ("transactions", "tx-2", [("customer_id", "C-1001")]),
        ("transactions", "tx-3", [("phone", "+33612345678")]),
        ("callcenter", "cc-1", [("phone", "+447700900123")]),
        (
            "callcenter",
            "cc-2",
            [
                ("customer_id", "C-2002"),
                ("email", "someone@example.net"),
                ("phone", "+447700900456"),
            ],
        ),
        ("callcenter", "cc-3", [("phone", "+447700900789")]),
    ],
)
def test_identifiers_per_source(
    source: str, event_id: str, identifiers: list[tuple[str, str]]
) -> None:
    event = run(source, variant(source, event_id))
    assert isinstance(event, NormalizedEvent)
    assert event.identifiers == identifiers
    assert event.source == source
    assert event.event_id == event_id
    assert "warnings" not in event.payload


def test_same_person_spelled_differently_gets_same_identifiers() -> None:
    web = run("web", variant("web", "web-5", email=" JANE.DOE@example.COM "))
    tx = run("transactions", variant("transactions", "tx-1", phone="0044 7700-900-123"))
    cc = run("callcenter", variant("callcenter", "cc-1", email="Jane.Doe@Example.com"))
    assert ("email", "jane.doe@example.com") in web.identifiers
    assert ("email", "jane.doe@example.com") in tx.identifiers
    assert ("email", "jane.doe@example.com") in cc.identifiers
    assert ("phone", "+447700900123") in tx.identifiers
    assert ("phone", "+447700900123") in cc.identifiers


def test_ids_are_trimmed_and_case_kept() -> None:
    event = run("web", variant("web", "web-6", customer_id="  C-1001 ", anonymous_id=" Ck  X "))
    assert event.identifiers == [("customer_id", "C-1001"), ("anonymous_id", "Ck X")]


def test_bad_email_is_dropped_with_a_warning_and_no_value() -> None:
    event = run("web", variant("web", "web-5", email="jane.doe@@example"))
    assert [t for t, _ in event.identifiers] == ["customer_id", "anonymous_id"]
    assert event.payload["warnings"] == ["email:invalid"]
    assert "email" not in event.traits
    assert "jane" not in orjson.dumps(event.payload["warnings"]).decode()


def test_impossible_phone_is_dropped_with_a_warning() -> None:
    event = run("transactions", variant("transactions", "tx-1", phone="12"))
    assert ("phone", "12") not in event.identifiers
    assert [t for t, _ in event.identifiers] == ["customer_id", "email", "anonymous_id"]
    assert event.payload["warnings"] == ["phone:invalid"]
    assert "phone" not in event.traits


def test_every_invalid_identifier_is_reported_once_each() -> None:
    event = run("callcenter", variant("callcenter", "cc-2", email="nope", phone="999"))
    assert event.identifiers == [("customer_id", "C-2002")]
    assert event.payload["warnings"] == ["email:invalid", "phone:invalid"]


def test_invalid_required_phone_leaves_an_event_without_identifiers() -> None:
    """Kept, not rejected: its name/birth date can still be matched probabilistically."""
    event = run("callcenter", variant("callcenter", "cc-1", phone="call back later"))
    assert event.identifiers == []
    assert event.traits["first_name"] == "jane"
    assert event.payload["warnings"] == ["phone:invalid"]


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_null_or_blank_optional_identifiers_are_absent_without_warning(blank: Any) -> None:
    event = run(
        "transactions",
        variant("transactions", "tx-1", customer_id=blank, email=blank, anonymous_id=blank),
    )
    assert event.identifiers == [("phone", "+447700900123")]
    assert "warnings" not in event.payload


def test_phone_region_comes_from_the_address_country() -> None:
    fr = run("transactions", variant("transactions", "tx-3"))
    assert fr.identifiers == [("phone", "+33612345678")]
    # Read as a UK number it is a different (possible, unallocated) number: no link.
    default = run("transactions", variant("transactions", "tx-3", address=...))
    assert default.identifiers == [("phone", "+44612345678")]
    strict = NormalizeConfig(phone_require_valid=True)
    assert (
        run("transactions", variant("transactions", "tx-3", address=...), strict).identifiers == []
    )


def test_default_region_is_configurable() -> None:
    event = variant("callcenter", "cc-3", phone="06 12 34 56 78")
    assert run("callcenter", event).identifiers != [("phone", "+33612345678")]
    fr = run("callcenter", event, NormalizeConfig(default_region="FR"))
    assert fr.identifiers == [("phone", "+33612345678")]


def test_strict_phone_config() -> None:
    event = run(
        "callcenter", variant("callcenter", "cc-1"), NormalizeConfig(phone_require_valid=True)
    )
    assert event.identifiers == []
    assert event.payload["warnings"] == ["phone:invalid"]


# --- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp",
    [
        "2024-05-01T09:00:00Z",
        "2024-05-01T09:00:00z",
        "2024-05-01t09:00:00+00:00",
        "2024-05-01T10:00:00+01:00",
        "2024-05-01T05:00:00-04:00",
        "2024-05-01T10:00:00+0100",
        "2024-05-01T10:00:00+01",
        "2024-05-01T09:00:00",  # naive = UTC
        "2024-05-01 09:00",
        "2024-05-01T09:00:00.000000000Z",
        JANE_TS,
        int(JANE_TS),
        int(JANE_TS * 1000),  # epoch milliseconds
        JANE_TS * 1000,
    ],
)
def test_timestamps(timestamp: Any) -> None:
    assert run("web", variant("web", "web-1", timestamp=timestamp)).ts == JANE_TS


def test_fractional_timestamps() -> None:
    assert run("web", variant("web", "web-1", timestamp=JANE_TS + 0.25)).ts == JANE_TS + 0.25
    iso = run("web", variant("web", "web-1", timestamp="2024-05-01T09:00:00.250Z"))
    assert iso.ts == JANE_TS + 0.25


@pytest.mark.parametrize(
    "timestamp",
    ["2024-02-30T00:00:00Z", "2024-01-01T25:00:00Z", "2024-13-01T00:00:00Z", "2024-01-01T00:61Z"],
)
def test_impossible_dates_are_bad_timestamps(timestamp: str) -> None:
    raw = orjson.dumps(variant("web", "web-1", timestamp=timestamp))
    assert reason_of("web", raw) == "bad_timestamp"


# --- traits -----------------------------------------------------------------------------------


def test_transaction_traits() -> None:
    event = run("transactions", variant("transactions", "tx-1", first_name="  Mary  Jane "))
    assert event.traits == {
        "first_name": "Mary Jane",
        "last_name": "Doe",
        "birth_date": "1985-03-14",
        "address": {
            "street": "1 High Street",
            "city": "London",
            "postcode": "SW1A 1AA",
            "country": "GB",
        },
        "phone": "+447700900123",
        "email": "jane.doe@example.com",
    }


def test_callcenter_traits_keep_case_and_put_postcode_in_address() -> None:
    event = run("callcenter", variant("callcenter", "cc-1", postcode=" sw1a   1aa "))
    assert event.traits == {
        "first_name": "jane",
        "last_name": "DOE",
        "birth_date": "1985-03-14",
        "address": {"postcode": "SW1A 1AA"},
        "phone": "+447700900123",
    }


def test_a_withheld_caller_with_a_stated_address_and_national_id() -> None:
    """No phone: the call keeps its customer reference and what the caller said."""
    raw = variant(
        "callcenter",
        "cc-1",
        phone=None,
        customer_id="crm-77",
        postcode="ignored when the address has one",
        national_id="AB 12 34 56 C",
        address={"street": "4 Mill Lane", "line2": "Flat 2", "region": "WY", "postcode": "ls4 2ab"},
    )
    event = run("callcenter", raw)
    assert event.identifiers == [("customer_id", "crm-77")]
    assert event.traits["address"] == {
        "street": "4 Mill Lane",
        "line2": "Flat 2",
        "region": "WY",
        "postcode": "LS4 2AB",
    }
    assert event.traits["national_id"] == "AB123456C"


def test_national_id_never_reaches_the_profile() -> None:
    from scv.domain.profile import apply_event, new_state

    event = run("callcenter", variant("callcenter", "cc-1", national_id="123-45-6789"))
    assert event.traits["national_id"] == "123456789"
    state = new_state("p", event.ts)
    apply_event(state, event, event.identifiers, event.ts, 60.0)
    assert "national_id" not in state.traits and state.traits["first_name"] == "jane"


def test_web_traits_come_from_signup_traits() -> None:
    event = run("web", variant("web", "web-5"))
    assert event.traits == {
        "first_name": "Jane",
        "last_name": "Doe",
        "email": "jane.doe@example.com",
    }


def test_only_present_traits_are_set() -> None:
    assert run("web", variant("web", "web-1")).traits == {}
    assert run("callcenter", variant("callcenter", "cc-3")).traits == {"phone": "+447700900789"}
    blanks = variant("transactions", "tx-2", first_name="  ", birth_date="", address={"city": None})
    assert run("transactions", blanks).traits == {}


def test_impossible_birth_date_is_dropped_with_a_warning() -> None:
    event = run("callcenter", variant("callcenter", "cc-1", birth_date="1985-02-30"))
    assert "birth_date" not in event.traits
    assert event.payload["warnings"] == ["birth_date:invalid"]


def test_country_names_are_kept_and_codes_upper_cased() -> None:
    address = {"city": "Lyon", "country": "fr"}
    code = run("transactions", variant("transactions", "tx-3", address=address))
    assert code.traits["address"] == {"city": "Lyon", "country": "FR"}
    name = run("transactions", variant("transactions", "tx-3", address={"country": "France"}))
    assert name.traits["address"] == {"country": "France"}


# --- consent ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "event", "consent"),
    [
        ("web", variant("web", "web-5"), {"marketing": True, "analytics": True}),
        ("web", variant("web", "web-7"), {"marketing": False}),
        ("web", variant("web", "web-1"), {}),
        ("email", variant("email", "em-3"), {"marketing": True}),
        ("email", variant("email", "em-4"), {"marketing": False}),
        ("email", variant("email", "em-4", type="complaint"), {"marketing": False}),
        ("email", variant("email", "em-1"), {}),
        ("email", variant("email", "em-5"), {}),
        ("transactions", variant("transactions", "tx-1"), {"marketing": True}),
        (
            "transactions",
            variant("transactions", "tx-1", marketing_opt_in=False),
            {"marketing": False},
        ),
        ("transactions", variant("transactions", "tx-2"), {}),
        ("callcenter", variant("callcenter", "cc-1"), {"marketing": True}),
        (
            "callcenter",
            variant("callcenter", "cc-1", consent={"marketing": False}),
            {"marketing": False},
        ),
        ("callcenter", variant("callcenter", "cc-2"), {}),
    ],
)
def test_consent_mapping(source: str, event: dict[str, Any], consent: dict[str, bool]) -> None:
    assert run(source, event).consent == consent


# --- payload ----------------------------------------------------------------------------------


def test_web_payload() -> None:
    cart = run("web", variant("web", "web-3", cart={"cart_id": " cart-1 ", "currency": "gbp"}))
    assert cart.payload == {
        "session_id": "sess-1",
        "cart": {"cart_id": "cart-1", "currency": "GBP"},
    }
    page = run("web", variant("web", "web-1"))
    assert page.payload == {
        "session_id": "sess-1",
        "page": {"url": "https://shop.example/", "title": "Home", "referrer": ""},
    }
    product = run("web", variant("web", "web-2"))
    assert product.payload["product"] == {"sku": "SKU-1", "name": "Kettle", "price": 29.99}


def test_unknown_top_level_fields_are_not_forwarded() -> None:
    event = run("web", variant("web", "web-7"))
    assert "campaign" not in event.payload
    assert event.payload == {"session_id": "sess-9"}


def test_email_payload() -> None:
    assert run("email", variant("email", "em-2")).payload == {
        "campaign_id": "spring-sale",
        "link_url": "https://shop.example/kettles",
    }
    assert run("email", variant("email", "em-5")).payload == {}  # link_url null is left out


def test_transactions_payload() -> None:
    event = run("transactions", variant("transactions", "tx-1", currency="gbp", cart_id=" cart-1"))
    assert event.payload == {
        "order_id": "O-5001",
        "items": [{"sku": "SKU-1", "name": "Kettle", "qty": 1, "price": 29.99}],
        "total": 29.99,
        "currency": "GBP",
        "cart_id": "cart-1",
    }
    assert run("transactions", variant("transactions", "tx-2")).payload["total"] == -29.99


def test_callcenter_payload_marks_cancel_intent() -> None:
    event = run("callcenter", variant("callcenter", "cc-1"))
    assert event.payload == {
        "agent_id": "agent-7",
        "duration_s": 312.5,
        "disposition": {
            "code": "cancel_request",
            "notes": "Wants to cancel the subscription.",
            "cancel_intent": True,
        },
    }
    flagged = run("callcenter", variant("callcenter", "cc-2", disposition={"code": "other"}))
    assert flagged.payload["disposition"] == {"code": "other"}
    explicit = {"code": "complaint", "cancel_intent": True}
    assert run("callcenter", variant("callcenter", "cc-2", disposition=explicit)).payload[
        "disposition"
    ] == {"code": "complaint", "cancel_intent": True}
    assert run("callcenter", variant("callcenter", "cc-3")).payload == {}


def test_event_round_trips_through_the_wire_format() -> None:
    for source, examples in VALID_EXAMPLES.items():
        for raw in examples:
            event = run(source, raw)
            wire = orjson.loads(orjson.dumps(event.to_dict()))
            assert NormalizedEvent.from_dict(wire) == event
            validator("identity.events.v1")(wire)


# --- invalid input reasons --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty"),
        (b"", "empty"),
        (b"{", "invalid_json"),
        (b"\xff\xfe{}", "invalid_json"),
        (b'{"event_id": "\xc3\x28"}', "invalid_json"),  # invalid UTF-8 inside a string
        (b'{"a": "\\ud800"}', "invalid_json"),  # lone surrogate
        (b'{"timestamp": NaN}', "invalid_json"),
        (b'{"total": 1e400}', "invalid_json"),
        (b"[" * 5000 + b"]" * 5000, "invalid_json"),
        (b'{"a":' * 2000 + b"1" + b"}" * 2000, "invalid_json"),
        (b"{} {}", "invalid_json"),
        (b"[]", "not_an_object"),
        (b'"event"', "not_an_object"),
        (b"42", "not_an_object"),
        (b"null", "not_an_object"),
        (b"true", "not_an_object"),
    ],
)
def test_invalid_input_reasons(raw: bytes | None, reason: str) -> None:
    assert reason_of("web", raw) == reason


def test_too_large_is_checked_before_decoding() -> None:
    event = variant("web", "web-1")
    raw = orjson.dumps(event)
    assert normalize("web", raw, NormalizeConfig(max_bytes=len(raw))).event_id == "web-1"
    assert reason_of("web", raw, NormalizeConfig(max_bytes=len(raw) - 1)) == "too_large"
    assert reason_of("web", b"{" * 70000) == "too_large"  # default 64 KiB, not invalid_json


@pytest.mark.parametrize(
    ("source", "event", "reason"),
    [
        (
            "web",
            variant("web", "web-3", cart={"items": []}),
            "schema: data.cart must contain ['cart_id'] properties",
        ),
        ("web", variant("web", "web-3", cart=...), "schema: data must contain ['cart'] properties"),
        (
            "web",
            variant("web", "web-1", anonymous_id=...),
            "schema: data must contain ['anonymous_id'] properties",
        ),
        ("email", variant("email", "em-1", campaign_id=...), "schema: data must contain"),
        ("transactions", variant("transactions", "tx-1", items=[]), "schema: data.items must"),
        ("callcenter", variant("callcenter", "cc-1", type="sms"), "schema: data.type must be one"),
        ("web", variant("web", "web-1", timestamp="now"), "schema: data.timestamp"),
        ("web", variant("web", "web-1", timestamp=1e20), "schema: data.timestamp"),
    ],
)
def test_schema_reasons(source: str, event: dict[str, Any], reason: str) -> None:
    assert reason_of(source, orjson.dumps(event)).startswith(reason)


def test_schema_reason_is_short_and_free_of_personal_values() -> None:
    secret = "jane.doe.secret@example.com"
    event = variant("callcenter", "cc-1", phone=secret * 3, email=123)
    reason = reason_of("callcenter", orjson.dumps(event))
    assert reason.startswith("schema: data.")
    assert secret not in reason
    noisy = variant("web", "web-1", page={"k" * 1000: 1})
    assert len(reason_of("web", orjson.dumps(noisy))) <= MAX_REASON


def test_unknown_source_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown source"):
        normalize("fax", b"{}")


def test_huge_integers_are_schema_errors() -> None:
    raw = orjson.dumps(variant("transactions", "tx-1", total=...))[:-1] + b',"total":' + b"9" * 40
    assert reason_of("transactions", raw + b"}").startswith("schema: data.total")


def test_deep_nesting_in_ignored_fields_is_harmless() -> None:
    deep = b'{"d":' * 1000 + b"1" + b"}" * 1000  # below orjson's 1024 limit
    raw = orjson.dumps(variant("web", "web-1"))[:-1] + b',"extra":' + deep + b"}"
    event = normalize("web", raw)
    assert event.identifiers == [("anonymous_id", "ck-jane-1")]


def test_control_characters_are_dropped_from_identifiers() -> None:
    """(See test_normalize_hostile.py: controls are invisible and no id issuer means them.)"""
    event = run("web", variant("web", "web-1", anonymous_id="ck\x00\x01-1", session_id="\x7fs"))
    assert event.identifiers == [("anonymous_id", "ck-1")]
    assert event.payload["session_id"] == "s"
    assert orjson.loads(orjson.dumps(event.to_dict()))["identifiers"] == [["anonymous_id", "ck-1"]]


# --- properties -------------------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
PHONE_TEXT = st.text(alphabet="0123456789 +-().#x*", max_size=25)
FIELDS = sorted(
    {key for examples in VALID_EXAMPLES.values() for event in examples for key in event}
    | {"cart", "consent", "traits", "address", "disposition", "items", "phone", "email"}
)


def assert_event_or_invalid(source: str, raw: bytes) -> None:
    """The contract every agent relies on, plus: the output is valid on the next topic."""
    try:
        event = normalize(source, raw)
    except InvalidEvent as exc:
        assert exc.reason
        assert len(exc.reason) <= MAX_REASON
        assert not exc.reason.startswith("internal_error"), exc.reason
        return
    assert isinstance(event, NormalizedEvent)
    wire = orjson.loads(orjson.dumps(event.to_dict()))
    validator("identity.events.v1")(wire)
    assert len({tuple(i) for i in wire["identifiers"]}) == len(wire["identifiers"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.sampled_from(sorted(VALID_EXAMPLES)), raw=st.binary(max_size=300))
def test_any_bytes_give_an_event_or_invalid(source: str, raw: bytes) -> None:
    assert_event_or_invalid(source, raw)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.sampled_from(sorted(VALID_EXAMPLES)),
    obj=st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=8),
)
def test_any_json_object_gives_an_event_or_invalid(source: str, obj: dict[str, Any]) -> None:
    assert_event_or_invalid(source, orjson.dumps(obj))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    source=st.sampled_from(sorted(VALID_EXAMPLES)),
    changes=st.dictionaries(
        st.sampled_from(FIELDS), JSON_VALUES | st.emails() | PHONE_TEXT, max_size=4
    ),
)
def test_mutated_valid_events_give_an_event_or_invalid(
    data: st.DataObject, source: str, changes: dict[str, Any]
) -> None:
    """Random values in known fields reach deep into normalisation (random objects rarely
    pass the schema)."""
    base = data.draw(st.sampled_from(VALID_EXAMPLES[source]))
    assert_event_or_invalid(source, orjson.dumps({**base, **changes}))


REGIONS = st.sampled_from(["GB", "US", "FR", "DE", "IN", "BR", "ZZ", "gb"])


@settings(max_examples=500)
@given(value=PHONE_TEXT | st.text(max_size=25), region=REGIONS)
def test_normalize_phone_is_idempotent(value: str, region: str) -> None:
    once = normalize_phone(value, region)
    if once is not None:
        assert once.startswith("+")
        assert once[1:].isdigit()
        assert normalize_phone(once, region) == once
        assert normalize_phone(once, "US") == once  # E.164 no longer depends on the region


@settings(max_examples=300)
@given(value=st.emails() | st.text(max_size=40) | st.emails().map(str.upper))
def test_normalize_email_is_idempotent(value: str) -> None:
    once = normalize_email(value)
    if once is not None:
        assert once == once.strip()
        assert once.isascii() or "@" in once
        assert normalize_email(once) == once


@given(value=st.text(max_size=40))
def test_normalize_id_is_idempotent(value: str) -> None:
    once = normalize_id(value)
    if once is not None:
        assert normalize_id(once) == once
        assert once == once.strip()


# --- memoisation ------------------------------------------------------------------------------


def reference_email(value: str) -> str | None:
    """normalize_email as first written, without a memo: the memo must never change a result."""
    try:
        result = email_validator.validate_email(value.strip().lower(), check_deliverability=False)
    except (email_validator.EmailNotValidError, ValueError, UnicodeError):
        return None
    domain = result.ascii_domain or result.domain
    return f"{result.local_part.lower()}@{domain.lower()}"


def reference_phone(value: str, region: str, require_valid: bool) -> str | None:
    """normalize_phone as first written, without a memo."""
    try:
        number = phonenumbers.parse(value.strip(), region.upper())
    except phonenumbers.NumberParseException:
        return None
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    if require_valid and not phonenumbers.is_valid_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    again = phonenumbers.parse(e164, None)
    if phonenumbers.format_number(again, phonenumbers.PhoneNumberFormat.E164) != e164:
        return None
    return e164


@settings(max_examples=300)
@given(value=PHONE_TEXT | st.text(max_size=25), region=REGIONS, require_valid=st.booleans())
def test_memoised_phone_equals_the_reference(value: str, region: str, require_valid: bool) -> None:
    expected = reference_phone(value, region, require_valid)
    for _ in range(2):  # a miss (usually), then a hit
        assert normalize_phone(value, region, require_valid=require_valid) == expected


@settings(max_examples=300)
@given(value=st.emails() | st.text(max_size=40) | st.emails().map(str.upper))
def test_memoised_email_equals_the_reference(value: str) -> None:
    expected = reference_email(value)
    for _ in range(2):
        assert normalize_email(value) == expected


def test_phone_memo_keys_on_region_and_strictness() -> None:
    assert normalize_phone("06 12 34 56 78", "FR") == "+33612345678"
    assert normalize_phone("06 12 34 56 78", "GB") == "+44612345678"
    assert normalize_phone("07700 900123", "gb") == "+447700900123"
    assert normalize_phone("07700 900123", "GB", require_valid=True) is None
    assert normalize_phone("07700 900123", "US") is None
    strict = NormalizeConfig(phone_require_valid=True)
    for config in (None, strict, None):
        event = run("callcenter", variant("callcenter", "cc-1"), config)
        assert bool(event.identifiers) is (config is None)


def test_spellings_of_one_email_share_a_memo_entry_and_memos_are_bounded() -> None:
    assert normalize_email(" Memo.Test@Example.COM ") == "memo.test@example.com"
    hits = _email_memo.cache_info().hits
    assert normalize_email("memo.test@example.com\t") == "memo.test@example.com"
    assert _email_memo.cache_info().hits == hits + 1
    assert _email_memo.cache_info().maxsize == CACHE_SIZE
    assert _phone_memo.cache_info().maxsize == CACHE_SIZE


def test_overlong_values_are_not_memoised() -> None:
    emails, phones = _email_memo.cache_info().currsize, _phone_memo.cache_info().currsize
    assert normalize_email("a" * 400 + "@example.com") is None
    assert normalize_phone("0" * 400, "GB") is None
    assert _email_memo.cache_info().currsize == emails
    assert _phone_memo.cache_info().currsize == phones
