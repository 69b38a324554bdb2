"""The household entity (scv.domain.households) as the resolver keeps it: founded by a shared
value or an address, grown by the people an event names, merged through a person or value,
capped, escalated when a value ties more people than a household holds, and left intact
when one member is erased."""

from __future__ import annotations

from scv.domain import households
from scv.domain.explain import explain, render_text
from scv.domain.governance import Rules
from scv.domain.graph import GENERIC, HOUSEHOLD, DictStore
from scv.domain.model import Identifier, NormalizedEvent
from scv.domain.resolver import resolve

RULES = Rules.default()
LANDLINE = ("phone", "+49304418273")
FAMILY = ("email", "familie.brandt@web.de")
JAN = ("phone", "+493518112565")


def ev(eid: str, ts: float, *idents: Identifier, **traits: object) -> NormalizedEvent:
    return NormalizedEvent(eid, "transactions", "order", ts, [*idents], traits=dict(traits))


def home_of(store: DictStore, cid: str) -> dict[str, object] | None:
    pid = store.owners[f"customer_id:{cid}"]
    return households.view_for(store, store.nodes[pid].keys())


def test_the_people_a_shared_value_ties_are_its_household() -> None:
    store = DictStore()
    resolve(ev("a", 1.0, ("customer_id", "C1"), LANDLINE), store, RULES)
    res = resolve(ev("b", 2.0, ("customer_id", "C2"), LANDLINE), store, RULES)
    assert res.household_change is not None and res.household_change.changed
    one, two = home_of(store, "C1"), home_of(store, "C2")
    assert one is not None and two is not None
    assert one["household_id"] == two["household_id"]
    assert sorted(one["members"]) == sorted(store.nodes)  # type: ignore[arg-type]
    assert one["identifiers"] == {"phone": ["+49304418273"]}
    # A third member joins by naming the landline with their own customer id.
    resolve(ev("c", 3.0, ("customer_id", "C3"), LANDLINE), store, RULES)
    three = home_of(store, "C3")
    assert three is not None and len(three["members"]) == 3  # type: ignore[arg-type]


def test_two_households_of_one_family_merge_through_a_person() -> None:
    store = DictStore()
    resolve(ev("a", 1.0, ("customer_id", "C1"), LANDLINE), store, RULES)
    resolve(ev("b", 2.0, ("customer_id", "C2"), LANDLINE), store, RULES)
    resolve(ev("c", 3.0, ("customer_id", "C3"), FAMILY), store, RULES)
    resolve(ev("d", 4.0, ("customer_id", "C4"), FAMILY), store, RULES)
    assert home_of(store, "C1") != home_of(store, "C3")  # two households so far
    # C2 uses the family email too: one family.
    res = resolve(ev("e", 5.0, ("customer_id", "C2"), FAMILY), store, RULES)
    assert res.household_change is not None and res.household_change.gone
    view = home_of(store, "C4")
    assert view is not None and len(view["members"]) == 4  # type: ignore[arg-type]
    assert view == home_of(store, "C1") | {"member_as": view["member_as"]}


def test_one_surname_at_one_address_is_a_household_and_a_neighbour_is_not() -> None:
    store = DictStore()
    address = {"street": "Schillerstraße 18", "postcode": "10625", "city": "Berlin"}
    resolve(ev("a", 1.0, ("customer_id", "C1"), last_name="Brandt", address=address), store, RULES)
    resolve(ev("b", 2.0, ("customer_id", "C2"), last_name="BRANDT", address=address), store, RULES)
    resolve(ev("c", 3.0, ("customer_id", "C3"), last_name="Keller", address=address), store, RULES)
    one, two, three = (home_of(store, c) for c in ("C1", "C2", "C3"))
    assert one is not None and two is not None and one["household_id"] == two["household_id"]
    assert one["address"] == address and one["identifiers"] == {}
    assert three is None or three["household_id"] != one["household_id"]


def test_a_guest_order_on_the_family_email_keeps_its_phone_and_its_household() -> None:
    """From the realistic profile (seed 7): Jan orders with the family email, his own
    phone and the family's address (he joins its household under the email, his profile's
    strongest key); then a daughter orders as a guest with the family email and her own
    mobile, to the same address. The email is the household's. Her mobile hangs on the
    email alone: it ties nobody (Jan's name on the email's other events is not evidence
    about the mobile) and stays hers. The household keeps Jan, now under his phone, and
    has her as a member under her mobile."""
    store = DictStore()
    address = {"street": "Hauptstraße 67", "postcode": "01121", "city": "Dresden"}
    mobile = ("phone", "+491636207509")
    named = {"last_name": "Ludwig", "address": address}
    jan = resolve(ev("j", 1.0, FAMILY, JAN, first_name="Jan", **named), store, RULES)
    lena = resolve(ev("g", 2.0, FAMILY, mobile, first_name="Lena", **named), store, RULES)
    assert store.owners["email:familie.brandt@web.de"] == HOUSEHOLD
    kid = store.owners["phone:+491636207509"]
    assert kid not in (GENERIC, HOUSEHOLD) and kid == lena.profile_id
    assert store.owners["phone:+493518112565"] == jan.profile_id != kid
    assert households.of_member(store, "email:familie.brandt@web.de") is None
    views = [households.view_for(store, store.nodes[p].keys()) for p in (jan.profile_id, kid)]
    assert [v and v["member_as"] for v in views] == ["phone:+493518112565", "phone:+491636207509"]
    assert views[0] is not None and views[1] is not None
    assert views[0]["household_id"] == views[1]["household_id"]


def test_a_value_tying_more_people_than_a_household_holds_becomes_generic() -> None:
    store = DictStore()
    for i in range(7):  # the cap is generic_after: 6 people
        resolve(ev(f"e{i}", float(i), ("customer_id", f"C{i}"), LANDLINE), store, RULES)
    assert store.owners["phone:+49304418273"] == GENERIC
    # Its household had no other value: dissolved, nobody is a member of it any more.
    assert all(home_of(store, f"C{i}") is None for i in range(7))


def test_erasing_a_member_leaves_the_household_of_the_others() -> None:
    store = DictStore()
    for i in range(3):
        resolve(ev(f"e{i}", float(i), ("customer_id", f"C{i}"), LANDLINE), store, RULES)
    before = home_of(store, "C1")
    assert before is not None
    change, purge = households.forget_member(store, ["customer_id:C0"])
    assert change.changed == [before["household_id"]] and purge == ["\x00m:customer_id:C0"]
    after = home_of(store, "C1")
    assert after is not None and len(after["members"]) == 2  # C0 is out, the others stay
    changed, _ = households.forget_member(store, ["customer_id:C1", "customer_id:C2"])
    assert changed.gone == [before["household_id"]]
    assert store.owners.get("phone:+49304418273") is None  # nobody's data any more
    assert not any(k.startswith("\x00") and "4418273" in k for k in store.owners)
    assert HOUSEHOLD not in store.owners.values()


def test_explain_names_the_household() -> None:
    store = DictStore()
    resolve(ev("a", 1.0, ("customer_id", "C1"), LANDLINE), store, RULES)
    resolve(ev("b", 2.0, ("customer_id", "C2"), LANDLINE), store, RULES)
    node = store.nodes[store.owners["customer_id:C1"]]
    expl = explain(node, households.view_for(store, node.keys()))
    text = render_text(expl)
    assert expl["household"]["household_id"] in text
    assert "2 people" in text and "phone:+49304418273" in text
    assert store.owners["customer_id:C2"] in text
