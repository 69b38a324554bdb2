"""The normalise stage: raw bytes from ``raw.<source>.v1`` → ``identity.events.v1`` or DLQ."""

from __future__ import annotations

import orjson
import pytest
from stagekit import Msg, Outbox, feed, load_examples

from scv.domain.model import SOURCES, NormalizedEvent
from scv.domain.normalize import normalize
from scv.streams.worker import Pipeline
from scv.topics import Topics

VALID_EXAMPLES = load_examples().VALID_EXAMPLES


def test_valid_web_event_becomes_one_normalized_identity_event(
    pipeline: Pipeline, topics: Topics, sent: Outbox
) -> None:
    raw = VALID_EXAMPLES["web"][4]  # signup: customer id, mixed-case email, cookie
    assert raw["type"] == "signup"
    value = orjson.dumps(raw)

    feed(pipeline, topics.raw("web"), value, key=b"ck-jane-1")

    assert sent.topics == [topics.identity_events]
    out = sent[0]
    assert out.key == raw["event_id"].encode()
    event = NormalizedEvent.from_dict(out.json())
    assert (event.event_id, event.source, event.type) == ("web-5", "web", "signup")
    assert ("email", "jane.doe@example.com") in event.identifiers  # lower-cased
    assert ("customer_id", "C-1001") in event.identifiers
    assert ("anonymous_id", "ck-jane-1") in event.identifiers
    # The stage adds nothing and loses nothing: it publishes exactly the domain's result.
    assert event == normalize("web", value, pipeline.normalize._config)


@pytest.mark.parametrize("source", SOURCES)
def test_source_is_taken_from_the_input_topic(
    pipeline: Pipeline, topics: Topics, sent: Outbox, source: str
) -> None:
    raw = VALID_EXAMPLES[source][0]
    feed(pipeline, topics.raw(source), orjson.dumps(raw))

    assert sent.topics == [topics.identity_events]
    assert sent[0].json()["source"] == source


def test_bad_events_go_to_their_dlq_and_the_stage_goes_on(
    pipeline: Pipeline, topics: Topics, sent: Outbox
) -> None:
    web, email = topics.raw("web"), topics.raw("email")
    bad_json = b'{"event_id": "web-x", "type": '
    not_schema = orjson.dumps({"event_id": "em-x", "nonsense": True})
    good = orjson.dumps(VALID_EXAMPLES["web"][0])

    # One batch, as the consumer hands it over: the bad events must not stop the good one.
    pipeline.process(
        [
            Msg(web, bad_json, b"k-bad", partition_=2, offset_=17),
            Msg(email, not_schema, b"k-schema", partition_=1, offset_=42),
            Msg(web, good, b"k-good", partition_=0, offset_=18),
        ]
    )

    assert sent.topics == [topics.dlq(web), topics.dlq(email), topics.identity_events]

    dlq = sent[0]
    assert dlq.key == b"k-bad"
    assert dlq.value == bad_json  # original bytes, untouched
    assert dlq.header_map == {
        "scv.error.reason": b"invalid_json",
        "scv.error.stage": b"normalize",
        "scv.error.topic": web.encode(),
        "scv.error.partition": b"2",
        "scv.error.offset": b"17",
    }

    schema = sent[1]
    assert schema.key == b"k-schema"
    assert schema.value == not_schema
    headers = schema.header_map
    assert headers["scv.error.reason"].startswith(b"schema:")
    assert headers["scv.error.topic"] == email.encode()
    assert headers["scv.error.partition"] == b"1"
    assert headers["scv.error.offset"] == b"42"

    assert sent[2].json()["event_id"] == VALID_EXAMPLES["web"][0]["event_id"]
