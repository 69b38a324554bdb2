"""What a worker needs the broker to allow, and the one line when it is refused (no broker:
tests/integration/test_kafka_security.py checks the same against Apache Kafka's ACLs)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import AclOperation

from scv.kafka import refusal
from scv.settings import Settings
from scv.streams.access import READ, WRITE, missing, refused_line, worker_needs
from scv.topics import Topics, topic_specs

DESCRIBE = AclOperation.DESCRIBE


def make(**values: object) -> Settings:
    base: dict[str, object] = {
        "bootstrap_servers": "k1:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "scv",
        "sasl_password": "pw",
        "topic_prefix": "p-",
        "app_id": "app",
    }
    return Settings(**(base | values))  # type: ignore[arg-type]


def test_a_worker_of_every_stage_reads_and_writes_only_its_own_topics() -> None:
    settings = make()
    needs = worker_needs(settings)
    names = {spec.name for spec in topic_specs(settings)}
    assert set(needs.topics) <= names
    assert all(name.startswith("p-") for name in needs.topics)
    topics = Topics(settings)
    # what the worker consumes, or reads back on restore
    reads = {name for name, ops in needs.topics.items() if READ in ops}
    assert reads == {
        *topics.raw_topics,
        topics.identity_events,
        topics.commands,
        topics.profile_events,
        topics.actions,
        topics.workers,
        *(topics.changelog(t) for t in ("identity-owners", "identity-nodes")),
        *(topics.changelog(t) for t in ("identity-suppressed", "profiles", "carts-due")),
    }
    # outputs only: nothing reads them back
    for name in (topics.profiles, topics.merges, topics.review, topics.audit):
        assert needs.topics[name] == {WRITE}
    assert needs.topics[topics.raw("web")] == {READ}
    # one group, joined; the restore and directory consumers only assign partitions
    assert needs.groups == {"app": {READ}}


def test_a_worker_of_some_stages_needs_less() -> None:
    topics = Topics(make())
    needs = worker_needs(make(stages="profiles"))
    assert topics.raw("web") not in needs.topics
    assert topics.identity_events not in needs.topics
    assert topics.changelog("identity-nodes") not in needs.topics
    assert needs.topics[topics.profile_events] == {READ, WRITE}
    assert needs.topics[topics.changelog("carts-due")] == {READ, WRITE}
    normalize = worker_needs(make(stages="normalize"))
    assert set(normalize.topics) == {
        *topics.raw_topics,
        *(topics.dlq(t) for t in topics.raw_topics),
        topics.identity_events,
        topics.workers,
    }


def test_missing_lists_what_is_not_granted_and_skips_what_is_not_known() -> None:
    needs = {
        ("topic", "a"): {READ, WRITE},
        ("topic", "b"): {WRITE},
        ("topic", "c"): {READ},
        ("group", "g"): {READ},
    }
    granted = {
        ("topic", "a"): [READ, DESCRIBE],
        ("topic", "b"): None,  # the broker does not say (tansu)
        ("group", "g"): [],  # refused outright
    }
    assert missing(needs, granted) == {("topic", "a"): [WRITE], ("group", "g"): [READ]}
    assert missing(needs, {("topic", "a"): [READ, WRITE, DESCRIBE]}) == {}


def test_the_refusal_is_one_line_naming_user_operations_and_resources() -> None:
    line = refused_line(
        make(),
        {
            ("topic", "p-raw.web.v1"): [READ],
            ("topic", "p-actions.v1"): [READ, WRITE],
            ("group", "app"): [READ],
        },
    )
    assert "\n" not in line
    assert line.startswith("user 'scv' is not authorized by Kafka at k1:9093 to ")
    assert "READ group app; READ topics p-actions.v1, p-raw.web.v1; WRITE topic p-actions.v1" in (
        line
    )
    assert "docs/configuration.md" in line


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (KafkaError._AUTHENTICATION, ["authentication failed", "'scv'", "SCV_SASL_PASSWORD"]),
        (KafkaError._SSL, ["TLS handshake", "SCV_SSL_CAFILE"]),
    ],
)
def test_a_refused_login_is_one_line_naming_the_settings(code: int, words: list[str]) -> None:
    line = refusal(make(), KafkaError(code, "sasl_ssl://k1:9093/bootstrap: it failed"))
    assert line is not None and "\n" not in line
    assert "k1:9093" in line and "it failed" in line
    for word in words:
        assert word in line


@pytest.mark.parametrize(
    "code", [KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT]
)
def test_a_broker_out_of_reach_is_not_a_refusal(code: int) -> None:
    assert refusal(make(), KafkaError(code, "down")) is None
