"""Consent and objection commands, erasure and the suppression list, through the real stages
(normalise → resolve → profiles) as the worker wires them, without a broker."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from stagekit import Msg, Outbox, Sent

from scv.domain.graph import RETIRED
from scv.schemas import validator
from scv.streams.worker import Pipeline
from scv.topics import Topics

# Not @example.*: the default governance rules block those (placeholder addresses).
EMAIL = "alice.erased@acme-corp.co.uk"
CUSTOMER = "C-ALICE-7"
COOKIE = "ck-alice-7"
PII = [EMAIL, CUSTOMER, COOKIE, "alice.erased", "Alice"]


def web(event_id: str, minute: int, etype: str = "page_view", **fields: Any) -> bytes:
    doc = {
        "event_id": event_id,
        "timestamp": f"2024-05-01T09:{minute:02}:00Z",
        "type": etype,
        "anonymous_id": fields.pop("cookie", COOKIE),
        "session_id": "sess-1",
        **fields,
    }
    return orjson.dumps(doc)


def cart(event_id: str, minute: int, cart_id: str, **fields: Any) -> bytes:
    items = [{"sku": "SKU-1", "name": "Kettle", "qty": 1, "price": 29.99}]
    body = {"cart_id": cart_id, "items": items, "currency": "GBP"}
    return web(event_id, minute, "cart_add", cart=body, **fields)


def command(cid: str, ctype: str, subject: dict[str, str], **fields: Any) -> bytes:
    doc = {"command_id": cid, "type": ctype, "timestamp": fields.pop("ts", 1714560000), **fields}
    return orjson.dumps(doc | {"subject": subject})


BY_EMAIL = {"type": "email", "value": EMAIL}

#: The ``make_pipeline`` fixture (conftest): a pipeline with other settings.
MakePipeline = Callable[..., Pipeline]


class Run:
    """Feeds raw input and commands, then everything the stages send to stage inputs, until
    nothing new is produced (what the worker loop and the broker do between them)."""

    def __init__(self, pipeline: Pipeline, sent: Outbox) -> None:
        self.pipeline, self.sent = pipeline, sent
        self.topics = Topics(pipeline.settings)
        self.seen = 0
        self.offset = 0

    def partition(self, m: Sent) -> int:
        if m.topic != self.topics.profile_events:
            return 0
        return zlib.crc32(m.key or b"") % self.pipeline.settings.stage_partitions

    def feed(self, topic: str, *values: bytes, key: bytes | None = None) -> None:
        part = self.partition(Sent(topic, key, None))
        self._process([Msg(topic, v, key, part, self._next()) for v in values])
        self.settle()

    def settle(self) -> None:
        inputs = set(self.pipeline.stage_of)
        while self.seen < len(self.sent):
            new = self.sent[self.seen :]
            self.seen = len(self.sent)
            batch = [
                Msg(m.topic, m.value, m.key, self.partition(m), self._next())
                for m in new
                if m.topic in inputs
            ]
            if batch:
                self._process(batch)

    def due(self) -> None:
        """The worker's due-cart check, an hour after now (every cart window has passed)."""
        self.pipeline.profiles.check_due(time.time() + 3600)
        self.pipeline.flush_tables()
        self.settle()

    def _process(self, batch: list[Any]) -> None:
        self.pipeline.process(batch)

    def _next(self) -> int:
        self.offset += 1
        return self.offset

    # --- what came out ---------------------------------------------------------------
    def actions(self) -> list[dict[str, Any]]:
        return [m.json() for m in self.sent.to(self.topics.actions)]

    def audit(self) -> list[dict[str, Any]]:
        records = [m.json() for m in self.sent.to(self.topics.audit)]
        for record in records:
            validator("audit.v1")(record)
        return records

    def profile(self, pid: str) -> dict[str, Any] | None:
        """The latest profiles.v1 value of ``pid`` (None: tombstone or never published)."""
        latest = [m for m in self.sent.to(self.topics.profiles) if m.key == pid.encode()]
        assert latest, f"nothing published for {pid}"
        return latest[-1].json() if latest[-1].value is not None else None

    def owner(self, key: str) -> str | None:
        raw = self.pipeline.owners[0].get(key.encode())
        return raw.decode() if raw is not None else None

    def dlq(self) -> list[Sent]:
        return [m for m in self.sent if m.topic.endswith(".dlq")]


@pytest.fixture
def run(make_pipeline: MakePipeline, sent: Outbox) -> Run:
    # The stories are dated 2024-05-01 and are about consent and objection, not age: without
    # the bound on a cart's age (docs/actions.md) their reminders are not suppressed as stale.
    return Run(make_pipeline(cart_max_lag_s=0), sent)


def test_no_action_without_consent_and_one_after_a_consent_command(run: Run) -> None:
    t = run.topics
    run.feed(t.raw("web"), cart("c1", 1, "cart-1", email=EMAIL))
    run.due()
    assert run.actions() == []  # missing consent means no
    pid = run.owner(f"email:{EMAIL}")
    assert pid is not None

    run.feed(t.commands, command("consent-1", "consent", BY_EMAIL, consent={"marketing": True}))
    snap = run.profile(pid)
    assert snap is not None
    assert snap["consent"]["marketing"] == {
        "granted": True,
        "ts": 1714560000.0,
        "source": "command",
    }
    run.feed(t.raw("web"), cart("c2", 2, "cart-2", email=EMAIL))
    run.due()
    [action] = run.actions()
    assert (action["type"], action["profile_id"], action["payload"]["cart_id"]) == (
        "abandoned_cart",
        pid,
        "cart-2",
    )


def test_an_objection_stops_later_actions_even_after_a_new_grant(run: Run) -> None:
    t = run.topics
    grant = {"consent": {"marketing": True}, "source": "preference_centre"}
    run.feed(t.raw("web"), web("w1", 1, email=EMAIL))
    run.feed(t.commands, command("consent-1", "consent", BY_EMAIL, **grant))
    run.feed(t.commands, command("object-1", "object", BY_EMAIL, ts=1714560100))
    run.feed(t.commands, command("consent-2", "consent", BY_EMAIL, ts=1714560200, **grant))
    run.feed(t.raw("web"), cart("c1", 3, "cart-1", email=EMAIL))
    run.due()
    assert run.actions() == []
    pid = run.owner(f"email:{EMAIL}")
    assert pid is not None
    snap = run.profile(pid)
    assert snap is not None
    assert snap["objection"]["active"] is True and snap["consent"]["marketing"]["granted"]

    run.feed(t.commands, command("object-2", "object", BY_EMAIL, ts=1714560300, withdraw=True))
    run.feed(t.raw("web"), cart("c2", 4, "cart-2", email=EMAIL))
    run.due()
    assert [a["payload"]["cart_id"] for a in run.actions()] == ["cart-2"]


def test_a_denial_for_someone_not_seen_yet_holds_against_an_older_grant(run: Run) -> None:
    t = run.topics
    deny = command("consent-1", "consent", BY_EMAIL, purpose="marketing", granted=False)
    run.feed(t.commands, deny)
    pid = run.owner(f"email:{EMAIL}")
    assert pid is not None, "the command made the profile"
    # The person's (older) subscription is processed after the denial.
    subscribe = {
        "event_id": "em-1",
        "timestamp": "2024-04-01T09:00:00Z",
        "type": "subscribe",
        "email": EMAIL,
    }
    run.feed(t.raw("email"), orjson.dumps(subscribe))
    snap = run.profile(pid)
    assert snap is not None
    assert snap["identifiers"] == {"email": [EMAIL]}
    assert snap["consent"]["marketing"]["granted"] is False


def _alice(run: Run) -> tuple[str, str]:
    """Alice's cookie profile, then her customer profile, merged by a login; an open cart.
    Returns (survivor, merged-away id)."""
    t = run.topics
    run.feed(t.raw("web"), web("w1", 1))
    cookie_pid = run.owner(f"anonymous_id:{COOKIE}")
    run.feed(
        t.raw("transactions"),
        orjson.dumps(
            {
                "event_id": "o1",
                "timestamp": "2024-05-01T08:00:00Z",
                "type": "order",
                "order_id": "ord-1",
                "customer_id": CUSTOMER,
                "email": EMAIL,
                "first_name": "Alice",
                "items": [{"sku": "SKU-1", "qty": 1, "price": 29.99}],
                "total": 29.99,
                "currency": "GBP",
            }
        ),
    )
    run.feed(t.raw("web"), web("w2", 2, "login", email=EMAIL, customer_id=CUSTOMER))
    run.feed(t.raw("web"), cart("c1", 3, "cart-1"))
    survivor = run.owner(f"email:{EMAIL}")
    assert survivor is not None and cookie_pid is not None and survivor != cookie_pid
    assert run.owner(f"anonymous_id:{COOKIE}") == survivor
    return survivor, cookie_pid


RAW_STORY = ("w1", "o1", "w2", "c1")


def test_erase_removes_the_person_from_every_table_and_topic(run: Run) -> None:
    t = run.topics
    pid, merged = _alice(run)
    profile_part = zlib.crc32(pid.encode()) % run.pipeline.settings.stage_partitions
    assert run.pipeline.carts_due[profile_part].get(pid.encode()) is not None

    run.feed(t.commands, command("erase-1", "erase", BY_EMAIL))

    # Resolver: no owner entry, the node is a retired marker, nothing names her.
    for key in (f"email:{EMAIL}", f"customer_id:{CUSTOMER}", f"anonymous_id:{COOKIE}"):
        assert run.owner(key) is None
    assert run.pipeline.nodes[0].get(pid.encode()) == RETIRED
    graph = repr([*run.pipeline.owners[0].items(), *run.pipeline.nodes[0].items()])
    suppressed = repr(list(run.pipeline.suppressed[0].items()))
    for value in PII:
        assert value not in graph and value not in suppressed
    assert len(run.pipeline.suppressed[0]) == 4  # three hashes and the key check
    # Profiles: tombstones on profiles.v1 for her and the id merged into her; the state is
    # an erasure marker, the due cart is gone.
    assert run.profile(pid) is None and run.profile(merged) is None
    stored = run.pipeline.profile_table[profile_part].get(pid.encode())
    assert orjson.loads(stored) == {"erased": "erase-1"}
    assert run.pipeline.carts_due[profile_part].get(pid.encode()) is None
    merged_part = zlib.crc32(merged.encode()) % run.pipeline.settings.stage_partitions
    assert orjson.loads(run.pipeline.profile_table[merged_part][merged.encode()]) == {
        "erased": "erase-1"
    }
    # Audit: one record per stage (and one for the merged id), no personal data.
    audit = run.audit()
    assert [(a["stage"], a.get("profile_id"), a.get("of")) for a in audit] == [
        ("resolve", None, None),
        ("profiles", pid, None),
        ("profiles", merged, pid),
    ]
    assert audit[0]["profile_ids"] == [pid] and audit[0]["counts"]["suppressed"] == 3
    assert audit[0]["identifier_types"] == {"anonymous_id": 1, "customer_id": 1, "email": 1}
    assert audit[1]["counts"]["open_carts"] == 1
    raw_audit = b"".join(m.value or b"" for m in run.sent.to(t.audit)).decode()
    for value in PII:
        assert value not in raw_audit
    # The due-cart check finds nothing: no reminder to an erased person.
    run.due()
    assert run.actions() == []


def test_a_replay_after_erasure_does_not_recreate_the_person(run: Run) -> None:
    t = run.topics
    run.feed(t.raw("web"), web("w1", 1), web("w2", 2, "login", email=EMAIL, customer_id=CUSTOMER))
    run.feed(t.commands, command("erase-1", "erase", {"type": "customer_id", "value": CUSTOMER}))
    before = len(run.sent)

    # The same raw events again, and a new device with the erased email.
    run.feed(t.raw("web"), web("w1", 1), web("w2", 2, "login", email=EMAIL, customer_id=CUSTOMER))
    run.feed(t.raw("web"), web("w3", 5, "login", cookie="ck-new-device", email=EMAIL))
    after = run.sent[before:]
    assert [m.topic for m in after if m.topic not in (t.identity_events, t.audit)] == []
    assert run.owner("anonymous_id:ck-new-device") is None  # the new cookie did not link
    dropped = [a for a in run.audit() if a["kind"] == "suppressed_event"]
    assert [(a["event_id"], a["by_commands"]) for a in dropped] == [
        ("w1", ["erase-1"]),
        ("w2", ["erase-1"]),
        ("w3", ["erase-1"]),
    ]
    assert dropped[2]["identifier_types"] == {"email": 1}
    assert run.dlq() == []
    # Someone else is processed as usual.
    run.feed(t.raw("web"), web("w4", 6, cookie="ck-somebody-else"))
    assert run.owner("anonymous_id:ck-somebody-else") is not None


def test_commands_naming_an_erased_person_are_dropped_not_dead_lettered(run: Run) -> None:
    t = run.topics
    run.feed(t.raw("web"), web("w1", 1, email=EMAIL))
    run.feed(t.commands, command("erase-1", "erase", BY_EMAIL))
    grant = command("consent-9", "consent", BY_EMAIL, consent={"marketing": True})
    run.feed(t.commands, grant, command("erase-2", "erase", BY_EMAIL))
    assert run.dlq() == []
    assert run.owner(f"email:{EMAIL}") is None
    kinds = [(a["kind"], a.get("command_id"), a.get("outcome")) for a in run.audit()]
    assert kinds[-2:] == [
        ("suppressed_command", "consent-9", None),
        ("erasure", "erase-2", "nothing_found"),  # asked again: acknowledged
    ]


def test_a_merge_hand_over_reaching_an_erased_profile_late_is_dropped(run: Run) -> None:
    """A merge decided before the erasure whose state arrives after it: its data must not
    bring the profile back, and the absorbed id's forwarding marker is erased too."""
    t = run.topics
    pid, _ = _alice(run)
    run.feed(t.commands, command("erase-1", "erase", BY_EMAIL))
    late = {
        "kind": "absorb",
        "profile_id": pid,
        "absorbed": "p_late",
        "seq": 1,
        "state": {
            "profile_id": "p_late",
            "created_ts": 1.0,
            "updated_ts": 2.0,
            "identifiers": {"email": ["late.alias@acme-corp.co.uk"]},
            "merged_from": ["p_older"],
        },
    }
    run.feed(t.profile_events, orjson.dumps(late), key=pid.encode())
    assert run.profile(pid) is None
    records = [a for a in run.audit() if a["stage"] == "profiles"]
    assert (records[-3]["outcome"], records[-3]["message_kind"]) == (
        "late_message_dropped",
        "absorb",
    )
    assert {(a["profile_id"], a["of"]) for a in records[-2:]} == {("p_late", pid), ("p_older", pid)}
    for p in ("p_late", "p_older"):
        part = zlib.crc32(p.encode()) % run.pipeline.settings.stage_partitions
        assert orjson.loads(run.pipeline.profile_table[part][p.encode()]) == {"erased": "erase-1"}


def test_a_profile_she_was_split_from_forgets_her_too(run: Run) -> None:
    """Bob's profile took Alice's email in by mistake and a steward split it off: Bob's graph
    node (the ban, the evidence) and his profile state (where her email went) named her."""
    t = run.topics
    bob = "bob.kept@acme-corp.co.uk"
    run.feed(t.raw("web"), web("w1", 1, "login", cookie="ck-bob", email=bob))
    run.feed(t.raw("web"), web("w2", 2, cookie="ck-bob", email=EMAIL))
    pid = run.owner(f"email:{bob}")
    assert pid is not None and run.owner(f"email:{EMAIL}") == pid
    unmerge = command(
        "unmerge-1",
        "unmerge",
        {"profile_id": pid},
        identifiers=[{"type": "email", "value": EMAIL}],
    )
    run.feed(t.commands, unmerge)
    assert run.owner(f"email:{EMAIL}") not in (None, pid)
    part = zlib.crc32(pid.encode()) % run.pipeline.settings.stage_partitions
    assert EMAIL.encode() in run.pipeline.profile_table[part][pid.encode()]

    run.feed(t.commands, command("erase-1", "erase", BY_EMAIL))

    assert EMAIL.encode() not in run.pipeline.nodes[0][pid.encode()]
    assert EMAIL.encode() not in run.pipeline.profile_table[part][pid.encode()]
    snap = run.profile(pid)
    assert snap is not None and snap["identifiers"]["email"] == [bob]
    [resolver] = [a for a in run.audit() if a["stage"] == "resolve" and a["kind"] == "erasure"]
    assert resolver["counts"]["nodes_scrubbed"] == 1 and resolver["counts"]["foreign_bans"] == 1
