"""Client configuration built from Settings (no broker needed)."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from pydantic import SecretStr

from scv.kafka import (
    PARTITIONER,
    admin_config,
    client_config,
    consumer_config,
    faust_broker_kwargs,
    producer_config,
)
from scv.settings import Settings
from scv.topics import Topics, TopicSpec, topic_specs


def make(**values: object) -> Settings:
    base: dict[str, object] = {"bootstrap_servers": "k1:9092, k2:9093"}
    base.update(values)
    return Settings(**base)  # type: ignore[arg-type]


def test_plaintext_client_config_has_only_connection_settings() -> None:
    assert client_config(make()) == {
        "bootstrap.servers": "k1:9092,k2:9093",
        "security.protocol": "PLAINTEXT",
    }


def test_sasl_ssl_maps_to_librdkafka_names() -> None:
    config = client_config(
        make(
            security_protocol="sasl_ssl",
            sasl_mechanism="scram-sha-512",
            sasl_username="svc",
            sasl_password=SecretStr("s3cret"),
            ssl_cafile="/etc/ca.pem",
        )
    )
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["sasl.username"] == "svc"
    assert config["sasl.password"] == "s3cret"
    assert config["ssl.ca.location"] == "/etc/ca.pem"


def test_ssl_without_sasl_has_no_sasl_keys() -> None:
    config = client_config(make(security_protocol="SSL", ssl_cafile="/etc/ca.pem"))
    assert config["ssl.ca.location"] == "/etc/ca.pem"
    assert not any(key.startswith("sasl.") for key in config)


def test_sasl_plaintext_does_not_set_a_ca() -> None:
    config = client_config(
        make(
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            sasl_username="u",
            sasl_password=SecretStr("p"),
            ssl_cafile="/etc/ca.pem",
        )
    )
    assert "ssl.ca.location" not in config


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"security_protocol": "TLS"}, "SCV_SECURITY_PROTOCOL"),
        ({"security_protocol": "SASL_SSL"}, "SCV_SASL_MECHANISM"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"}, "SCV_SASL_USERNAME"),
        ({"bootstrap_servers": " , "}, "SCV_BOOTSTRAP_SERVERS"),
    ],
)
def test_misconfiguration_fails_early(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        client_config(make(**values))


def test_producer_defaults_are_faust_compatible_and_batched() -> None:
    config = producer_config(make())
    assert config["partitioner"] == PARTITIONER == "murmur2_random"
    assert config["linger.ms"] == 20
    assert config["batch.num.messages"] == 10_000
    assert config["batch.size"] == 1024 * 1024
    assert config["acks"] == "all"
    assert config["enable.idempotence"] is False
    assert config["compression.type"] == "lz4"
    assert config["bootstrap.servers"] == "k1:9092,k2:9093"


def test_compression_comes_from_settings() -> None:
    assert producer_config(make(compression="none"))["compression.type"] == "none"
    with pytest.raises(ValueError):
        make(compression="brotli")


def test_producer_overrides_accept_underscore_or_dotted_names() -> None:
    config = producer_config(make(), linger_ms=5, **{"enable.idempotence": True})
    assert config["linger.ms"] == 5
    assert config["enable.idempotence"] is True


def test_consumer_timeouts_follow_session_timeout() -> None:
    config = consumer_config(make(session_timeout_s=2.0), "grp", enable_auto_commit=False)
    assert config["group.id"] == "grp"
    assert config["session.timeout.ms"] == 2000
    assert config["heartbeat.interval.ms"] == 400
    assert config["auto.offset.reset"] == "earliest"
    assert config["max.partition.fetch.bytes"] >= producer_config(make())["batch.size"]
    assert config["enable.auto.commit"] is False


def test_security_reaches_every_client() -> None:
    settings = make(security_protocol="SSL")
    for config in (producer_config(settings), consumer_config(settings, "g")):
        assert config["security.protocol"] == "SSL"


def test_faust_kwargs_plaintext() -> None:
    kwargs = faust_broker_kwargs(make(session_timeout_s=2.0))
    assert kwargs["broker"] == ["kafka://k1:9092", "kafka://k2:9093"]
    assert kwargs["broker_session_timeout"] == 2.0
    assert kwargs["broker_heartbeat_interval"] == pytest.approx(0.4)
    assert kwargs["broker_rebalance_timeout"] == 6.0
    assert kwargs["broker_request_timeout"] >= kwargs["broker_session_timeout"]
    assert kwargs["producer_linger"] == pytest.approx(0.02)
    assert "broker_credentials" not in kwargs


def test_faust_kwargs_sasl_ssl_credentials() -> None:
    kwargs = faust_broker_kwargs(
        make(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-256",
            sasl_username="svc",
            sasl_password=SecretStr("pw"),
        )
    )
    creds = kwargs["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.username == "svc"
    assert creds.password == "pw"
    assert creds.mechanism.value == "SCRAM-SHA-256"
    assert creds.protocol.value == "SASL_SSL"
    assert isinstance(creds.ssl_context, ssl.SSLContext)


def test_faust_kwargs_ssl_credentials() -> None:
    creds = faust_broker_kwargs(make(security_protocol="SSL"))["broker_credentials"]
    assert isinstance(creds, faust.SSLCredentials)
    assert creds.protocol.value == "SSL"


def test_faust_app_accepts_the_kwargs() -> None:
    """The names must be real faust-streaming settings (a typo is silently ignored)."""
    app = faust.App("kwargs-check", **faust_broker_kwargs(make(session_timeout_s=2.0)))
    conf = app.conf
    assert [str(url) for url in conf.broker] == ["kafka://k1:9092", "kafka://k2:9093"]
    assert conf.broker_session_timeout == 2.0
    assert conf.broker_rebalance_timeout == 6.0
    assert conf.producer_linger == pytest.approx(0.02)
    assert conf.producer_max_batch_size == 1_000_000
    assert conf.consumer_max_fetch_size == 8 * 1024 * 1024


def test_topic_names_use_prefix() -> None:
    topics = Topics(make(topic_prefix="dev-"))
    assert topics.raw("web") == "dev-raw.web.v1"
    assert topics.dlq(topics.raw("email")) == "dev-raw.email.v1.dlq"
    assert topics.identity_events == "dev-identity.events.v1"
    assert topics.commands_dlq == "dev-identity.commands.v1.dlq"
    assert topics.profiles == "dev-profiles.v1"
    with pytest.raises(ValueError, match="unknown source"):
        topics.raw("fax")


def test_topic_specs_layout() -> None:
    specs = {s.name: s for s in topic_specs(make(raw_partitions=3, stage_partitions=5))}
    assert len(specs) == 27
    assert specs["households.v1"].compacted  # a household's latest snapshot
    assert specs["audiences.v1"].partitions == 5 and not specs["audiences.v1"].compacted
    assert specs["scv-workers"].partitions == 1  # the profile API's worker directory
    assert specs["scv-profiles-changelog"].partitions == 5
    assert specs["scv-profiles-changelog"].compacted
    assert specs["scv-identity-nodes-changelog"].partitions == 1
    assert specs["raw.callcenter.v1.dlq"].partitions == 3
    assert specs["identity.events.v1.dlq"].partitions == 1
    assert specs["profiles.events.v1.dlq"].partitions == 5
    assert specs["identity.review.v1"].partitions == 5
    assert specs["identity.events.v1"].partitions == 1
    assert specs["identity.commands.v1"].partitions == 1
    assert specs["audit.v1"].partitions == 1
    assert specs["scv-identity-suppressed-changelog"].partitions == 1
    assert specs["profiles.v1"] == TopicSpec(
        "profiles.v1", 5, compacted=True, partitions_setting="SCV_STAGE_PARTITIONS"
    )
    assert specs["profiles.v1"].topic_config == {"cleanup.policy": "compact"}
    assert [s.name for s in specs.values() if s.compacted] == [
        "profiles.v1",
        "households.v1",
        "scv-workers",
        "scv-identity-owners-changelog",
        "scv-identity-nodes-changelog",
        "scv-identity-suppressed-changelog",
        "scv-profiles-changelog",
        "scv-carts-due-changelog",
    ]
    assert hash(specs["actions.v1"])  # frozen specs can go into sets


def test_worker_consumers_get_the_configured_fetch_wait() -> None:
    """Faust hard-codes 1500 ms; the wrapper sets ours on the consumer it builds."""
    from types import SimpleNamespace

    from faust.transport.drivers import aiokafka as driver

    from scv.kafka import set_fetch_max_wait

    thread = driver.AIOKafkaConsumerThread
    saved = thread.__dict__.get("_scv_original_create"), thread.__dict__["_create_worker_consumer"]
    try:
        built = SimpleNamespace(_fetch_max_wait_ms=1500)
        thread._scv_original_create = lambda self, transport: built  # type: ignore[attr-defined]
        set_fetch_max_wait(80)
        set_fetch_max_wait(100)  # idempotent: wraps the original, not the wrapper
        assert thread._create_worker_consumer(None, None) is built  # type: ignore[arg-type]
        assert built._fetch_max_wait_ms == 100
    finally:
        if saved[0] is None:
            del thread._scv_original_create  # type: ignore[attr-defined]
        else:
            thread._scv_original_create = saved[0]  # type: ignore[attr-defined]
        thread._create_worker_consumer = saved[1]  # type: ignore[method-assign]


# --- TLS and SASL -----------------------------------------------------------------------------


def _mtls(**values: object) -> Settings:
    base: dict[str, object] = {
        "security_protocol": "SSL",
        "ssl_cafile": "/etc/scv/ca.pem",
        "ssl_certfile": "/etc/scv/client.pem",
        "ssl_keyfile": "/etc/scv/client.key",
    }
    return make(**(base | values))


def test_mutual_tls_maps_to_librdkafka_names() -> None:
    config = client_config(_mtls(ssl_key_password=SecretStr("kp")))
    assert config["ssl.ca.location"] == "/etc/scv/ca.pem"
    assert config["ssl.certificate.location"] == "/etc/scv/client.pem"
    assert config["ssl.key.location"] == "/etc/scv/client.key"
    assert config["ssl.key.password"] == "kp"
    assert config["ssl.endpoint.identification.algorithm"] == "https"


def test_hostname_verification_is_on_unless_turned_off() -> None:
    assert (
        client_config(make(security_protocol="SSL"))["ssl.endpoint.identification.algorithm"]
        == "https"
    )
    off = client_config(
        make(
            security_protocol="SASL_SSL",
            ssl_check_hostname=False,
            sasl_mechanism="PLAIN",
            sasl_username="u",
            sasl_password=SecretStr("p"),
        )
    )
    assert off["ssl.endpoint.identification.algorithm"] == "none"


@pytest.mark.parametrize("missing", ["ssl_certfile", "ssl_keyfile"])
def test_a_client_certificate_without_its_key_fails_early(missing: str) -> None:
    values = {"ssl_certfile": "/c.pem", "ssl_keyfile": "/k.pem", missing: None}
    with pytest.raises(ValueError, match="SCV_SSL_CERTFILE and SCV_SSL_KEYFILE"):
        client_config(make(security_protocol="SSL", **values))


def test_tls_settings_are_not_sent_over_plaintext() -> None:
    config = client_config(
        _mtls(
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            sasl_username="u",
            sasl_password=SecretStr("p"),
        )
    )
    assert not any(key.startswith("ssl.") for key in config)


def test_every_client_gets_the_same_security_settings() -> None:
    settings = _mtls(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="svc",
        sasl_password=SecretStr("pw"),
        ssl_key_password=SecretStr("kp"),
    )
    security = {k: v for k, v in client_config(settings).items() if k != "bootstrap.servers"}
    assert len(security) == 9
    for config in (
        producer_config(settings),
        consumer_config(settings, "g"),
        admin_config(settings),
    ):
        assert {k: config[k] for k in security} == security


def test_every_kafka_client_in_scv_is_built_from_these_configs() -> None:
    """Security settings reach a client only through scv.kafka: a client built from a
    hand-written dict would connect in plaintext to a secured cluster."""
    import re
    from pathlib import Path

    import scv

    root = Path(scv.__file__).parent
    built = re.compile(r"\b(Producer|Consumer|AdminClient)\(\s*([^)\s]*)")
    found = []
    for path in root.rglob("*.py"):
        if path.parent.name == "brokers":  # brokers scv starts: their own probes (tansu is
            continue  # plaintext by design; ApacheKafka takes its listener's client_config)
        for match in built.finditer(path.read_text()):
            found.append((path.name, match.group(2)))
    assert found
    strays = [(name, arg) for name, arg in found if not re.match(r"\w*_config\(", arg)]
    assert strays == []


@pytest.fixture
def client_pem(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate and its key, encrypted with the password ``kp``."""
    import shutil
    import subprocess

    assert shutil.which("openssl"), "needs the openssl command to make a certificate"
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=scv-test",
            "-passout",
            "pass:kp",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_faust_credentials_load_the_client_certificate(client_pem: tuple[Path, Path]) -> None:
    cert, key = client_pem
    settings = make(
        security_protocol="SSL",
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        ssl_key_password=SecretStr("kp"),
        ssl_check_hostname=False,
    )
    creds = faust_broker_kwargs(settings)["broker_credentials"]
    assert isinstance(creds, faust.SSLCredentials)
    assert creds.context.check_hostname is False
    wrong = settings.model_copy(update={"ssl_key_password": SecretStr("nope")})
    with pytest.raises(ssl.SSLError):
        faust_broker_kwargs(wrong)
