"""The normalise agent: raw bytes from ``raw.<source>.v1`` → ``identity.events.v1`` or DLQ."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest
from agentkit import Outbox, feed_from, load_examples

from scv.domain.model import SOURCES, NormalizedEvent
from scv.domain.normalize import normalize

VALID_EXAMPLES = load_examples().VALID_EXAMPLES


async def test_valid_web_event_becomes_one_normalized_identity_event(
    stages: SimpleNamespace, sent: Outbox
) -> None:
    raw = VALID_EXAMPLES["web"][4]  # signup: customer id, mixed-case email, cookie
    assert raw["type"] == "signup"
    value = orjson.dumps(raw)

    async with stages.normalize.normalize_agent.test_context() as agent:
        await feed_from(agent, stages.topics.raw("web"), value, key=b"ck-jane-1")

    assert sent.topics == [stages.topics.identity_events]
    out = sent[0]
    assert out.key == raw["event_id"].encode()
    event = NormalizedEvent.from_dict(out.json())
    assert (event.event_id, event.source, event.type) == ("web-5", "web", "signup")
    assert ("email", "jane.doe@example.com") in event.identifiers  # lower-cased
    assert ("customer_id", "C-1001") in event.identifiers
    assert ("anonymous_id", "ck-jane-1") in event.identifiers
    # The agent adds nothing and loses nothing: it publishes exactly the domain's result.
    assert event == normalize("web", value, stages.normalize._config)


@pytest.mark.parametrize("source", SOURCES)
async def test_source_is_taken_from_the_input_topic(
    stages: SimpleNamespace, sent: Outbox, source: str
) -> None:
    raw = VALID_EXAMPLES[source][0]
    async with stages.normalize.normalize_agent.test_context() as agent:
        await feed_from(agent, stages.topics.raw(source), orjson.dumps(raw))

    assert sent.topics == [stages.topics.identity_events]
    assert sent[0].json()["source"] == source


async def test_bad_events_go_to_their_dlq_and_the_agent_goes_on(
    stages: SimpleNamespace, sent: Outbox
) -> None:
    topics = stages.topics
    web, email = topics.raw("web"), topics.raw("email")
    bad_json = b'{"event_id": "web-x", "type": '
    not_schema = orjson.dumps({"event_id": "em-x", "nonsense": True})
    good = orjson.dumps(VALID_EXAMPLES["web"][0])

    async with stages.normalize.normalize_agent.test_context() as agent:
        first = await feed_from(agent, web, bad_json, key=b"k-bad", partition=2)
        second = await feed_from(agent, email, not_schema, key=b"k-schema", partition=1)
        await feed_from(agent, web, good, key=b"k-good")
        assert agent.crash_reason is None

    assert sent.topics == [topics.dlq(web), topics.dlq(email), topics.identity_events]

    dlq = sent[0]
    assert dlq.key == b"k-bad"
    assert dlq.value == bad_json  # original bytes, untouched
    assert dlq.header_map == {
        "scv.error.reason": b"invalid_json",
        "scv.error.stage": b"normalize",
        "scv.error.topic": web.encode(),
        "scv.error.partition": b"2",
        "scv.error.offset": str(first.message.offset).encode(),
    }

    schema = sent[1]
    assert schema.key == b"k-schema"
    assert schema.value == not_schema
    headers = schema.header_map
    assert headers["scv.error.reason"].startswith(b"schema:")
    assert headers["scv.error.topic"] == email.encode()
    assert headers["scv.error.partition"] == b"1"
    assert headers["scv.error.offset"] == str(second.message.offset).encode()
    assert first.message.offset != second.message.offset

    assert sent[2].json()["event_id"] == VALID_EXAMPLES["web"][0]["event_id"]
