"""``SCV_STAGES``: a worker runs (and its consumer subscribes to) only the stages it is given."""

from __future__ import annotations

import pytest
from conftest import MakePipeline
from pydantic import ValidationError
from stagekit import Outbox, feed

from scv.settings import Settings
from scv.topics import Topics

TOPICS = Topics(Settings(topic_prefix=""))
FRONT = {*TOPICS.raw_topics, TOPICS.identity_events, TOPICS.commands}


def test_every_stage_by_default(make_pipeline: MakePipeline) -> None:
    assert set(make_pipeline().topics) == {*FRONT, TOPICS.profile_events}


def test_a_worker_given_some_stages_reads_only_their_inputs(make_pipeline: MakePipeline) -> None:
    assert set(make_pipeline(stages="normalize,resolve").topics) == FRONT
    assert make_pipeline(stages="profiles").topics == [TOPICS.profile_events]


def test_a_message_for_a_stage_not_run_here_is_left_alone(
    make_pipeline: MakePipeline, sent: Outbox
) -> None:
    """Only a misassignment could bring one, and then nothing may be half done: the message
    is neither processed nor dead-lettered by a worker that does not run its stage."""
    back = make_pipeline(stages="profiles")
    feed(back, TOPICS.raw_topics[0], b'{"type": "page_view"}')
    assert sent == []


@pytest.mark.parametrize("bad", ["", "normalise", "resolve,", "profiles resolve"])
def test_unknown_stage_names_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        Settings(stages=bad)
