"""An event's traits as a matching record (the field names the comparisons use).

The normaliser keeps traits as the sources state them (``first_name``, ``last_name``,
``birth_date`` ISO, ``address{street, line2, city, region, postcode, country}``,
``national_id``); the matcher compares FEBRL-style records (``given_name``, ``surname``,
``date_of_birth``, ``street_number``, ``address_1``, ``address_2``, ``suburb``, ``state``,
``postcode``, ``soc_sec_id``). Values are cleaned (lower case, single spaces) so that a record
is also the compact form stored on a profile (``ProfileNode.records``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: The record fields, in the order they are stored.
FIELDS = (
    "given_name",
    "surname",
    "date_of_birth",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "state",
    "postcode",
    "soc_sec_id",
)

_NUMBER = re.compile(r"^\s*(\d+[a-z]?)\s*,?\s+(.*)$")


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.lower().split())
    return text or None


def split_street(street: str) -> tuple[str | None, str | None]:
    """``"12 High Street"`` -> ``("12", "high street")``; no leading number -> ``(None, …)``."""
    text = _text(street)
    if text is None:
        return None, None
    found = _NUMBER.match(text)
    if found is None:
        return None, text
    return found.group(1), found.group(2) or None


def record_from_traits(traits: Mapping[str, Any]) -> dict[str, str]:
    """The matching record of an event's traits; absent attributes are left out.

    The postcode keeps its letters (UK postcodes are alphanumeric) without spaces.
    """
    record: dict[str, str] = {}
    given = _text(traits.get("first_name"))
    surname = _text(traits.get("last_name"))
    if given:
        record["given_name"] = given
    if surname:
        record["surname"] = surname
    dob = traits.get("birth_date")
    if isinstance(dob, str) and dob.strip():
        record["date_of_birth"] = dob.strip()[:10]
    address = traits.get("address")
    if isinstance(address, Mapping):
        street = address.get("street")
        if isinstance(street, str):
            number, name = split_street(street)
            if number:
                record["street_number"] = number
            if name:
                record["address_1"] = name
        for trait, name in (("line2", "address_2"), ("city", "suburb"), ("region", "state")):
            text = _text(address.get(trait))
            if text:
                record[name] = text
        postcode = _text(address.get("postcode"))
        if postcode:
            record["postcode"] = postcode.replace(" ", "")
    national_id = traits.get("national_id")
    if isinstance(national_id, str) and national_id:
        record["soc_sec_id"] = national_id
    return {name: record[name] for name in FIELDS if name in record}
