"""``scv resolve --diff`` against the embedded broker: reads recorded identity events from the
topic, replays them under two rule files and reports the split, without committing offsets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from scv.cli import main
from scv.domain.model import Identifier, NormalizedEvent
from scv.kafka import consumer_config, producer_config
from scv.settings import Settings, get_settings
from scv.topics import Topics, create_topics

pytestmark = pytest.mark.integration

PHONE = "+447700900123"  # Ofcom drama range: not a real number

BASELINE = """
merge_cap: 100
identifiers:
  customer_id:  {max_per_profile: 1,  priority: 100}
  email:        {max_per_profile: 5,  priority: 90}
  phone:        {max_per_profile: 3,  priority: 80}
  anonymous_id: {max_per_profile: 50, priority: 30}
blocked:
  values: ["null", "unknown"]
"""

#: The same rules, plus the household phone that glued two people together.
CANDIDATE = (
    BASELINE
    + f"""  exact:
    - "phone:{PHONE}"
"""
)


def event(event_id: str, ts: float, *idents: Identifier) -> NormalizedEvent:
    return NormalizedEvent(event_id, "callcenter", "call", ts, list(idents))


#: Jane and John share a landline; Ann is unrelated. Written out of time order on purpose.
HISTORY = [
    event("john-call", 1_714_600_000.0, ("email", "john@x.test"), ("phone", PHONE)),
    event("jane-web", 1_714_500_000.0, ("email", "jane@x.test"), ("anonymous_id", "ck-1")),
    event("jane-call", 1_714_550_000.0, ("email", "jane@x.test"), ("phone", PHONE)),
    event("ann-order", 1_714_560_000.0, ("customer_id", "C-7"), ("email", "ann@x.test")),
    event("ann-web", 1_714_570_000.0, ("email", "ann@x.test"), ("anonymous_id", "ck-9")),
]


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Point ``get_settings()`` (cached, read from SCV_*) at the test broker and topics."""
    for name, value in {
        "SCV_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "SCV_TOPIC_PREFIX": settings.topic_prefix,
        "SCV_APP_ID": settings.app_id,
        "SCV_SESSION_TIMEOUT_S": str(settings.session_timeout_s),
        "SCV_DATA_DIR": str(settings.data_dir),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SCV_RULES_PATH", raising=False)
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def produce_history(settings: Settings) -> str:
    create_topics(settings)
    topic = Topics(settings).identity_events
    producer = Producer(producer_config(settings))
    for ev in HISTORY:
        producer.produce(topic, key=ev.event_id.encode(), value=orjson.dumps(ev.to_dict()))
    producer.produce(topic, key=b"junk", value=b"{not json")
    assert producer.flush(10) == 0
    return topic


def test_blocking_a_shared_phone_reports_the_split(
    cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = produce_history(cli_env)
    (tmp_path / "base.yaml").write_text(BASELINE)
    (tmp_path / "new.yaml").write_text(CANDIDATE)
    rules = ["--rules", str(tmp_path / "new.yaml"), "--baseline-rules", str(tmp_path / "base.yaml")]

    # Base topic name: the prefix is added.
    assert main(["resolve", "--from-topics", "identity.events.v1", *rules, "--diff"]) == 0
    text = capsys.readouterr().out
    assert f"6 records from {topic} (1 undecodable, 0 duplicate event ids skipped)" in text
    assert "5 events: profiles 2 -> 3 (1 unchanged), 1 event moved" in text
    assert "0 would merge, 1 would split" in text
    assert f"because: phone:{PHONE} dropped (blocked) on 2 events, first jane-call" in text
    assert "would merge (0)\n  none\n" in text

    # Full topic name, JSON output written to a file too.
    out = tmp_path / "diff.json"
    argv = ["resolve", "--from-topics", topic, *rules, "--diff", "--json", str(out)]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    assert printed["input"] == {
        "sources": [topic],
        "records": 6,
        "undecodable": 1,
        "duplicate_event_ids": 0,
        "order": "event time (ts, event_id)",
    }
    [split] = printed["diff"]["splits"]
    assert [(p["events"], p["identifiers"]) for p in split["parts"]] == [
        (2, ["email:jane@x.test", "anonymous_id:ck-1"]),
        (1, ["email:john@x.test"]),
    ]
    assert printed["diff"]["merges"] == []

    # Read-only: the worker's group has committed nothing.
    consumer = Consumer(consumer_config(cli_env, cli_env.app_id))
    try:
        [committed] = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        assert committed.offset < 0
    finally:
        consumer.close()


def test_unknown_topic_is_an_error(
    cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "new.yaml").write_text(CANDIDATE)
    argv = ["resolve", "--from-topics", "nope.v1", "--rules", str(tmp_path / "new.yaml"), "--diff"]
    assert main(argv) == 2
    assert f"topic 'nope.v1' not found (nor '{cli_env.topic_prefix}nope.v1')" in (
        capsys.readouterr().err
    )
