"""Security for real: scv on an Apache Kafka that speaks only SASL_SSL and enforces ACLs.

The module starts its own one-node Apache Kafka (KRaft) whose client listener is SASL_SSL:
TLS with a CA and broker certificate made here with ``openssl`` (PEM key and trust stores),
SCRAM-SHA-512 users created when the storage is formatted, and the StandardAuthorizer with
``allow.everyone.if.no.acl.found=false``, so a principal may do only what an ACL allows.
``admin`` is the super user; it creates scv's topics and grants the ``scv`` user exactly
what docs/configuration.md#acls says a worker needs: READ and WRITE on topics with the
prefix, READ on the group ``SCV_APP_ID``.

Then a real ``scv worker`` runs as ``scv`` and turns events into profiles, and workers that
the broker refuses (a wrong password, a user without its group ACL, a user that may not read
one input) stop at start-up within seconds with one line naming the problem.

The controller listener stays PLAINTEXT on loopback; requests on it come from the node
itself as ``User:ANONYMOUS``, which is therefore a super user too (no client can reach that
listener through the advertised SASL_SSL one).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from certs import BrokerCerts, make_broker_certs
from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from pipeline import Pipeline, now_iso, uid

from scv.brokers import ApacheKafka, free_port
from scv.kafka import admin_config
from scv.runner import WorkerProcess
from scv.settings import Settings
from scv.topics import Topics, create_topics, topic_specs

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

MECHANISM = "SCRAM-SHA-512"
PREFIX, APP_ID = "sec-", "scv-sec"
#: SCRAM users made at format time: the super user, scv's worker, and two users that lack
#: an ACL a worker needs.
PASSWORDS = {
    "admin": "admin-secret",
    "scv": "scv-secret",
    "nogroup": "nogroup-secret",
    "partial": "partial-secret",
}
#: How long a refused worker may take to stop (it takes about 3 s: Python start-up, then
#: one round trip to the broker).
REFUSED_WITHIN_S = 30.0


@dataclass
class Secured:
    kafka: ApacheKafka
    certs: BrokerCerts
    work: Path

    def settings(self, user: str, password: str | None = None, **values: Any) -> Settings:
        """Settings of a client that logs in as ``user`` over SASL_SSL."""
        base: dict[str, Any] = {
            "bootstrap_servers": self.kafka.bootstrap,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": MECHANISM,
            "sasl_username": user,
            "sasl_password": PASSWORDS[user] if password is None else password,
            "ssl_cafile": str(self.certs.ca),
            "topic_prefix": PREFIX,
            "app_id": APP_ID,
            "session_timeout_s": 2.0,
        }
        return Settings(**(base | values))

    def worker(self, name: str, settings: Settings) -> WorkerProcess:
        """A ``scv worker`` with a state folder and web port of its own (not started)."""
        settings = settings.model_copy(
            update={"data_dir": self.work / name / "state", "web_port": free_port()}
        )
        return WorkerProcess(settings, self.work / name / "worker.log")


def _jaas(user: str) -> str:
    return (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{user}" password="{PASSWORDS[user]}";'
    )


def _broker_config(certs: BrokerCerts) -> dict[str, str]:
    """One SASL_SSL listener for clients and the broker itself; the controller on
    PLAINTEXT."""
    return {
        "listeners": "SASL_SSL://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": "SASL_SSL://{host}:{port}",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "SASL_SSL",
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config": _jaas("admin"),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin;User:ANONYMOUS",
        "allow.everyone.if.no.acl.found": "false",
        **certs.kafka_config(),
    }


def _allow(
    user: str,
    kind: ResourceType,
    name: str,
    op: AclOperation,
    pattern: ResourcePatternType = ResourcePatternType.LITERAL,
) -> AclBinding:
    return AclBinding(kind, name, pattern, f"User:{user}", "*", op, AclPermissionType.ALLOW)


def _acls(settings: Settings) -> list[AclBinding]:
    """What docs/configuration.md#acls tells an operator to grant scv's principal, and
    the grants of the two users that lack one."""
    topic, group, prefixed = ResourceType.TOPIC, ResourceType.GROUP, ResourcePatternType.PREFIXED
    read, write = AclOperation.READ, AclOperation.WRITE
    acls = [
        _allow("scv", topic, PREFIX, read, prefixed),
        _allow("scv", topic, PREFIX, write, prefixed),
        _allow("scv", group, APP_ID, read),
        # Everything but the group.
        _allow("nogroup", topic, PREFIX, read, prefixed),
        _allow("nogroup", topic, PREFIX, write, prefixed),
        _allow("partial", group, APP_ID, read),
    ]
    # Every topic by name, but raw.web.v1 only to write (a source system's ACL, say).
    web = Topics(settings).raw("web")
    for spec in topic_specs(settings):
        acls.append(_allow("partial", topic, spec.name, write))
        if spec.name != web:
            acls.append(_allow("partial", topic, spec.name, read))
    return acls


def _grant(admin_settings: Settings, acls: list[AclBinding], timeout: float = 30.0) -> None:
    """Create the ACLs and wait until the broker's authorizer has them (the controller
    commits them first; the broker applies them from the metadata log)."""
    admin = AdminClient(admin_config(admin_settings))
    for future in admin.create_acls(acls, request_timeout=timeout).values():
        future.result()
    everything = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    deadline = time.monotonic() + timeout
    while len(admin.describe_acls(everything, request_timeout=timeout).result()) < len(acls):
        assert time.monotonic() < deadline, "the broker did not apply the ACLs"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    work = tmp_path_factory.mktemp("secured")
    certs = make_broker_certs(work / "certs")
    local = Settings()  # SCV_KAFKA_VERSION, SCV_KAFKA_HOME
    scram = []
    for user, password in PASSWORDS.items():
        scram += ["--add-scram", f"{MECHANISM}=[name={user},password={password}]"]
    kafka = ApacheKafka(
        1,
        work_dir=work / "kafka",
        config=_broker_config(certs),
        format_args=scram,
        # The readiness probe logs in as the super user.
        client_config={
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": MECHANISM,
            "sasl.username": "admin",
            "sasl.password": PASSWORDS["admin"],
            "ssl.ca.location": str(certs.ca),
        },
        version=local.kafka_version,
        home=local.kafka_home,
    )
    secured = Secured(kafka, certs, work)
    try:
        started = time.monotonic()
        kafka.start()
        admin = secured.settings("admin")
        create_topics(admin)
        _grant(admin, _acls(admin))
        print(f"SASL_SSL Kafka with ACLs ready in {time.monotonic() - started:.1f}s")
        yield secured
    finally:
        kafka.stop()


@pytest.fixture(scope="module")
def pipeline(secured: Secured) -> Iterator[Pipeline]:
    """A worker logged in as ``scv``; the test plays the source systems and the activation
    services as ``admin`` (other principals, with ACLs of their own in real life)."""
    worker = secured.worker("scv", secured.settings("scv")).start()
    try:
        worker.wait_ready(90)
        running = Pipeline(secured.settings("admin"), worker)
        yield running
        running.close()
    finally:
        worker.stop()


def test_the_pipeline_runs_under_tls_scram_and_acls(pipeline: Pipeline) -> None:
    cookie, address, customer = uid("ck"), f"{uid('sec')}@acme-corp.co.uk", uid("C")
    pipeline.send(
        "web",
        {
            "event_id": uid("web"),
            "timestamp": now_iso(),
            "type": "page_view",
            "anonymous_id": cookie,
            "session_id": uid("s"),
        },
    )
    pipeline.send(
        "transactions",
        {
            "event_id": uid("tx"),
            "timestamp": now_iso(),
            "type": "order",
            "order_id": uid("O"),
            "email": address,
            "items": [{"sku": "SKU-1", "name": "Kettle", "qty": 1, "price": 29.99}],
            "total": 29.99,
            "currency": "GBP",
        },
    )
    pipeline.wait_for(lambda: pipeline.profile_with("anonymous_id", cookie))
    pipeline.wait_for(lambda: pipeline.profile_with("email", address))
    # A login joins the two: a merge, a hand-over between profile partitions, tombstones.
    pipeline.send(
        "web",
        {
            "event_id": uid("web"),
            "timestamp": now_iso(),
            "type": "login",
            "anonymous_id": cookie,
            "session_id": uid("s"),
            "email": address,
            "customer_id": customer,
        },
    )

    def joined() -> dict[str, Any] | None:
        found = pipeline.profile_with("email", address)
        return found if found and cookie in found["identifiers"].get("anonymous_id", []) else None

    profile = pipeline.wait_for(joined)
    pipeline.drain()  # the worker's group committed everything: its commits were allowed
    assert profile["identifiers"]["customer_id"] == [customer]
    assert set(profile["channels"]) >= {"web", "transactions"}
    assert [m for m in pipeline.merges() if m["survivor"] == profile["profile_id"]]
    log = pipeline.worker.log_path.read_text()
    assert "AUTHORIZATION_FAILED" not in log and "Traceback" not in log
    assert pipeline.worker.proc is not None and pipeline.worker.proc.poll() is None


def test_scv_may_not_see_topics_outside_its_prefix(secured: Secured) -> None:
    """The ACLs confine scv's principal: another application's topic is not even visible."""
    other = "billing.invoices.v1"
    admin = AdminClient(admin_config(secured.settings("admin")))
    admin.create_topics([NewTopic(other, 1, 1)])[other].result()
    scv = AdminClient(admin_config(secured.settings("scv")))
    described = scv.describe_topics(TopicCollection([other]), request_timeout=15)[other]
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        described.result()


@pytest.mark.parametrize(
    ("user", "password", "words"),
    [
        pytest.param(
            "scv",
            "not-the-password",
            ["authentication failed", "'scv'", "SCV_SASL_PASSWORD"],
            id="wrong-password",
        ),
        pytest.param(
            "nogroup", None, ["'nogroup' is not authorized", f"READ group {APP_ID}"], id="no-group"
        ),
        pytest.param(
            "partial",
            None,
            ["'partial' is not authorized", f"READ topic {PREFIX}raw.web.v1 "],
            id="no-read-on-an-input",
        ),
    ],
)
def test_a_refused_worker_stops_at_start_up_with_one_line(
    secured: Secured, user: str, password: str | None, words: list[str]
) -> None:
    worker = secured.worker(f"refused-{user}", secured.settings(user, password))
    started = time.monotonic()
    worker.start()
    try:
        assert worker.proc is not None
        try:
            code = worker.proc.wait(REFUSED_WITHIN_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running after {REFUSED_WITHIN_S}s:\n{worker.tail()}")
        took = time.monotonic() - started
    finally:
        worker.stop()
    log = worker.log_path.read_text()
    lines = [line for line in log.splitlines() if line.startswith("scv worker:")]
    assert code == 2, log
    assert len(lines) == 1, log
    assert log.rstrip().endswith(lines[0])  # the last word, no traceback or retries after it
    assert "Traceback" not in log
    for word in words:
        assert word in lines[0], lines[0]
    print(f"{user}: exit {code} after {took:.1f}s: {lines[0]}")
