"""``wait_drained`` against the real broker: it returns once the group has committed
everything, and gives up after the stall period, naming the topic and its lag, when nothing
consumes a topic (rather than waiting out the whole timeout)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from scv.kafka import consumer_config, producer_config
from scv.runner import DrainTimeout, partition_lags, wait_drained
from scv.settings import Settings
from scv.topics import TopicSpec, create_topics

pytestmark = pytest.mark.integration


def _topic_with(settings: Settings, name: str, messages: int, partitions: int = 2) -> str:
    topic = settings.topic(name)
    create_topics(settings, [TopicSpec(topic, partitions), TopicSpec(settings.topic("idle"), 1)])
    producer = Producer(producer_config(settings))
    for i in range(messages):
        producer.produce(topic, value=b"x", key=f"k{i}".encode())
    assert producer.flush(10) == 0
    return topic


def test_nothing_consuming_gives_up_after_the_stall_period(settings: Settings) -> None:
    topic = _topic_with(settings, "stuck.v1", 25)
    idle = settings.topic("idle")
    started = time.monotonic()
    with pytest.raises(DrainTimeout) as caught:
        wait_drained(settings, [topic, idle], timeout=120, settle=0.5, stall=3.0)
    waited = time.monotonic() - started
    assert 3.0 <= waited < 30, waited  # the stall period, not the 120 s timeout
    assert isinstance(caught.value, TimeoutError)  # `except TimeoutError` still catches it
    message = str(caught.value)
    assert message.startswith("not drained: no progress for ")
    assert f"{topic} lag 25 (unchanged for " in message
    assert f"{idle} lag 0" in message
    assert caught.value.lags == {topic: 25, idle: 0}


def test_committed_to_the_end_is_drained(settings: Settings) -> None:
    topic = _topic_with(settings, "done.v1", 10)
    lags = partition_lags(settings, [topic])
    assert sum(lags.values()) == 10 and {t for t, _ in lags} == {topic}
    # the group commits the end of every partition, as a worker does once it is done
    consumer = Consumer(consumer_config(settings, settings.app_id))
    try:
        ends = [TopicPartition(topic, p, n) for (_, p), n in lags.items()]
        consumer.commit(offsets=ends, asynchronous=False)
    finally:
        consumer.close()
    before = time.time()
    drained_at = wait_drained(settings, [topic], timeout=60, settle=0.5, stall=10.0)
    assert before - 1 <= drained_at <= time.time()
