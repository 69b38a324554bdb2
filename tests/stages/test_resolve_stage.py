"""The resolve stage: identity events → identity graph tables + profile events and merges."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from stagekit import Outbox, feed

from scv.domain.model import Identifier, NormalizedEvent, Resolution
from scv.domain.resolver import new_profile_id
from scv.schemas import validator
from scv.streams.resolve import EVENTS, REVIEW, outgoing
from scv.streams.worker import Pipeline
from scv.topics import Topics

COOKIE: Identifier = ("anonymous_id", "ck-1")
# Not @example.*: the default governance rules block those (placeholder addresses).
EMAIL: Identifier = ("email", "jane.doe@acme-corp.co.uk")
CUSTOMER: Identifier = ("customer_id", "C-1")


def event(event_id: str, ts: float, *idents: Identifier, etype: str = "page_view") -> bytes:
    ev = NormalizedEvent(event_id=event_id, source="web", type=etype, ts=ts, identifiers=[*idents])
    return orjson.dumps(ev.to_dict())


def graph(pipeline: Pipeline) -> tuple[dict[str, str], dict[str, Any]]:
    """The identity tables as plain data: owners ``type:value → pid``, live nodes ``pid → node``
    (a merged-away id keeps a retired marker, ``b"-"``; ``\x00decision`` is a counter)."""
    owners = {k.decode(): v.decode() for k, v in pipeline.owners[0].items()}
    nodes = {
        k.decode(): orjson.loads(v)
        for k, v in pipeline.nodes[0].items()
        if v != b"-" and not k.startswith(b"\x00")
    }
    return owners, nodes


def test_login_attaches_identifiers_to_the_anonymous_profile(
    pipeline: Pipeline, topics: Topics, sent: Outbox
) -> None:
    feed(pipeline, topics.identity_events, event("e1", 1000.0, COOKIE), key=b"e1")
    feed(
        pipeline,
        topics.identity_events,
        event("e2", 2000.0, CUSTOMER, EMAIL, COOKIE, etype="login"),
        key=b"e2",
    )

    pid = new_profile_id("e1")
    owners, nodes = graph(pipeline)
    assert owners == {
        "anonymous_id:ck-1": pid,
        "email:jane.doe@acme-corp.co.uk": pid,
        "customer_id:C-1": pid,
    }
    assert list(nodes) == [pid]
    assert nodes[pid]["identifiers"] == {
        "anonymous_id": ["ck-1"],
        "customer_id": ["C-1"],
        "email": ["jane.doe@acme-corp.co.uk"],
    }

    # One profile all along: no merge, one kind=event per input, keyed by the profile.
    assert sent.topics == [topics.profile_events] * 2
    assert [m.key for m in sent] == [pid.encode()] * 2
    first, second = (m.json() for m in sent)
    assert (first["kind"], first["profile_id"], first["event"]["event_id"]) == ("event", pid, "e1")
    assert first["accepted"] == ["anonymous_id:ck-1"]
    assert (second["kind"], second["event"]["event_id"]) == ("event", "e2")
    assert set(second["accepted"]) == {
        "customer_id:C-1",
        "email:jane.doe@acme-corp.co.uk",
        "anonymous_id:ck-1",
    }
    assert second["dropped"] == []


@pytest.mark.parametrize("older", ["cookie", "email"])
def test_login_joining_two_profiles_merges_into_the_older(
    pipeline: Pipeline, topics: Topics, sent: Outbox, older: str
) -> None:
    # Arrival order is fixed (cookie first); the survivor is decided by first-seen event time.
    cookie_ts, email_ts = (1000.0, 2000.0) if older == "cookie" else (2000.0, 1000.0)
    cookie_pid, email_pid = new_profile_id("e-cookie"), new_profile_id("e-email")
    survivor, absorbed = (cookie_pid, email_pid) if older == "cookie" else (email_pid, cookie_pid)

    t = topics
    feed(pipeline, t.identity_events, event("e-cookie", cookie_ts, COOKIE))
    feed(pipeline, t.identity_events, event("e-email", email_ts, EMAIL))
    assert len(graph(pipeline)[1]) == 2  # two profiles before the login
    before = len(sent)
    feed(
        pipeline,
        t.identity_events,
        event("e-login", 3000.0, CUSTOMER, EMAIL, COOKIE, etype="login"),
    )

    out = sent[before:]
    assert [(m.topic, m.key) for m in out] == [
        (t.merges, survivor.encode()),
        (t.profile_events, absorbed.encode()),  # hand-over to the absorbed profile's owner
        (t.profile_events, survivor.encode()),  # then the event, for the survivor
    ]
    merge, handover, routed = (m.json() for m in out)
    assert (merge["kind"], merge["survivor"], merge["absorbed"]) == ("merge", survivor, absorbed)
    assert merge["reason"]["event_id"] == "e-login"
    validator("profiles.merges.v1")(merge)  # the published contract, nothing more
    assert handover["kind"] == "merge"
    assert (handover["profile_id"], handover["survivor"]) == (absorbed, survivor)
    assert handover["reason"] == merge["reason"]
    assert (routed["kind"], routed["profile_id"]) == ("event", survivor)
    assert routed["event"]["event_id"] == "e-login"

    owners, nodes = graph(pipeline)
    assert list(nodes) == [survivor]
    assert set(owners.values()) == {survivor}
    assert set(owners) == {"anonymous_id:ck-1", "email:jane.doe@acme-corp.co.uk", "customer_id:C-1"}
    assert nodes[survivor]["absorbed"] == 1
    assert nodes[survivor]["first_seen"] == 1000.0


def test_unreadable_message_goes_to_the_dlq_and_the_stage_goes_on(
    pipeline: Pipeline, topics: Topics, sent: Outbox
) -> None:
    # One batch: the two bad messages must not stop the good one behind them.
    feed(
        pipeline,
        topics.identity_events,
        b"not json",
        orjson.dumps({"event_id": "no-identifiers-field"}),
        event("e1", 1000.0, COOKIE),
    )

    dlq = topics.dlq(topics.identity_events)
    assert sent.topics == [dlq, dlq, topics.profile_events]
    assert sent[0].value == b"not json"  # the original bytes, untouched
    assert sent[0].header_map["scv.error.stage"] == b"resolve"
    assert sent[0].header_map["scv.error.reason"].startswith(b"unreadable: JSONDecodeError")
    assert sent[0].header_map["scv.error.offset"] == b"0"
    assert sent[1].header_map["scv.error.reason"].startswith(b"unreadable: KeyError")
    assert sent[1].header_map["scv.error.offset"] == b"1"
    assert sent[2].json()["event"]["event_id"] == "e1"
    assert list(graph(pipeline)[1]) == [new_profile_id("e1")]


def command(command_id: str, ctype: str, subject: dict[str, str], *keys: Identifier) -> bytes:
    return orjson.dumps(
        {
            "command_id": command_id,
            "type": ctype,
            "timestamp": 5000,
            "subject": subject,
            "identifiers": [{"type": t, "value": v} for t, v in keys],
        }
    )


def test_unmerge_command_splits_and_tells_the_profile_owner(
    pipeline: Pipeline, topics: Topics, sent: Outbox
) -> None:
    t = topics
    other: Identifier = ("customer_id", "C-2")
    feed(pipeline, t.identity_events, event("e1", 1000.0, EMAIL, COOKIE))
    feed(pipeline, t.identity_events, event("e2", 2000.0, other, COOKIE))
    pid = new_profile_id("e1")
    assert set(graph(pipeline)[1]) == {pid}  # fused through the cookie
    before = len(sent)
    cmd = command("cmd-1", "unmerge", {"profile_id": pid}, other)
    feed(pipeline, t.commands, cmd)
    feed(pipeline, t.commands, b"{not json")
    feed(pipeline, t.commands, command("cmd-2", "unmerge", {"profile_id": "p_x"}, EMAIL))

    out = sent[before:]
    assert [m.topic for m in out] == [
        t.merges,
        t.profile_events,
        t.dlq(t.commands),
        t.dlq(t.commands),
    ]
    split_record, instruction = out[0].json(), out[1].json()
    validator("profiles.merges.v1")(split_record)
    new_pid = split_record["absorbed"]
    assert (split_record["kind"], split_record["survivor"]) == ("split", pid)
    assert split_record["identifiers"] == ["customer_id:C-2"]
    assert split_record["reason"]["rule"] == "unmerge"
    assert split_record["reason"]["event_id"] == "cmd-1"
    assert instruction["kind"] == "split" and out[1].key == pid.encode()
    assert instruction["parts"][new_pid] == ["customer_id:C-2"]
    owners, nodes = graph(pipeline)
    assert owners["customer_id:C-2"] == new_pid
    assert set(nodes) == {pid, new_pid}
    assert out[2].header_map["scv.error.reason"] == b"invalid_json"
    assert out[3].header_map["scv.error.reason"] == b"command: unknown_profile"


def test_a_possible_match_is_published_for_review(pipeline: Pipeline, topics: Topics) -> None:
    review = {
        "candidate": "p_candidate",
        "candidate_identifier": "email:ann@acme-corp.co.uk",
        "score": 9.5,
        "weights": {"surname": 6.1, "given_name": 3.4},
        "upper": 16.87,
        "lower": 6.9,
    }
    ev = NormalizedEvent("e-call", "callcenter", "call", 1000.0, [("phone", "+447700900001")])
    res = Resolution("p_caller", [("phone", "+447700900001")], [], [], True, review=review)
    res.anchor = ("phone", "+447700900001")
    out = outgoing(ev, res)
    assert [name for name, _, _ in out] == [REVIEW, EVENTS]
    # The stage sends the logical names to the real topics.
    assert [pipeline.resolve._names[name] for name, _, _ in out] == [
        topics.review,
        topics.profile_events,
    ]
    _, key, value = out[0]
    request = orjson.loads(value)
    validator("identity.review.v1")(request)
    assert key == b"p_caller"
    assert request["identifiers"] == ["phone:+447700900001"]
    assert request["candidate"] == "p_candidate" and request["event_id"] == "e-call"
