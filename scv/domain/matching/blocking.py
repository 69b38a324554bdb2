"""Blocking keys: which record pairs are worth comparing at all.

Scoring every pair is quadratic, so only pairs sharing at least one key are compared. Several
keys per record, each built from different attributes, keep recall high: a typo in one
attribute (say the postcode) still leaves the pair together under another key.
"""

from __future__ import annotations

import jellyfish

from scv.domain.matching.compare import Record, clean, clean_digits, dob_digits


def soundex(text: str) -> str:
    """Soundex of the letters only; tolerant of spelling variants (mccarthy/mccatrhy)."""
    letters = "".join(ch for ch in text if ch.isalpha())
    return jellyfish.soundex(letters) if letters else ""


def _postcode(value: object) -> str | None:
    """Letters and digits only: UK postcodes are alphanumeric, FEBRL's are digits."""
    text = clean(value)
    if text is None:
        return None
    return "".join(ch for ch in text if ch.isalnum()) or None


def blocking_keys(record: Record) -> list[str]:
    """The record's blocking keys; pure and deterministic (same record -> same keys).

    Each key is prefixed by its kind so that keys of different kinds never collide.
    """
    given = clean(record.get("given_name"))
    surname = clean(record.get("surname"))
    postcode = _postcode(record.get("postcode"))
    number = clean_digits(record.get("street_number"))
    dob = dob_digits(record.get("date_of_birth"))
    ssn = clean_digits(record.get("soc_sec_id"))
    phone = clean_digits(record.get("phone"))
    email = clean(record.get("email_local"))

    sx_surname = soundex(surname) if surname else ""
    sx_given = soundex(given) if given else ""
    # Names are used order-free (sorted), since given name and surname get swapped.
    initials = sorted({name[0] for name in (given, surname) if name})
    keys: list[str] = []
    for sx in sorted({sx_surname, sx_given} - {""}):
        if postcode:
            keys.append(f"np:{sx}:{postcode}")
    if dob:
        keys.extend(f"di:{dob}:{initial}" for initial in initials)
    if postcode and number:
        keys.append(f"pn:{postcode}:{number}")
    if sx_given and sx_surname:
        keys.append("nn:" + ":".join(sorted((sx_given, sx_surname))))
    street = clean(record.get("address_1"))
    if street and number:
        keys.append(f"sn:{number}:{soundex(street)}")
    if ssn:
        keys.append(f"ss:{ssn}")
    if phone:
        keys.append(f"ph:{phone}")
    if email:
        keys.append(f"em:{email}")
    return keys
