"""Raw source bytes -> :class:`NormalizedEvent`, or :class:`InvalidEvent` with a short reason.

This is the only place that looks at the four raw formats. Everything downstream (resolver,
profiles, triggers) sees one shape with canonical identifiers, so two sources that spell the
same phone or email differently still link. It is pure (no Faust, no I/O) so the normalise
agent stays a thin loop and every rule here is unit-testable.

Contract: for *any* input bytes, :func:`normalize` returns an event or raises
:class:`InvalidEvent`; the agent routes the latter to ``<topic>.dlq`` with ``reason`` as a
header. A poison message must never crash a worker, so unexpected errors are converted too
(reason ``internal_error:<ExceptionType>``; it signals a bug here, not bad input).

Reasons never contain raw field values: DLQ headers and logs are read by people who must not
see personal data. Schema messages carry only the field path and the rule broken.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import email_validator
import fastjsonschema
import orjson
import phonenumbers

from scv.domain.model import SOURCES, Identifier, NormalizedEvent
from scv.schemas import schema_reason, validator

__all__ = [
    "CACHE_SIZE",
    "DEFAULT_CONFIG",
    "IDENTIFIER_FIELDS",
    "InvalidEvent",
    "NormalizeConfig",
    "canonical_value",
    "normalize",
    "normalize_email",
    "normalize_id",
    "normalize_phone",
    "visible",
]

#: Longest reason put on a DLQ header; schema messages can list many enum values.
MAX_REASON = 200

#: Entries per memo of a pure value normaliser (emails, phones, ...): bounded, so memory does
#: not grow with the stream, yet large enough to hold the recently active customers.
CACHE_SIZE = 65536

#: Epoch numbers above this are milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
_MS_THRESHOLD = 1e11

#: Which top-level fields of each source are identifiers, in resolver priority order
#: (most specific first). The field name is also the identifier type.
IDENTIFIER_FIELDS: dict[str, tuple[str, ...]] = {
    "web": ("customer_id", "email", "device_id", "anonymous_id"),
    "email": ("customer_id", "email", "anonymous_id"),
    "transactions": ("customer_id", "email", "phone", "anonymous_id"),
    "callcenter": ("customer_id", "email", "phone"),
}


class InvalidEvent(Exception):
    """The raw message cannot become an event; ``reason`` is short and machine-friendly
    (``invalid_json``, ``too_large``, ``not_an_object``, ``bad_timestamp``, ``empty``,
    ``schema: <path> <rule>``) so DLQ consumers can group and count failures."""

    def __init__(self, reason: str) -> None:
        self.reason = reason[:MAX_REASON]
        super().__init__(self.reason)


@dataclass(frozen=True)
class NormalizeConfig:
    """Knobs of normalisation.

    ``default_region`` is the ISO country used to read national phone numbers ("07700 …")
    when the event gives no country. ``max_bytes`` bounds the work a single message can cause.
    ``phone_require_valid`` additionally demands that libphonenumber knows the number range;
    off by default because its metadata lags real allocations and rejects the reserved
    fiction/test ranges (UK 07700 900xxx) that demo and test data use — the length check
    (``is_possible``) already rejects garbage, and governance blocks placeholder numbers.
    """

    default_region: str = "GB"
    max_bytes: int = 65536
    phone_require_valid: bool = False


DEFAULT_CONFIG = NormalizeConfig()


# --------------------------------------------------------------------------------------------
# Value normalisers (public: connectors, commands and tests use the same rules)
# --------------------------------------------------------------------------------------------


#: Unicode categories no identifier or name keeps: controls (NUL, ESC, C1) and format
#: characters (zero-width spaces and joiners, bidi overrides, BOM, soft hyphen, tags).
_INVISIBLE = frozenset({"Cc", "Cf"})


def visible(value: str) -> str:
    """``value`` as a person reads it: control and format characters removed, then NFKC.

    Copy and paste brings zero-width spaces and bidi marks into ids and addresses, and an
    input method brings fullwidth letters: invisible to the person who typed them, they
    would make one value two keys, or let a placeholder (``null`` followed by a zero-width
    space, or in fullwidth letters) escape the blocked list. NFKC also folds compatibility
    forms (ligatures, fullwidth letters, ``@`` and dots), which no identifier-issuing system
    means as a different value. Whitespace controls (tab, newline) are kept for the callers'
    whitespace collapsing. Printable ASCII, nearly every value, is returned as is.
    """
    if value.isascii() and value.isprintable():
        return value
    kept = "".join(ch for ch in value if ch.isspace() or unicodedata.category(ch) not in _INVISIBLE)
    return unicodedata.normalize("NFKC", kept)


def normalize_id(value: str) -> str | None:
    """Trim and collapse inner whitespace of the :func:`visible` value; None when nothing
    is left.

    Case is kept: cookie and customer ids are case-sensitive in the systems that issue them.
    Printable ASCII without a space (most ids, cart ids, names) is returned as it is: the
    space is the only whitespace character in printable ASCII, so there is nothing to do.
    """
    if value.isascii() and value.isprintable() and " " not in value:
        return value or None
    return " ".join(visible(value).split()) or None


def normalize_email(value: str) -> str | None:
    """Canonical address for matching, or None when it is not a syntactically valid address.

    The whole address is lower-cased (local parts are case-insensitive at every mainstream
    provider, and a case difference must not split a person in two) and an internationalised
    domain is converted to its ASCII (IDNA) form so both spellings meet. Invisible and
    compatibility characters are folded first (:func:`visible`): ``jane@example.com`` typed
    in fullwidth letters is ``jane@example.com``. Homoglyphs from other scripts (a Cyrillic
    ``a``) are different letters and stay different addresses. No DNS lookups: this runs in
    the hot path.
    """
    return _email(visible(value).strip().lower())


def _email(value: str) -> str | None:
    """:func:`normalize_email` of a trimmed, lower-cased value, memoised when short enough."""
    return _email_memo(value) if len(value) <= _MEMO_MAX_LEN else _email_canonical(value)


def _email_canonical(value: str) -> str | None:
    try:
        result = email_validator.validate_email(value, check_deliverability=False)
    except (email_validator.EmailNotValidError, ValueError, UnicodeError):
        return None
    domain = result.ascii_domain or result.domain
    return f"{result.local_part.lower()}@{domain.lower()}"


def normalize_phone(value: str, region: str, *, require_valid: bool = False) -> str | None:
    """E.164 form (``+447700900123``) or None.

    ``region`` reads national formats; international ones (``+44``, ``0044``) ignore it.
    The number must be possible for its country (right length); ``require_valid`` also demands
    an allocated range (see :class:`NormalizeConfig`).
    """
    return _phone(value.strip(), region.upper(), require_valid)


def _phone(value: str, region: str, require_valid: bool) -> str | None:
    """:func:`normalize_phone` of a trimmed value and an upper-case region, memoised when
    short enough."""
    if len(value) <= _MEMO_MAX_LEN:
        return _phone_memo(value, region, require_valid)
    return _phone_canonical(value, region, require_valid)


def _phone_canonical(value: str, region: str, require_valid: bool) -> str | None:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    if require_valid and not phonenumbers.is_valid_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    # A few degenerate inputs (e.g. national-prefix zeros) format to an E.164 string that
    # parses back to a different number; an identifier must be a fixed point, so refuse them.
    return e164 if _is_fixed_point(e164) else None


@lru_cache(maxsize=CACHE_SIZE)
def _is_fixed_point(e164: str) -> bool:
    """Whether ``e164`` parses back to itself (memoised on its own: an E.164 string is short,
    and the many spellings of one number that miss :data:`_phone_memo` share it)."""
    again = phonenumbers.parse(e164, None)
    return phonenumbers.format_number(again, phonenumbers.PhoneNumberFormat.E164) == e164


# Memos of the two expensive normalisers (email-validator ~15 µs, libphonenumber ~20 µs a call;
# the same customers write again and again). Both are pure functions of their arguments, and
# the keys are the already trimmed/case-folded values the functions read, so different
# spellings of one value share an entry. Values longer than the schemas allow for an email are
# not memoised, so an entry is small and :data:`CACHE_SIZE` bounds the memory. (email-validator
# reads its module-level defaults on each call; changing them at run time would not reach the
# memo, and nothing here does.)
_MEMO_MAX_LEN = 320
_email_memo = lru_cache(maxsize=CACHE_SIZE)(_email_canonical)
_phone_memo = lru_cache(maxsize=CACHE_SIZE)(_phone_canonical)


# --------------------------------------------------------------------------------------------
# normalize()
# --------------------------------------------------------------------------------------------


def normalize(
    source: str, raw: bytes | None, config: NormalizeConfig = DEFAULT_CONFIG
) -> NormalizedEvent:
    """Decode, validate against ``raw.<source>.v1`` and canonicalise one raw message.

    ``source`` is one of :data:`SOURCES`; an unknown source is a wiring bug, not bad data, so it
    raises ``ValueError`` rather than sending every message to the DLQ.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
    try:
        return _normalize(source, raw, config)
    except InvalidEvent:
        raise
    except Exception as exc:  # a bug here must not stop the stream; the DLQ keeps the bytes
        raise InvalidEvent(f"internal_error:{type(exc).__name__}") from exc


def _normalize(source: str, raw: bytes | None, config: NormalizeConfig) -> NormalizedEvent:
    doc = _decode(raw, config.max_bytes)
    _validate(source, doc)
    ts = _parse_timestamp(doc["timestamp"])
    warnings: list[str] = []
    region = _phone_region(source, doc, config.default_region)
    identifiers = _identifiers(source, doc, region, config, warnings)
    traits = _traits(source, doc, identifiers, warnings)
    payload = _PAYLOADS[source](doc)
    if warnings:
        payload["warnings"] = warnings
    return NormalizedEvent(
        event_id=doc["event_id"],
        source=source,
        type=doc["type"],
        ts=ts,
        identifiers=identifiers,
        traits=traits,
        consent=_consent(source, doc),
        payload=payload,
    )


def _decode(raw: bytes | None, max_bytes: int) -> dict[str, Any]:
    """Bytes -> JSON object; size is checked first so a huge message costs nothing to refuse."""
    if not raw:
        raise InvalidEvent("empty")
    if len(raw) > max_bytes:
        raise InvalidEvent("too_large")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:  # also invalid UTF-8, lone surrogates, depth > 1024
        raise InvalidEvent("invalid_json") from None
    if not isinstance(doc, dict):
        raise InvalidEvent("not_an_object")
    return doc


#: Compiled ``raw.<source>.v1`` validators by source (filled on first use, not at import).
_VALIDATORS: dict[str, Callable[[Any], Any]] = {}


def _validate(source: str, doc: dict[str, Any]) -> None:
    """Schema check; the message names the path and rule (fastjsonschema omits the value)."""
    check = _VALIDATORS.get(source)
    if check is None:
        check = _VALIDATORS[source] = validator(f"raw.{source}.v1")
    try:
        check(doc)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise InvalidEvent(schema_reason(exc)) from None


def _parse_timestamp(value: Any) -> float:
    """ISO-8601 (offset honoured, naive = UTC) or epoch seconds/milliseconds -> epoch seconds."""
    if isinstance(value, str):  # the usual case first
        ts = _parse_iso(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ts = float(value)
        if ts > _MS_THRESHOLD:
            ts /= 1000.0
    else:
        raise InvalidEvent("bad_timestamp")
    if not math.isfinite(ts):
        raise InvalidEvent("bad_timestamp")
    return ts


def _parse_iso(value: str) -> float:
    try:
        moment = datetime.fromisoformat(value.upper())  # 3.11 rejects lower-case 't'/'z'
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (ValueError, OverflowError, OSError):
        raise InvalidEvent("bad_timestamp") from None


def _phone_region(source: str, doc: dict[str, Any], default_region: str) -> str:
    """Read national phone numbers with the order's own country when it gives an ISO code:
    a French order's "06 12 34 56 78" is not a UK number."""
    if source != "transactions":
        return default_region
    address = doc.get("address")
    country = address.get("country") if isinstance(address, dict) else None
    if isinstance(country, str):
        code = country.strip().upper()
        if code in phonenumbers.SUPPORTED_REGIONS:
            return code
    return default_region


def _identifiers(
    source: str,
    doc: dict[str, Any],
    region: str,
    config: NormalizeConfig,
    warnings: list[str],
) -> list[Identifier]:
    """Canonical identifiers in priority order, de-duplicated.

    Null, empty and blank values mean "unknown" and are skipped silently; a value that is
    present but unusable (bad email, impossible phone) becomes a warning naming only the type,
    so one bad field does not discard the rest of the event.
    """
    found: list[Identifier] = []
    for kind in IDENTIFIER_FIELDS[source]:
        value = doc.get(kind)
        if not isinstance(value, str):
            continue
        # _canonical() inlined, with the trimming the normalisers would repeat done once.
        # Printable ASCII without a space (nearly every value) is already trimmed, visible
        # and single-spaced: in printable ASCII the space is the only whitespace character.
        if value.isascii() and value.isprintable() and " " not in value:
            if not value:
                continue
            if kind == "email":
                canonical = _email(value.lower())
            elif kind == "phone":
                canonical = _phone(value, region.upper(), config.phone_require_valid)
            else:
                canonical = value
        else:
            stripped = value.strip()
            if not stripped:
                continue
            if kind == "email":
                canonical = _email(visible(stripped).strip().lower())
            elif kind == "phone":
                canonical = _phone(stripped, region.upper(), config.phone_require_valid)
            else:
                canonical = " ".join(visible(stripped).split()) or None
        if canonical is None:
            warnings.append(f"{kind}:invalid")
        else:
            ident = (kind, canonical)
            if ident not in found:
                found.append(ident)
    return found


def canonical_value(
    kind: str, value: str, config: NormalizeConfig = DEFAULT_CONFIG, region: str | None = None
) -> str | None:
    """The normalised form of one identifier value, as events get it (commands use this)."""
    return _canonical(kind, value, region or config.default_region, config)


def _canonical(kind: str, value: str, region: str, config: NormalizeConfig) -> str | None:
    if kind == "email":
        return normalize_email(value)
    if kind == "phone":
        return normalize_phone(value, region, require_valid=config.phone_require_valid)
    return normalize_id(value)


# --------------------------------------------------------------------------------------------
# Traits and consent
# --------------------------------------------------------------------------------------------


def _clean_text(value: Any) -> str | None:
    """Trim and collapse whitespace of a free-text field; keep case (names are shown to people)."""
    return normalize_id(value) if isinstance(value, str) else None


#: Where each source states a person's name and birth date (fields outside a source's schema
#: are never read: they are unvalidated and unbounded).
_NAME_HOLDER: dict[str, str | None] = {
    "web": "traits",
    "email": None,
    "transactions": "",
    "callcenter": "",
}


def _traits(
    source: str, doc: dict[str, Any], identifiers: list[Identifier], warnings: list[str]
) -> dict[str, Any]:
    """Personal attributes for matching and the profile; only those the event states."""
    traits: dict[str, Any] = _names(source, doc)
    if source in ("transactions", "callcenter"):
        birth_date = _birth_date(doc.get("birth_date"), warnings)
        if birth_date:
            traits["birth_date"] = birth_date
    address = _address(source, doc)
    if address:
        traits["address"] = address
    national_id = _national_id(doc.get("national_id")) if source in _NATIONAL_ID else None
    if national_id:
        traits["national_id"] = national_id
    phone = email = None
    for kind, value in identifiers:  # the first of each kind
        if kind == "phone":
            if phone is None:
                phone = value
        elif kind == "email" and email is None:
            email = value
    if phone:
        traits["phone"] = phone
    if email:
        traits["email"] = email
    return traits


def _names(source: str, doc: dict[str, Any]) -> dict[str, Any]:
    holder = _NAME_HOLDER[source]
    if holder is None:
        return {}
    names = doc.get(holder) if holder else doc
    if not isinstance(names, dict):
        return {}
    found = {key: _clean_text(names.get(key)) for key in ("first_name", "last_name")}
    return {key: text for key, text in found.items() if text}


def _birth_date(value: Any, warnings: list[str]) -> str | None:
    """A real calendar date (the schema only checks the shape); impossible ones are dropped."""
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        warnings.append("birth_date:invalid")
        return None


def _address(source: str, doc: dict[str, Any]) -> dict[str, str]:
    """Orders and calls carry an address object (a call may give just a top-level
    postcode); other sources nothing."""
    if source not in ("transactions", "callcenter"):
        return {}
    raw = doc.get("address")
    raw = dict(raw) if isinstance(raw, dict) else {}
    if source == "callcenter" and not raw.get("postcode"):
        raw["postcode"] = doc.get("postcode")
    address: dict[str, str] = {}
    for key in ("street", "line2", "city", "region", "postcode", "country"):
        text = _clean_text(raw.get(key))
        if not text:
            continue
        if key == "postcode" or (key == "country" and len(text) == 2):
            text = text.upper()  # "sw1a 1aa" == "SW1A 1AA"; "gb" == "GB"
        address[key] = text
    return address


#: Sources that may state a national identity number (read only by the matcher).
_NATIONAL_ID = ("transactions", "callcenter")


def _national_id(value: Any) -> str | None:
    """Letters and digits only, upper case: "123 456 789" == "123-456-789"."""
    if not isinstance(value, str):
        return None
    value = unicodedata.normalize("NFKC", value)  # fullwidth and circled digits are digits
    return "".join(ch for ch in value if ch.isalnum()).upper() or None


def _consent(source: str, doc: dict[str, Any]) -> dict[str, bool]:
    """Consent the event states explicitly; silence is not consent, so nothing is defaulted."""
    if source == "email":
        if doc["type"] == "subscribe":
            return {"marketing": True}
        if doc["type"] in ("unsubscribe", "complaint"):
            return {"marketing": False}
        return {}
    if source == "transactions":
        opt_in = doc.get("marketing_opt_in")
        return {"marketing": opt_in} if isinstance(opt_in, bool) else {}
    stated = doc.get("consent")
    if not isinstance(stated, dict):
        return {}
    return {purpose: granted for purpose, granted in stated.items() if isinstance(granted, bool)}


# --------------------------------------------------------------------------------------------
# Payloads: the source-specific facts later stages act on (carts, orders, dispositions)
# --------------------------------------------------------------------------------------------


def _pick(doc: dict[str, Any], *keys: str) -> dict[str, Any]:
    """The stated fields among ``keys``; null means unknown and is left out."""
    return {key: doc[key] for key in keys if doc.get(key) is not None}


def _cart_id(value: Any) -> str | None:
    """Cart ids are compared between web and orders, so both sides use the same trimming."""
    return normalize_id(value) if isinstance(value, str) else None


def _web_payload(doc: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = {}  # _pick(doc, "page", "product"), unrolled: most events are web
    page = doc.get("page")
    if page is not None:
        payload["page"] = page
    product = doc.get("product")
    if product is not None:
        payload["product"] = product
    session = _cart_id(doc["session_id"])
    if session:
        payload["session_id"] = session
    cart = doc.get("cart")
    if isinstance(cart, dict):
        cart_id = _cart_id(cart.get("cart_id"))
        if cart_id:
            payload["cart"] = {**cart, "cart_id": cart_id}
            if "currency" in cart:
                payload["cart"]["currency"] = cart["currency"].upper()
    return payload


def _email_payload(doc: dict[str, Any]) -> dict[str, Any]:
    return _pick(doc, "campaign_id", "link_url")


def _transactions_payload(doc: dict[str, Any]) -> dict[str, Any]:
    payload = _pick(doc, "order_id", "items", "total")
    if "currency" in doc:
        payload["currency"] = doc["currency"].upper()
    cart_id = _cart_id(doc.get("cart_id"))
    if cart_id:
        payload["cart_id"] = cart_id
    return payload


def _callcenter_payload(doc: dict[str, Any]) -> dict[str, Any]:
    payload = _pick(doc, "agent_id", "duration_s")
    if isinstance(doc.get("ticket"), dict):
        payload["ticket"] = dict(doc["ticket"])
    if isinstance(doc.get("disposition"), dict):
        disposition = dict(doc["disposition"])
        if disposition.get("code") == "cancel_request":
            disposition["cancel_intent"] = True  # agents often pick the code and skip the flag
        payload["disposition"] = disposition
    return payload


_PAYLOADS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "web": _web_payload,
    "email": _email_payload,
    "transactions": _transactions_payload,
    "callcenter": _callcenter_payload,
}
