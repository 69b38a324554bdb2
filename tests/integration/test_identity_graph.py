"""The governed identity graph on the broker: generic values, un-merge, bans, explanations.

One worker for the module (see ``conftest.py``); what activation services would read is
what is checked: ``profiles.v1`` and ``profiles.merges.v1``.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pipeline import Pipeline, now_iso, uid

from scv.cli import main
from scv.schemas import validator
from scv.steward import build_command, send_command

pytestmark = pytest.mark.integration

#: A shop's front-desk phone every caller gets noted with (not in the blocked list).
SHARED_PHONE = "020 7946 0123"
SHARED_E164 = "+442079460123"


def signup(cookie: str, email: str, first_name: str, marketing: bool) -> dict[str, Any]:
    return {
        "event_id": uid("web"),
        "timestamp": now_iso(),
        "type": "signup",
        "anonymous_id": cookie,
        "session_id": uid("sess"),
        "email": email,
        "traits": {"first_name": first_name},
        "consent": {"marketing": marketing},
    }


def call(phone: str, email: str | None = None) -> dict[str, Any]:
    event = {"event_id": uid("cc"), "timestamp": now_iso(), "type": "call", "phone": phone}
    if email is not None:
        event["email"] = email
    return event


def test_a_front_desk_phone_is_found_shared_and_fuses_nobody(
    pipeline: Pipeline,
) -> None:
    people = [
        (uid("ck"), f"ann.{uid('a')}@acme-corp.co.uk", "Ann", True),
        (uid("ck"), f"bob.{uid('b')}@acme-corp.co.uk", "Bob", False),
        (uid("ck"), f"cy.{uid('c')}@acme-corp.co.uk", "Cy", True),
    ]
    for cookie, email, name, marketing in people:
        pipeline.send("web", signup(cookie, email, name, marketing))
    for _, email, _, _ in people:
        pipeline.wait_for(lambda e=email: pipeline.profile_with("email", e))
    original = {e: pipeline.profile_with("email", e)["profile_id"] for _, e, _, _ in people}  # type: ignore[index]

    # Ann calls from the front desk: the phone joins her profile (one person so far).
    ann, bob, cy = (p[1] for p in people)
    pipeline.send("callcenter", call(SHARED_PHONE, ann))
    pipeline.wait_for(lambda: pipeline.profile_with("phone", SHARED_E164))
    # Bob calls from it too: his signup said "Bob", hers "Ann": two people share the phone.
    # It is split off and links nobody from then on.
    pipeline.send("callcenter", call(SHARED_PHONE, bob))
    pipeline.wait_for(
        lambda: [m for m in pipeline.merges() if m["kind"] == "household"] or None, timeout=30
    )
    pipeline.send("callcenter", call(SHARED_PHONE, cy))
    pipeline.wait_for(lambda: pipeline.profile_with("email", cy))
    pipeline.drain()

    records = pipeline.merges()
    for record in records:
        validator("profiles.merges.v1")(record)
    shared = [m for m in records if m["kind"] == "household"]
    assert [m["identifiers"] for m in shared] == [[f"phone:{SHARED_E164}"]]
    # Bob's call merged his profile with Ann's through the phone, and the same decision
    # found the phone shared and split them back (the merge record says which event).
    merged = [m for m in records if m["kind"] == "merge"]
    assert all(m["reason"]["identifiers"] == [f"email:{bob}"] for m in merged)

    by_email = {}
    for cookie, email, name, marketing in people:
        profile = pipeline.profile_with("email", email)
        assert profile is not None, email
        by_email[email] = profile
        assert profile["identifiers"] == {"anonymous_id": [cookie], "email": [email]}
        assert profile["traits"]["first_name"] == name
        assert profile["consent"]["marketing"]["granted"] is marketing
        assert profile["channels"] == {"web": 1, "callcenter": 1}  # own signup, own call
        assert profile["event_count"] == 2
    assert by_email[ann]["profile_id"] == original[ann]  # the oldest part keeps its id
    assert len({p["profile_id"] for p in by_email.values()}) == 3
    assert pipeline.profiles_with("phone", SHARED_E164) == []
    # The three are one household sharing the phone; each profile names it.
    [home] = [h for h in pipeline.households().values() if h["identifiers"].get("phone")]
    validator("households.v1")(home)
    assert sorted(home["members"]) == sorted(p["profile_id"] for p in by_email.values())
    assert {p["household_id"] for p in by_email.values()} == {home["household_id"]}

    # The phone links nobody any more: a caller giving only it belongs to no profile.
    before = set(pipeline.profiles())
    pipeline.send("callcenter", call(SHARED_PHONE))
    pipeline.drain()
    assert set(pipeline.profiles()) == before


def test_unmerge_splits_a_wrong_login_bans_the_link_and_explains(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    cookie, email = uid("ck"), f"dee.{uid('d')}@acme-corp.co.uk"
    customer = uid("C")
    pipeline.send("web", signup(cookie, email, "Dee", True))
    pipeline.wait_for(lambda: pipeline.profile_with("email", email))
    # Someone else logs in on Dee's browser, stating no name: nothing tells the login from
    # Dee's own first one, so the cookie fuses them.
    login = {
        "event_id": uid("web"),
        "timestamp": now_iso(),
        "type": "login",
        "anonymous_id": cookie,
        "session_id": uid("sess"),
        "customer_id": customer,
    }
    pipeline.send("web", login)
    fused = pipeline.wait_for(
        lambda: (
            (p := pipeline.profile_with("customer_id", customer))
            and p["profile_id"]
            and email in p["identifiers"].get("email", [])
            and p
        )
    )
    pid = fused["profile_id"]

    status, body = pipeline.get(f"/profiles/{pid}/explain")
    assert status == 200, body
    expl = orjson.loads(body)
    linked = {i["identifier"]: i for i in expl["identifiers"]}
    assert linked[f"customer_id:{customer}"]["path"][0]["event_id"] == login["event_id"]
    status, text = pipeline.get(f"/profiles/{pid}/explain?format=text")
    assert status == 200 and f"customer_id:{customer}" in text.decode()
    assert main(["explain", "--profile", pid, "--text", "--url", pipeline.worker.url]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"profile {pid}: 3 identifiers, 2 links")
    assert f"customer_id:{customer}" in printed and login["event_id"] in printed
    print(printed)  # shown with -s; the README's example is such a run

    command = build_command("unmerge", [f"customer_id:{customer}"], profile_id=pid)
    send_command(pipeline.settings, command)

    def split_off() -> dict[str, Any] | None:
        p = pipeline.profile_with("customer_id", customer)
        return p if p is not None and p["profile_id"] != pid else None

    eve = pipeline.wait_for(split_off)
    pipeline.drain()
    dee = pipeline.profile_with("email", email)
    assert dee is not None and dee["profile_id"] == pid
    assert "customer_id" not in dee["identifiers"]
    assert dee["traits"]["first_name"] == "Dee"
    eve = pipeline.profile_with("customer_id", customer)
    assert eve is not None and "first_name" not in eve["traits"]  # Dee's name stayed hers
    splits = [m for m in pipeline.merges() if m["kind"] == "split" and m["survivor"] == pid]
    assert len(splits) == 1
    assert splits[0]["reason"]["rule"] == "unmerge"
    assert splits[0]["reason"]["event_id"] == command["command_id"]

    # The same evidence again does not fuse them: the link is banned and the refusal is said.
    again = dict(login, event_id=uid("web"), timestamp=now_iso())
    pipeline.send("web", again)
    pipeline.drain()
    assert pipeline.profile_with("email", email)["profile_id"] == pid  # type: ignore[index]
    refused = [
        m
        for m in pipeline.merges()
        if m["kind"] == "refused" and m["reason"]["event_id"] == again["event_id"]
    ]
    assert [m["reason"]["rule"] for m in refused] == ["banned"]

    # A command that cannot be carried out goes to the commands DLQ with the reason.
    bad = build_command("unmerge", [f"email:{email}"], profile_id="p_does_not_exist")
    send_command(pipeline.settings, bad)
    pipeline.drain()
    dead = [
        r
        for r in pipeline.dlq(pipeline.topics.commands)
        if bad["command_id"].encode() in (r.value or b"")
    ]
    assert len(dead) == 1
    assert dead[0].headers["scv.error.reason"] == b"command: unknown_profile"


def test_two_customers_on_one_cookie_share_it_whichever_login_arrives_first(
    pipeline: Pipeline,
) -> None:
    """Two customers log in on one cookie, the later login arriving first (sources are
    consumed in parallel): the cookie is shared, a household's, and links neither."""
    cookie, first, second = uid("ck"), uid("C"), uid("C")

    def login(customer: str, offset_s: float, name: str) -> dict[str, Any]:
        return {
            "event_id": uid("web"),
            "timestamp": now_iso(offset_s),
            "type": "login",
            "anonymous_id": cookie,
            "session_id": uid("sess"),
            "customer_id": customer,
            "traits": {"first_name": name},
        }

    pipeline.send("web", login(second, 0, "Late"))  # happened later, arrives first
    pipeline.wait_for(lambda: pipeline.profile_with("customer_id", second))
    pipeline.send("web", login(first, -60, "Early"))

    def settled() -> dict[str, Any] | None:
        p = pipeline.profile_with("customer_id", first)
        return p if p is not None and p.get("household_id") else None

    pipeline.wait_for(settled)
    pipeline.drain()
    early = pipeline.profile_with("customer_id", first)
    late = pipeline.profile_with("customer_id", second)
    assert early is not None and late is not None
    assert early["identifiers"] == {"customer_id": [first]}
    assert late["identifiers"] == {"customer_id": [second]}
    assert pipeline.profiles_with("anonymous_id", cookie) == []
    assert early["household_id"] == late["household_id"]
    assert early["traits"]["first_name"] == "Early"
    assert late["traits"]["first_name"] == "Late"
    assert early["profile_id"] != late["profile_id"]
    kinds = [
        m["kind"]
        for m in pipeline.merges()
        if {m["survivor"], m["absorbed"]} & {early["profile_id"], late["profile_id"]}
    ]
    assert "household" in kinds
