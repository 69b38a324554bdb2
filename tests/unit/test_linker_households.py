"""Probabilistic matching must not merge the members of a household (issue 18, item 5).

Household members share a surname, an address with its postcode and often a landline; they
differ in first name and birth date, and a record often leaves the birth date out. With the
shipped models, surname and address alone outweigh a different first name, so the matcher
requires agreement on a person-level attribute (first name, birth date, national id).
"""

from __future__ import annotations

from typing import Any

import pytest

from scv.domain.governance import Rules
from scv.domain.graph import HOUSEHOLD, DictStore
from scv.domain.matching.compare import names_a_person
from scv.domain.matching.linker import DEMO_MODEL_PATH, Linker
from scv.domain.matching.model import DEFAULT_MODEL_PATH
from scv.domain.matching.records import record_from_traits
from scv.domain.model import Identifier, NormalizedEvent
from scv.domain.resolver import resolve

RULES = Rules.default()
HOME = {"street": "12 High Street", "city": "Leeds", "postcode": "LS4 2AB"}
LANDLINE = "+441132496000"
MOTHER = {"first_name": "Margaret", "last_name": "Featherstone", "birth_date": "1961-05-02"}
SON = {"first_name": "Oliver", "last_name": "Featherstone", "birth_date": "1993-11-20"}
MODELS = pytest.mark.parametrize(
    "model", [DEMO_MODEL_PATH, DEFAULT_MODEL_PATH], ids=["demo", "febrl"]
)


def ev(eid: str, ts: float, *idents: Identifier, **traits: Any) -> NormalizedEvent:
    return NormalizedEvent(eid, "callcenter", "call", ts, list(idents), traits=traits)


def without_birth_date(person: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in person.items() if k != "birth_date"}


def probabilistic_links(store: DictStore) -> list[Any]:
    return [lk for node in store.nodes.values() for lk in node.links if lk[2] == "probabilistic"]


def test_the_shipped_model_alone_would_match_them() -> None:
    """Why the rule is needed: the weights put a household over the match threshold as soon
    as one side leaves out the birth date."""
    linker = Linker.load()
    mother = record_from_traits({**MOTHER, "address": HOME})
    son = record_from_traits({**without_birth_date(SON), "address": HOME})
    weight, parts = linker.model.score(son, mother)
    assert parts["given_name"] < 0 and weight >= linker.upper
    assert not names_a_person(linker.person, son, mother)


@MODELS
def test_a_household_member_with_a_new_email_is_not_matched_to_another(model: Any) -> None:
    store, linker = DictStore(), Linker.load(model)
    mother = resolve(
        ev("e1", 1.0, ("email", "margaret@xmail.com"), **MOTHER, address=HOME), store, RULES, linker
    )
    for traits in (SON, without_birth_date(SON)):
        res = resolve(
            ev("e2", 2.0, ("email", "oliver@xmail.com"), **traits, address=HOME),
            store,
            RULES,
            linker,
        )
        assert res.match is None and res.merges == []
        assert res.profile_id != mother.profile_id
    assert store.get_owner("email:oliver@xmail.com") != mother.profile_id
    assert probabilistic_links(store) == []
    assert linker.stats["household"] >= 1


@MODELS
def test_a_household_sharing_a_landline_stays_two_people(model: Any) -> None:
    """Both state the home and the landline; the son leaves out his birth date. The landline
    becomes a household value, and the matcher adds no link between them."""
    store, linker = DictStore(), Linker.load(model)
    events = [
        ev("e1", 1.0, ("email", "margaret@xmail.com"), ("phone", LANDLINE), **MOTHER, address=HOME),
        ev("e2", 2.0, ("email", "oliver@xmail.com"), **without_birth_date(SON), address=HOME),
        ev("e3", 3.0, ("email", "oliver@xmail.com"), ("phone", LANDLINE), address=HOME),
        ev("e4", 4.0, ("email", "margaret@xmail.com"), ("phone", LANDLINE), **MOTHER),
        ev("e5", 5.0, ("email", "oliver@xmail.com"), ("phone", LANDLINE), **SON, address=HOME),
    ]
    for event in events:
        res = resolve(event, store, RULES, linker)
        assert res.match is None
        assert [m for m in res.merges if m.reason.rule == "probabilistic"] == []
    mother = store.get_owner("email:margaret@xmail.com")
    son = store.get_owner("email:oliver@xmail.com")
    assert mother is not None and son is not None and mother != son
    assert store.get_owner(f"phone:{LANDLINE}") in (HOUSEHOLD, None)
    assert probabilistic_links(store) == []


@MODELS
def test_a_profile_learning_its_attributes_does_not_absorb_a_household_member(model: Any) -> None:
    """The other direction (``_merge_matching_profiles``): a known profile states its
    attributes only later, and they describe the mother's son."""
    store, linker = DictStore(), Linker.load(model)
    resolve(
        ev("e1", 1.0, ("email", "margaret@xmail.com"), **MOTHER, address=HOME), store, RULES, linker
    )
    resolve(ev("e2", 2.0, ("email", "oliver@xmail.com")), store, RULES, linker)
    res = resolve(
        ev("e3", 3.0, ("email", "oliver@xmail.com"), **without_birth_date(SON), address=HOME),
        store,
        RULES,
        linker,
    )
    assert res.merges == [] and len(store.nodes) == 2
    assert probabilistic_links(store) == []


@MODELS
def test_a_withheld_number_call_from_a_household_member_lands_on_nobody_else(model: Any) -> None:
    """No identifier at all: the son's call must not be attached to his mother's profile."""
    store, linker = DictStore(), Linker.load(model)
    mother = resolve(
        ev("e1", 1.0, ("email", "margaret@xmail.com"), **MOTHER, address=HOME), store, RULES, linker
    )
    res = resolve(ev("c1", 2.0, **without_birth_date(SON), address=HOME), store, RULES, linker)
    assert res.profile_id != mother.profile_id and res.match is None


@MODELS
def test_the_same_person_with_a_typo_and_no_birth_date_still_matches(model: Any) -> None:
    """The rule asks for one personal attribute, not all: a first name one typo away is the
    person, even with the birth date left out."""
    store, linker = DictStore(), Linker.load(model)
    mother = resolve(
        ev("e1", 1.0, ("email", "margaret@xmail.com"), **MOTHER, address=HOME), store, RULES, linker
    )
    typo = {**without_birth_date(MOTHER), "first_name": "Margaert"}
    res = resolve(
        ev("e2", 2.0, ("email", "maggie@xmail.com"), **typo, address=HOME), store, RULES, linker
    )
    assert res.profile_id == mother.profile_id
    assert res.match is not None and res.match.rule == "probabilistic"


def test_names_a_person_needs_one_agreeing_personal_attribute() -> None:
    linker = Linker.load(DEFAULT_MODEL_PATH)
    base = {"surname": "featherstone", "postcode": "4221", "address_1": "high street"}
    cases = [
        ({"given_name": "margaret"}, {"given_name": "margaert"}, True),  # typo
        ({"given_name": "margaret"}, {"given_name": "oliver"}, False),
        ({"date_of_birth": "19610502"}, {"date_of_birth": "19610205"}, True),  # day/month
        ({"date_of_birth": "19610502"}, {"date_of_birth": "19931120"}, False),
        ({"soc_sec_id": "1234567"}, {"soc_sec_id": "1234576"}, True),
        ({"given_name": "oliver", "date_of_birth": "19931120"}, {"given_name": "margaret"}, False),
        ({}, {}, False),  # surname and address only: a household, not a person
    ]
    for a, b, expected in cases:
        assert names_a_person(linker.person, {**base, **a}, {**base, **b}) is expected, (a, b)
    swapped = names_a_person(
        linker.person,
        {"given_name": "featherstone", "surname": "margaret"},
        {"given_name": "margaret", "surname": "featherstone"},
    )
    assert swapped
