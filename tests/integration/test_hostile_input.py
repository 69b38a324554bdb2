"""Hostile input through a real worker on the broker: it stays up, every bad message lands on
its DLQ topic with a reason, every good event reaches ``profiles.v1``.

The cases are the stage fuzzer's (``tests/stages/hostile.py``, drawn with a fixed seed):
thousands of malformed, truncated, too deep, wrongly typed and hostile messages on every
raw topic and on ``identity.commands.v1``, with good events of every source in between.
The outcome is read back from the topics, as activation services would, and judged by the
same ``fuzzkit.check`` as the stage fuzzer. The worker runs with an API token, so the
exposure rules are checked on the real HTTP port too.
"""

from __future__ import annotations

import itertools
import sys
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer
from pipeline import Pipeline
from pydantic import SecretStr

from scv.kafka import producer_config
from scv.runner import read_topic

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stages"))
from fuzzkit import COMMANDS, Case, case_key, check, topic_of
from hostile import BLOCK, batches
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from stagekit import Outbox, Sent

pytestmark = pytest.mark.integration

TOKEN = "it-hostile-token"
WORKER_SETTINGS = {"api_token": SecretStr(TOKEN)}
#: Producers refuse messages over ``message.max.bytes`` (1 MB) before they reach a broker;
#: the megabyte-sized cases are the stage fuzzer's business.
SENDABLE = 900_000
BATCHES = 150


def hostile_cases() -> list[Case]:
    """``BATCHES`` fuzzer batches drawn with a fixed seed, each in a block of ids of its own,
    so batches share no identifier. Block numbers have four digits: every batch's ids then
    have the same length, and what hypothesis draws does not depend on the block."""
    drawn: list[Case] = []
    blocks = itertools.count(1000)

    @seed(20261125)
    @settings(
        max_examples=BATCHES,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def draw(data: st.DataObject) -> None:
        drawn.extend(data.draw(batches(first=next(blocks) * BLOCK)))

    draw()
    return [c for c in drawn if c.value is None or len(c.value) <= SENDABLE]


def get(pipeline: Pipeline, path: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(pipeline.worker.url + path)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as err:
        return int(err.code), bytes(err.read())


def test_a_worker_survives_thousands_of_hostile_events(pipeline: Pipeline) -> None:
    cases = hostile_cases()
    topics = pipeline.topics
    producer = Producer(producer_config(pipeline.settings))
    for group in ("raw", "commands"):  # good commands name identifiers the events bring
        for i, case in enumerate(cases):
            if (case.target == COMMANDS) == (group == "commands"):
                producer.produce(topic_of(topics, case.target), value=case.value, key=case_key(i))
        assert producer.flush(30) == 0
        pipeline.drain(timeout=120)
    del producer  # closed while the broker is up

    # Up, and answering only the probes without the token.
    assert pipeline.worker.proc is not None and pipeline.worker.proc.poll() is None
    assert get(pipeline, "/livez") == (200, b'{"live":true}')
    assert get(pipeline, "/metrics")[0] == 401
    status, metrics = get(pipeline, "/metrics", TOKEN)
    assert status == 200 and b"scv_dlq_total" in metrics

    out = Outbox()
    names = [topics.identity_events, topics.profile_events, topics.profiles]
    names += [topics.dlq(name) for name in topics.dead_lettered]
    for name in names:
        for rec in read_topic(pipeline.settings, name):
            out.append(Sent(rec.topic, rec.key, rec.value, list(rec.headers.items())))
    outcome = check(pipeline, out, cases)  # type: ignore[arg-type]

    bad = sum(n for kind, n in outcome.kinds.items() if kind.startswith("bad:"))
    assert bad >= 1500
    assert outcome.counts["bad_dead_lettered"] == bad
    assert outcome.counts["good_on_profiles"] >= BATCHES * 2
    assert {kind.split(":")[1] for kind in outcome.kinds} == {
        "web",
        "email",
        "transactions",
        "callcenter",
        COMMANDS,
    }
    log = pipeline.worker.log_path.read_text(errors="replace")
    assert "Traceback" not in log
    good = [orjson.loads(c.value or b"") for c in cases if c.expect == "good"]
    leaked = [d["email"] for d in good if "email" in d and d["email"].lower() in log.lower()]
    assert leaked == []
