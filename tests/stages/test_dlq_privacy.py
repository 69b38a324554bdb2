"""What a failing message leaves in DLQ headers and logs: where and which exception, never
the data. Exception messages quote what they choke on (``could not convert string to
float: 'jane@…'``), so reasons carry the exception type only and the ERROR line the
traceback's frames without the message."""

from __future__ import annotations

import logging

import orjson
import pytest
from stagekit import Outbox, feed

from scv.streams.worker import Pipeline
from scv.topics import Topics

ADDRESS = "jane.doe@acme-corp.co.uk"


def test_a_failed_profile_step_names_the_exception_not_the_data(
    pipeline: Pipeline, topics: Topics, sent: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    bad = orjson.dumps({"kind": ADDRESS, "profile_id": "p_1"})
    with caplog.at_level(logging.DEBUG):
        feed(pipeline, topics.profile_events, bad)

    [dead] = sent.to(topics.dlq(topics.profile_events))
    assert dead.value == bad
    assert dead.header_map["scv.error.reason"] == b"profile_step: ValueError"
    assert "profile step failed with ValueError" in caplog.text
    assert "profiles.py" in caplog.text  # the frames are there for the bug report
    assert ADDRESS not in caplog.text


def test_an_unreadable_identity_event_names_the_exception_not_the_data(
    pipeline: Pipeline, topics: Topics, sent: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    bad = orjson.dumps(
        {"event_id": "e1", "source": "web", "type": "x", "ts": ADDRESS, "identifiers": []}
    )
    with caplog.at_level(logging.DEBUG):
        feed(pipeline, topics.identity_events, bad)

    [dead] = sent.to(topics.dlq(topics.identity_events))
    assert dead.header_map["scv.error.reason"] == b"unreadable: ValueError"
    assert ADDRESS not in caplog.text


def test_a_command_id_cannot_forge_log_lines(
    pipeline: Pipeline, topics: Topics, sent: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    feed(
        pipeline,
        topics.raw("web"),
        orjson.dumps(
            {
                "event_id": "w1",
                "timestamp": 0,
                "type": "page_view",
                "anonymous_id": "ck-1",
                "session_id": "s",
            }
        ),
    )
    [normalized] = sent.to(topics.identity_events)
    assert normalized.value is not None
    feed(pipeline, topics.identity_events, normalized.value)  # the cookie is known now
    command = {
        "command_id": "c-1\n2026-01-01 00:00:00 INFO scv forged line",
        "type": "ban_link",
        "timestamp": 0,
        "subject": {"type": "anonymous_id", "value": "ck-1"},
        "identifiers": [
            {"type": "anonymous_id", "value": "ck-1"},
            {"type": "customer_id", "value": "C-2"},
        ],
    }
    with caplog.at_level(logging.INFO):
        feed(pipeline, topics.commands, orjson.dumps(command))
    [line] = [r.getMessage() for r in caplog.records if "command" in r.getMessage()]
    assert "\n" not in line and "forged line" in line
