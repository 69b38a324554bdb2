"""The embedded tansu broker, topic creation and librdkafka client settings against it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from scv.brokers import Broker, EmbeddedBroker, free_port
from scv.kafka import admin_config, consumer_config, producer_config
from scv.settings import Settings
from scv.topics import TopicLayoutError, Topics, TopicSpec, create_topics, describe, topic_specs

pytestmark = pytest.mark.integration


def test_broker_answers_metadata(broker: Broker) -> None:
    assert broker.running
    metadata = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=5)
    listed = sorted(f"{b.host}:{b.port}" for b in metadata.brokers.values())
    assert listed == sorted(broker.bootstrap.split(","))


def test_broker_names_its_version_and_processes(broker: Broker) -> None:
    """What the benchmarks report and read CPU time from: tansu's process, or one JVM per
    Apache Kafka node."""
    assert broker.version and broker.version[0].isdigit()
    assert len(broker.pids) == (len(broker.bootstrap.split(",")) if broker.kind == "kafka" else 1)
    assert all(Path(f"/proc/{pid}/stat").exists() for pid in broker.pids)


def test_create_topics_creates_everything_and_is_idempotent(settings: Settings) -> None:
    specs = topic_specs(settings)
    first = create_topics(settings)
    assert first == {spec.name: "created" for spec in specs}

    existing = describe(settings)
    assert existing == {spec.name: spec.partitions for spec in specs}
    topics = Topics(settings)
    assert existing[topics.identity_events] == 1
    assert existing[topics.commands_dlq] == 1
    assert existing[topics.raw("web")] == settings.raw_partitions
    assert existing[topics.profiles] == settings.stage_partitions

    assert create_topics(settings) == {spec.name: "exists" for spec in specs}


def test_profiles_topic_is_compacted(settings: Settings) -> None:
    create_topics(settings)
    admin = AdminClient(admin_config(settings))
    topics = Topics(settings)
    resources = [
        ConfigResource(ResourceType.TOPIC, topics.profiles),
        ConfigResource(ResourceType.TOPIC, topics.actions),
    ]
    configs = {
        resource.name: {key: entry.value for key, entry in future.result().items()}
        for resource, future in admin.describe_configs(resources).items()
    }
    assert configs[topics.profiles]["cleanup.policy"] == "compact"
    # tansu reports only explicitly set configs; real Kafka reports "delete" here.
    assert configs[topics.actions].get("cleanup.policy", "delete") == "delete"


def test_wrong_partition_count_is_reported(settings: Settings) -> None:
    topics = Topics(settings)
    admin = AdminClient(admin_config(settings))
    admin.create_topics([NewTopic(topics.identity_events, 4, 1)])[topics.identity_events].result()
    admin.create_topics([NewTopic(topics.raw("web"), 2, 1)])[topics.raw("web")].result()

    with pytest.raises(TopicLayoutError) as info:
        create_topics(settings)
    message = str(info.value)
    assert f"topic {topics.identity_events} has 4 partitions, expected 1 — delete it" in message
    assert (
        f"topic {topics.raw('web')} has 2 partitions, expected {settings.raw_partitions} — "
        "delete it or change SCV_RAW_PARTITIONS"
    ) in message
    # The other topics were still created, so fixing the two is enough.
    assert topics.profiles in describe(settings)


def test_compacted_topic_without_compaction_is_reported(settings: Settings) -> None:
    name = Topics(settings).profiles
    admin = AdminClient(admin_config(settings))  # keep a reference until the future is done
    admin.create_topics([NewTopic(name, 4, 1)])[name].result()
    with pytest.raises(TopicLayoutError, match=f"topic {name} has cleanup.policy=.*compact"):
        create_topics(settings, [TopicSpec(name, 4, compacted=True)])


def test_keyed_round_trip_is_fast(settings: Settings) -> None:
    """A produce/consume round trip with the shared client settings, group join included.

    With session_timeout_s=2 tansu lets a consumer join in about 1 s; the default 45 s
    session timeout would make this test wait ~23 s.
    """
    topic = settings.topic("roundtrip.v1")
    create_topics(settings, [TopicSpec(topic, 3)])

    producer = Producer(producer_config(settings))
    keys = [f"profile-{i}".encode() for i in range(30)]
    for key in keys:
        producer.produce(topic, key=key, value=b"v:" + key)
    assert producer.flush(10) == 0

    consumer = Consumer(consumer_config(settings, f"{settings.app_id}-roundtrip"))
    joined: list[float] = []
    start = time.monotonic()
    consumer.subscribe([topic], on_assign=lambda c, parts: joined.append(time.monotonic()))
    received: dict[bytes, tuple[int, bytes]] = {}
    try:
        while len(received) < len(keys) and time.monotonic() - start < 20:
            msg = consumer.poll(0.1)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            received[msg.key()] = (msg.partition(), msg.value())
    finally:
        consumer.close()
    total = time.monotonic() - start
    assert joined, "consumer never got an assignment"
    join = joined[0] - start
    print(f"\ngroup join {join:.2f}s, round trip {total:.2f}s")

    assert {k: v for k, (_, v) in received.items()} == {k: b"v:" + k for k in keys}
    assert join < 5.0, f"group join took {join:.1f}s"
    assert total < 8.0
    # murmur2_random: the same key always lands on the same partition as in Faust/Java.
    from aiokafka.partitioner import murmur2

    for key, (partition, _) in received.items():
        assert partition == (murmur2(key) & 0x7FFFFFFF) % 3


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    log_path = tmp_path / "tansu.log"
    embedded = EmbeddedBroker(log_path=log_path).start()
    pid = embedded.pid
    assert pid is not None and _alive(pid)
    AdminClient({"bootstrap.servers": embedded.bootstrap}).list_topics(timeout=5)
    embedded.stop()
    embedded.stop()  # idempotent
    assert not embedded.running
    assert not _alive(pid)  # reaped: not even a zombie is left
    assert "ready" in log_path.read_text()


def test_context_manager_and_fixed_port(tmp_path: Path) -> None:
    port = free_port()
    with EmbeddedBroker(port=port, log_path=tmp_path / "b.log") as embedded:
        assert embedded.bootstrap == f"127.0.0.1:{port}"
        assert embedded.running
        pid = embedded.pid
    assert pid is not None and not _alive(pid)


def test_taken_port_is_reported(broker: Broker, tmp_path: Path) -> None:
    """The running broker must not be mistaken for a newly started one."""
    port = int(broker.bootstrap.split(",")[0].rpartition(":")[2])
    clash = EmbeddedBroker(port=port, log_path=tmp_path / "clash.log")
    with pytest.raises(RuntimeError, match="already in use"):
        clash.start(timeout=10)
    assert not clash.running
    assert broker.running


def test_start_failure_reports_the_log(tmp_path: Path) -> None:
    """When tansu dies during start-up, the error carries the tail of its own log."""
    fake = tmp_path / "fake-tansu"
    fake.write_text('#!/bin/sh\necho "Error: UnsupportedStorageUrl" >&2\nexit 3\n')
    fake.chmod(0o755)
    failing = EmbeddedBroker(log_path=tmp_path / "bad.log", binary=str(fake))
    with pytest.raises(RuntimeError, match=r"(?s)exit code 3.*UnsupportedStorageUrl"):
        failing.start(timeout=10)
    assert not failing.running


def _alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_stage_output_is_on_the_broker_in_order_once_flushed(settings: Settings) -> None:
    """What a batch sends through ``Output`` is delivered, in order per key, by ``flush``."""
    from scv.runner import read_topic
    from scv.streams.output import DeliveryFailed, Output

    create_topics(settings)
    topic = Topics(settings).profiles
    output = Output(settings)
    for i in range(2000):
        output.send(topic, f"p{i % 7}".encode(), f"{i}".encode())
    output.flush()
    records = read_topic(settings, topic)
    assert len(records) == 2000
    for key in {r.key for r in records}:
        values = [int(r.value or b"") for r in records if r.key == key]
        assert values == sorted(values)  # a key's messages arrive in the order sent

    dead = Output(settings.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"}))
    dead.send(topic, b"k", b"v")
    with pytest.raises(DeliveryFailed):
        dead.flush(timeout=2.0)
    dead.close()
