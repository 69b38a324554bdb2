"""Comparisons: map one attribute of a record pair to a discrete agreement level.

Fellegi-Sunter needs each attribute comparison to fall into a small number of levels so that
m/u probabilities can be estimated per level (the splink approach). Each comparison is a small
frozen value object: it knows its field, its level labels and how to serialise itself, so a
trained model file fully describes how it must be applied.

Levels are indices into ``labels`` (0 = strongest agreement); ``MISSING`` (-1) means one side
has no value, which the model treats as "no evidence" (weight 0). Everything works on plain
dicts and uses rapidfuzz per pair (microseconds), never pandas.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rapidfuzz.distance import OSA, JaroWinkler

MISSING = -1
"""Level returned when either side lacks the value; contributes no weight."""

Record = Mapping[str, Any]


def clean(value: Any) -> str | None:
    """Return the value as a stripped lower-case string, or None when it is absent.

    pandas hands missing values over as float NaN, so NaN counts as absent like None and "".
    """
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            value = int(value)
    text = str(value).strip().lower()
    return text or None


def clean_digits(value: Any) -> str | None:
    """Keep only the digits (phone numbers, ids, ISO dates), or None when none are left."""
    text = clean(value)
    if text is None:
        return None
    digits = "".join(ch for ch in text if ch.isdigit())
    return digits or None


@dataclass(frozen=True, slots=True)
class Comparison(ABC):
    """Base class: one attribute, compared into ``labels`` levels (plus ``MISSING``)."""

    name: str
    field: str

    kind: ClassVar[str] = "base"
    #: Levels below this count as the same value (exact, or a typing slip away from it).
    agreeing: ClassVar[int] = 2

    @property
    @abstractmethod
    def labels(self) -> tuple[str, ...]:
        """Names of the non-missing levels, strongest agreement first."""

    def agrees(self, level: int) -> bool:
        """Is ``level`` the same value on both sides, up to a typo (not merely similar)?"""
        return 0 <= level < self.agreeing

    def prepare(self, value: Any) -> str | None:
        """Normalise one side's value; split out so that callers may cache it per record."""
        return clean(value)

    @abstractmethod
    def compare_values(self, a: str, b: str) -> int:
        """Level for two present, prepared values."""

    def level(self, a: Record, b: Record) -> int:
        """Level for the pair of records, ``MISSING`` when either value is absent."""
        va = self.prepare(a.get(self.field))
        if va is None:
            return MISSING
        vb = self.prepare(b.get(self.field))
        if vb is None:
            return MISSING
        return self.compare_values(va, vb)

    def params(self) -> dict[str, Any]:
        """Parameters beyond name/field needed to rebuild the comparison."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """Serialisable description; ``comparison_from_dict`` is the inverse."""
        return {"kind": self.kind, "name": self.name, "field": self.field, **self.params()}


@dataclass(frozen=True, slots=True)
class ExactComparison(Comparison):
    """exact / different: for short codes (state) where a near miss means nothing."""

    kind: ClassVar[str] = "exact"
    agreeing: ClassVar[int] = 1

    @property
    def labels(self) -> tuple[str, ...]:
        return ("exact", "different")

    def compare_values(self, a: str, b: str) -> int:
        return 0 if a == b else 1


@dataclass(frozen=True, slots=True)
class StringComparison(Comparison):
    """exact / close / similar / different by Jaro-Winkler similarity.

    Jaro-Winkler rewards a shared prefix, which suits names and street names where typos tend
    to be late in the word. ``ignore_spaces`` makes "pridham street" equal "pridhamstreet",
    since a lost or extra space is a common data-entry slip in addresses. With ``swap_field``
    (given name <-> surname), values entered in each other's field count as "close": a swap
    is a form-filling slip, not evidence of two people.
    """

    close: float = 0.92
    similar: float = 0.80
    ignore_spaces: bool = False
    swap_field: str | None = None

    kind: ClassVar[str] = "string"

    @property
    def labels(self) -> tuple[str, ...]:
        return ("exact", f"jw>={self.close}", f"jw>={self.similar}", "different")

    def prepare(self, value: Any) -> str | None:
        text = clean(value)
        if text is not None and self.ignore_spaces:
            text = text.replace(" ", "") or None
        return text

    def compare_values(self, a: str, b: str) -> int:
        if a == b:
            return 0
        sim = JaroWinkler.similarity(a, b)
        if sim >= self.close:
            return 1
        if sim >= self.similar:
            return 2
        return 3

    def level(self, a: Record, b: Record) -> int:
        va = self.prepare(a.get(self.field))
        vb = self.prepare(b.get(self.field))
        if self.swap_field is not None:
            found = self._swapped(a, b, va, vb)
            if found is not None:
                return found
        if va is None or vb is None:
            return MISSING
        return self.compare_values(va, vb)

    def _swapped(self, a: Record, b: Record, va: str | None, vb: str | None) -> int | None:
        """1 ("close") when a's two fields appear crosswise in b, else None."""
        assert self.swap_field is not None
        if va is not None and va == vb:
            return None
        sa = self.prepare(a.get(self.swap_field))
        sb = self.prepare(b.get(self.swap_field))
        if va is None or sb is None:
            return None
        if JaroWinkler.similarity(va, sb) < self.close:
            return None
        if sa is not None and vb is not None:
            return 1 if JaroWinkler.similarity(sa, vb) >= self.close else None
        return None

    def params(self) -> dict[str, Any]:
        return {
            "close": self.close,
            "similar": self.similar,
            "ignore_spaces": self.ignore_spaces,
            "swap_field": self.swap_field,
        }


@dataclass(frozen=True, slots=True)
class DigitsComparison(Comparison):
    """exact / close / different on digit strings (postcode, ids, phone, street number).

    "close" is one substituted, inserted, deleted or transposed digit (optimal string
    alignment distance 1): the usual keying error, unlike a different number altogether.
    """

    kind: ClassVar[str] = "digits"

    @property
    def labels(self) -> tuple[str, ...]:
        return ("exact", "one-edit", "different")

    def prepare(self, value: Any) -> str | None:
        return clean_digits(value)

    def compare_values(self, a: str, b: str) -> int:
        if a == b:
            return 0
        return 1 if OSA.distance(a, b, score_cutoff=1) <= 1 else 2


def dob_digits(value: Any) -> str | None:
    """YYYYMMDD from YYYYMMDD or ISO (YYYY-MM-DD, optionally with a time part)."""
    text = clean(value)
    if text is None:
        return None
    if "-" in text[:10]:
        text = text[:10]
    digits = "".join(ch for ch in text if ch.isdigit())
    return digits or None


@dataclass(frozen=True, slots=True)
class DateComparison(Comparison):
    """exact / close / different on dates of birth.

    "close" is one wrong or transposed digit, or day and month swapped (US vs. UK order):
    the errors a person or clerk makes when typing a known date.
    """

    kind: ClassVar[str] = "date"

    @property
    def labels(self) -> tuple[str, ...]:
        return ("exact", "close", "different")

    def prepare(self, value: Any) -> str | None:
        return dob_digits(value)

    def compare_values(self, a: str, b: str) -> int:
        if a == b:
            return 0
        if OSA.distance(a, b, score_cutoff=1) <= 1:
            return 1
        if len(a) == 8 and len(b) == 8 and a[:4] == b[:4] and a[4:6] == b[6:8] and a[6:8] == b[4:6]:
            return 1
        return 2


_KINDS: dict[str, type[Comparison]] = {
    cls.kind: cls for cls in (ExactComparison, StringComparison, DigitsComparison, DateComparison)
}


def comparison_from_dict(data: Mapping[str, Any]) -> Comparison:
    """Rebuild a comparison from ``Comparison.to_dict`` output."""
    fields = dict(data)
    kind = fields.pop("kind")
    try:
        cls = _KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown comparison kind {kind!r}") from None
    return cls(**fields)


DEFAULT_COMPARISONS: tuple[Comparison, ...] = (
    StringComparison("given_name", "given_name", swap_field="surname"),
    StringComparison("surname", "surname", swap_field="given_name"),
    DateComparison("date_of_birth", "date_of_birth"),
    DigitsComparison("street_number", "street_number"),
    StringComparison("address_1", "address_1", ignore_spaces=True),
    StringComparison("address_2", "address_2", ignore_spaces=True),
    StringComparison("suburb", "suburb", ignore_spaces=True),
    DigitsComparison("postcode", "postcode"),
    ExactComparison("state", "state"),
    DigitsComparison("soc_sec_id", "soc_sec_id"),
    DigitsComparison("phone", "phone"),
    StringComparison("email_local", "email_local"),
)
"""The person comparisons; training drops those a data set never fills (phone, email)."""


#: The attributes of one person that the people living with them do not share. Surname,
#: address, postcode, town and a landline are a household's: its members agree on all of
#: them and differ here (see :func:`names_a_person`).
PERSON_FIELDS = frozenset({"given_name", "date_of_birth", "soc_sec_id"})


def names_a_person(comparisons: Sequence[Comparison], a: Record, b: Record) -> bool:
    """Do ``a`` and ``b`` agree on at least one person-level attribute (:data:`PERSON_FIELDS`):
    the same first name (up to a typo or a name swap), birth date (up to a slip) or national
    id (up to one digit)?

    Without that, however well the rest agrees, the pair is two people of one household (a
    shared surname and address is a household, not a person), or says too little to tell: it
    must not match. The weights cannot express this, since a household's members differ in
    exactly the attributes a record may leave out.
    """
    for comparison in comparisons:
        if comparison.field in PERSON_FIELDS and comparison.agrees(comparison.level(a, b)):
            return True
    return False


def levels(comparisons: Sequence[Comparison], a: Record, b: Record) -> list[int]:
    """All comparison levels of one pair, in ``comparisons`` order."""
    return [c.level(a, b) for c in comparisons]
