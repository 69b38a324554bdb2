"""The traps of issue 18: values people share must never fuse them into one person.

Each test fails if a placeholder typed for many callers, a shared landline, a family email or
a shared tablet merges two people, whatever identifiers those people are known by.
"""

from __future__ import annotations

from scv.domain.governance import Rules
from scv.domain.graph import GENERIC, HOUSEHOLD, DictStore
from scv.domain.model import Identifier, NormalizedEvent, ident_key
from scv.domain.resolver import resolve

RULES = Rules.default()
SHARED = (GENERIC, HOUSEHOLD)


def ev(eid: str, ts: float, *idents: Identifier, name: str | None = None) -> NormalizedEvent:
    traits = {"first_name": name} if name else {}
    return NormalizedEvent(eid, "callcenter", "call", ts, [*idents], traits=traits)


def owners_of(store: DictStore, keys: list[str]) -> set[str | None]:
    return {store.owners.get(k) for k in keys}


def test_a_placeholder_typed_for_many_callers_ties_none_of_them() -> None:
    store = DictStore()
    placeholder = ("email", "service@nordwind-mode.de")
    phones = [("phone", f"+4917012345{i:02d}") for i in range(20)]
    for i, phone in enumerate(phones):  # no names: the callers are known only by phone
        resolve(ev(f"c{i}", float(i), placeholder, phone), store, RULES)
    assert store.owners[ident_key(placeholder)] in SHARED
    owners = [store.owners[ident_key(p)] for p in phones]
    assert len(set(owners)) == len(phones), "two callers' phones on one profile"
    # A caller's next call (with the placeholder again) is theirs alone.
    again = resolve(ev("again", 99.0, placeholder, phones[5]), store, RULES)
    assert again.profile_id == owners[5]


def test_a_shared_landline_keeps_the_callers_apart() -> None:
    store = DictStore()
    landline = ("phone", "+49304418273")
    anna = resolve(ev("a", 1.0, ("customer_id", "C1"), landline, name="Anna"), store, RULES)
    jonas = resolve(ev("b", 2.0, ("customer_id", "C2"), landline, name="Jonas"), store, RULES)
    assert anna.profile_id != jonas.profile_id
    assert store.owners[ident_key(landline)] == HOUSEHOLD
    # A call from the landline alone cannot say who called: nobody's, not a guessed person.
    alone = resolve(ev("c", 3.0, landline, name="Jonas"), store, RULES)
    assert alone.profile_id is None
    assert [d.reason for d in alone.dropped] == ["household"]


def test_a_landline_seen_with_one_caller_at_a_time_is_shared_once_names_differ() -> None:
    """The partner never gives a customer id: only the first names tell the callers apart."""
    store = DictStore()
    landline = ("phone", "+49304418273")
    anna = resolve(ev("a", 1.0, ("customer_id", "C1"), landline, name="Anna"), store, RULES)
    resolve(ev("b", 2.0, landline, name="Jonas"), store, RULES)
    resolve(ev("c", 3.0, landline, ("email", "jonas@web.de"), name="Jonas"), store, RULES)
    assert store.owners[ident_key(landline)] == HOUSEHOLD
    assert store.owners["customer_id:C1"] == anna.profile_id
    assert store.owners["email:jonas@web.de"] != anna.profile_id


def test_a_family_email_keeps_members_with_their_own_ids_apart() -> None:
    store = DictStore()
    family = ("email", "familie.mueller@web.de")
    resolve(ev("a", 1.0, ("customer_id", "C1"), family), store, RULES)
    resolve(ev("b", 2.0, ("customer_id", "C2"), family), store, RULES)
    assert store.owners["customer_id:C1"] != store.owners["customer_id:C2"]
    assert store.owners[ident_key(family)] == HOUSEHOLD
    # Members known by their personal email and their name only stay apart too.
    store = DictStore()
    resolve(ev("a", 1.0, ("email", "anna@gmx.de"), family, name="Anna"), store, RULES)
    resolve(ev("b", 2.0, ("email", "jonas@gmx.de"), family, name="Jonas"), store, RULES)
    assert store.owners["email:anna@gmx.de"] != store.owners["email:jonas@gmx.de"]
    assert store.owners[ident_key(family)] == HOUSEHOLD


def test_a_shared_tablet_keeps_the_people_who_log_in_on_it_apart() -> None:
    store = DictStore()
    tablet = ("anonymous_id", "tablet-cookie")
    for i, cid in enumerate(("C1", "C2", "C3")):
        resolve(ev(f"l{i}", float(i), ("customer_id", cid), tablet), store, RULES)
    assert len(owners_of(store, ["customer_id:C1", "customer_id:C2", "customer_id:C3"])) == 3
    assert store.owners[ident_key(tablet)] == HOUSEHOLD
    # In any arrival order.
    store = DictStore()
    for i, cid in enumerate(("C3", "C1", "C2")):
        resolve(ev(f"l{i}", 10.0 - i, ("customer_id", cid), tablet), store, RULES)
    assert len(owners_of(store, ["customer_id:C1", "customer_id:C2", "customer_id:C3"])) == 3
    assert store.owners[ident_key(tablet)] == HOUSEHOLD


def test_a_shared_tablet_s_anonymous_visits_follow_the_session_s_login() -> None:
    store = DictStore()
    tablet = ("anonymous_id", "tablet-cookie")

    def web(eid: str, ts: float, session: str, *idents: Identifier) -> NormalizedEvent:
        payload = {"session_id": session}
        return NormalizedEvent(eid, "web", "page_view", ts, [tablet, *idents], payload=payload)

    resolve(web("l1", 1.0, "s1", ("customer_id", "C1")), store, RULES)
    resolve(web("l2", 2.0, "s2", ("customer_id", "C2")), store, RULES)
    assert store.owners[ident_key(tablet)] == HOUSEHOLD
    resolve(web("l3", 3.0, "s3", ("customer_id", "C1")), store, RULES)
    # Later in C1's session, a page view names only the tablet: it is C1's.
    visit = resolve(web("v1", 4.0, "s3"), store, RULES)
    assert visit.profile_id == store.owners["customer_id:C1"]
    assert visit.anchor == ("customer_id", "C1") and visit.accepted == []
    # In a session nobody logged in on, it is the household's, not a guess.
    alone = resolve(web("v2", 5.0, "s9"), store, RULES)
    assert alone.profile_id is None and [d.reason for d in alone.dropped] == ["household"]
