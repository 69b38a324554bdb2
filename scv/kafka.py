"""Kafka client configuration, built in one place from :class:`~scv.settings.Settings`.

Every producer, consumer and admin client (confluent-kafka/librdkafka) and the Faust app
(aiokafka) get their connection, security and tuning settings from here, so that:

* keys are hashed the same way everywhere: librdkafka's default partitioner is CRC32, while
  Faust and the Java clients use murmur2; a producer outside Faust that does not set
  ``murmur2_random`` writes keys to partitions that Faust tables do not own;
* batching is large enough for tansu, which returns about one producer batch per fetch
  (tiny batches make consumers crawl: ~4k msg/s at ``linger.ms`` 5 vs >1M msg/s batched);
* group session timeouts follow ``SCV_SESSION_TIMEOUT_S``: tansu delays a group join by
  about half the session timeout (45 s default → 23 s per join), so local runs and tests
  use a short one. Real Kafka rejects values below ``group.min.session.timeout.ms``
  (6 s by default), so production keeps the 10 s default or more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scv.settings import Settings

if TYPE_CHECKING:  # the CLI imports this module: confluent_kafka only where it is used
    from confluent_kafka import KafkaError

#: librdkafka partitioner compatible with Faust/aiokafka and the Java client (murmur2 of the
#: key; random partition for a null key).
PARTITIONER = "murmur2_random"

#: Producer batching: wait up to 20 ms to fill batches of up to 1 MiB / 10k messages.
PRODUCER_LINGER_MS = 20
PRODUCER_BATCH_SIZE = 1024 * 1024
PRODUCER_BATCH_MESSAGES = 10_000

#: Per-partition fetch size. tansu answers a fetch with about one batch, so the limit only
#: has to hold a full producer batch; real Kafka benefits from the headroom.
CONSUMER_MAX_PARTITION_FETCH_BYTES = 8 * 1024 * 1024
CONSUMER_FETCH_MAX_BYTES = 64 * 1024 * 1024

#: Faust producer batch size in bytes. aiokafka counts the record-batch header inside this
#: limit, and real Kafka's default ``message.max.bytes`` is 1 MiB + 12 bytes, so 1,000,000
#: stays safely under the broker's limit while still batching like the librdkafka side.
FAUST_PRODUCER_MAX_BATCH_SIZE = 1_000_000

_PROTOCOLS = frozenset({"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"})
_SASL_MECHANISMS = frozenset({"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})


def _protocol(settings: Settings) -> str:
    protocol = settings.security_protocol.strip().upper()
    if protocol not in _PROTOCOLS:
        raise ValueError(
            f"SCV_SECURITY_PROTOCOL={settings.security_protocol!r} is not one of "
            f"{', '.join(sorted(_PROTOCOLS))}"
        )
    return protocol


def _sasl(settings: Settings) -> tuple[str, str, str]:
    """Validated (mechanism, username, password) for a SASL protocol."""
    mechanism = (settings.sasl_mechanism or "").strip().upper()
    if mechanism not in _SASL_MECHANISMS:
        raise ValueError(
            f"SCV_SASL_MECHANISM={settings.sasl_mechanism!r} must be one of "
            f"{', '.join(sorted(_SASL_MECHANISMS))} when "
            f"SCV_SECURITY_PROTOCOL={settings.security_protocol}"
        )
    if not settings.sasl_username or settings.sasl_password is None:
        raise ValueError(
            f"SCV_SASL_USERNAME and SCV_SASL_PASSWORD are required when "
            f"SCV_SECURITY_PROTOCOL={settings.security_protocol}"
        )
    return mechanism, settings.sasl_username, settings.sasl_password.get_secret_value()


def bootstrap_servers(settings: Settings) -> list[str]:
    """The ``host:port`` entries of ``SCV_BOOTSTRAP_SERVERS`` (spaces and empties dropped)."""
    servers = [s.strip() for s in settings.bootstrap_servers.split(",") if s.strip()]
    if not servers:
        raise ValueError("SCV_BOOTSTRAP_SERVERS is empty")
    return servers


def client_config(settings: Settings) -> dict[str, Any]:
    """Connection and security settings shared by every librdkafka client (admin too).

    Raises :class:`ValueError` for an unknown protocol or incomplete SASL settings, so a
    misconfigured deployment fails at start-up instead of retrying a handshake forever.
    """
    protocol = _protocol(settings)
    config: dict[str, Any] = {
        "bootstrap.servers": ",".join(bootstrap_servers(settings)),
        "security.protocol": protocol,
    }
    if protocol.startswith("SASL_"):
        mechanism, username, password = _sasl(settings)
        config["sasl.mechanism"] = mechanism
        config["sasl.username"] = username
        config["sasl.password"] = password
    if protocol in _TLS:
        config |= _ssl(settings)
    return config


#: Protocols that speak TLS to the broker.
_TLS = ("SSL", "SASL_SSL")


def _client_cert(settings: Settings) -> tuple[str, str] | None:
    """(certificate, key) for mutual TLS, or None; one without the other is refused."""
    cert, key = settings.ssl_certfile, settings.ssl_keyfile
    if bool(cert) != bool(key):
        raise ValueError("SCV_SSL_CERTFILE and SCV_SSL_KEYFILE go together (mutual TLS)")
    return (cert, key) if cert and key else None


def _ssl(settings: Settings) -> dict[str, Any]:
    """librdkafka's TLS settings: CA, client certificate, hostname verification."""
    config: dict[str, Any] = {
        "ssl.endpoint.identification.algorithm": "https" if settings.ssl_check_hostname else "none"
    }
    if settings.ssl_cafile:
        config["ssl.ca.location"] = settings.ssl_cafile
    pair = _client_cert(settings)
    if pair is not None:
        config["ssl.certificate.location"], config["ssl.key.location"] = pair
        if settings.ssl_key_password is not None:
            config["ssl.key.password"] = settings.ssl_key_password.get_secret_value()
    return config


class KafkaRefused(RuntimeError):
    """The broker refused scv's credentials (authentication, TLS) or its permissions (ACLs):
    a configuration problem that retrying cannot fix. The message is one line for the
    operator."""


def refusal(settings: Settings, error: KafkaError) -> str | None:
    """One line saying which setting to check when ``error`` (from a client's ``error_cb``)
    is the broker refusing the client's credentials; None for anything else.

    librdkafka retries a failed login forever and only logs it, so a worker with a wrong
    password would wait for a broker that will never let it in.
    """
    from confluent_kafka import KafkaError

    code = error.code()
    servers = settings.bootstrap_servers
    if code == KafkaError._AUTHENTICATION:
        who = f"{settings.sasl_mechanism} user {settings.sasl_username!r}"
        return (
            f"Kafka at {servers} refused the SASL login of {who} (authentication failed): "
            f"{error.str()}; check SCV_SASL_MECHANISM, SCV_SASL_USERNAME and SCV_SASL_PASSWORD"
        )
    if code == KafkaError._SSL:
        return (
            f"the TLS handshake with Kafka at {servers} failed: {error.str()}; check "
            "SCV_SSL_CAFILE, SCV_SSL_CHECK_HOSTNAME and SCV_SSL_CERTFILE/SCV_SSL_KEYFILE"
        )
    return None


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """librdkafka producer settings: Faust-compatible partitioning and large batches.

    ``overrides`` use librdkafka names with underscores for dots, or pass a dotted name via
    ``**{"enable.idempotence": True}``. Idempotence is off by default: tansu 0.6 accepts
    ``InitProducerId`` (an idempotent producer works there) but ``acks=all`` on a single
    in-memory broker buys nothing extra, and enabling it is a per-producer decision
    (connectors that need exactly-once set it, together with transactions).
    """
    config = client_config(settings)
    config.update(
        {
            "partitioner": PARTITIONER,
            "linger.ms": PRODUCER_LINGER_MS,
            "batch.num.messages": PRODUCER_BATCH_MESSAGES,
            "batch.size": PRODUCER_BATCH_SIZE,
            "acks": "all",
            "enable.idempotence": False,
            "compression.type": settings.compression,
        }
    )
    config.update(_normalise(overrides))
    return config


def source_producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """What produces *into* scv (replay, the demo source, benchmarks' traffic): idempotent,
    so a retry after a broker failure (the broker wrote the batch, the answer was lost)
    does not deliver an event twice, which would count it twice in a profile."""
    return producer_config(settings, **{"enable.idempotence": True, **overrides})


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """librdkafka consumer settings for ``group_id``.

    The heartbeat is a fifth of the session timeout (Kafka recommends at most a third) so a
    short local session still tolerates a couple of missed heartbeats.
    """
    session_ms = max(1, round(settings.session_timeout_s * 1000))
    config = client_config(settings)
    config.update(
        {
            "group.id": group_id,
            "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": max(1, session_ms // 5),
            "auto.offset.reset": "earliest",
            "max.partition.fetch.bytes": CONSUMER_MAX_PARTITION_FETCH_BYTES,
            "fetch.max.bytes": CONSUMER_FETCH_MAX_BYTES,
        }
    )
    config.update(_normalise(overrides))
    return config


def admin_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """librdkafka admin client settings (connection and security only)."""
    config = client_config(settings)
    config.update(_normalise(overrides))
    return config


def faust_broker_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for :class:`faust.App` covering broker, security and tuning.

    Names are faust-streaming 0.15 settings. ``producer_linger`` (seconds) replaces the
    deprecated ``producer_linger_ms``. Faust's default partitioner is already murmur2
    (aiokafka's ``DefaultPartitioner``), matching :data:`PARTITIONER` on the librdkafka side.
    The rebalance timeout is three session timeouts: short enough that a local worker that
    died is dropped from a rebalance quickly, long enough for a live worker to flush its
    tables on revoke.
    """
    session = float(settings.session_timeout_s)
    kwargs: dict[str, Any] = {
        "broker": [f"kafka://{server}" for server in bootstrap_servers(settings)],
        "broker_session_timeout": session,
        "broker_heartbeat_interval": session / 5,
        "broker_rebalance_timeout": session * 3,
        # Faust refuses a session timeout above the request timeout.
        "broker_request_timeout": max(90.0, session * 2),
        "consumer_auto_offset_reset": "earliest",
        "consumer_max_fetch_size": CONSUMER_MAX_PARTITION_FETCH_BYTES,
        "producer_linger": PRODUCER_LINGER_MS / 1000,
        "producer_max_batch_size": FAUST_PRODUCER_MAX_BATCH_SIZE,
        "producer_max_request_size": 2 * FAUST_PRODUCER_MAX_BATCH_SIZE,
        "producer_acks": -1,
        "producer_compression_type": None,
    }
    credentials = faust_credentials(settings)
    if credentials is not None:
        kwargs["broker_credentials"] = credentials
    return kwargs


def set_fetch_max_wait(ms: int) -> None:
    """Make Faust's worker consumers wait at most ``ms`` for data in a fetch.

    faust-streaming 0.15 passes ``fetch_max_wait_ms=1500`` to aiokafka and offers no setting.
    A broker answers a fetch when data arrives or the wait runs out; tansu only does the
    latter, so each hop of the pipeline waited out the 1.5 s (measured: 702 ms median
    produce-to-consume against 17 ms at 100). The consumer is built by
    ``AIOKafkaConsumerThread._create_worker_consumer``; this wraps it and sets the value
    aiokafka reads when it starts its fetcher. Idempotent.
    """
    from faust.transport.drivers import aiokafka as driver

    thread = driver.AIOKafkaConsumerThread
    original = getattr(thread, "_scv_original_create", thread._create_worker_consumer)

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = ms
        return consumer

    setattr(thread, "_scv_original_create", original)  # noqa: B010 - not a declared attribute
    setattr(thread, "_create_worker_consumer", create)  # noqa: B010 - a method we wrap


def faust_credentials(settings: Settings) -> Any:
    """``faust.SASLCredentials`` / ``faust.SSLCredentials`` for the settings, or ``None``.

    Returned as ``Any`` because faust ships no type information for these classes.
    """
    protocol = _protocol(settings)
    if protocol == "PLAINTEXT":
        return None
    import ssl

    import faust

    ssl_context = None
    if protocol in _TLS:
        ssl_context = ssl.create_default_context(
            purpose=ssl.Purpose.SERVER_AUTH, cafile=settings.ssl_cafile or None
        )
        ssl_context.check_hostname = settings.ssl_check_hostname
        pair = _client_cert(settings)
        if pair is not None:
            secret = settings.ssl_key_password
            password = secret.get_secret_value() if secret is not None else None
            ssl_context.load_cert_chain(pair[0], pair[1], password)
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context)
    mechanism, username, password = _sasl(settings)
    return faust.SASLCredentials(
        username=username, password=password, mechanism=mechanism, ssl_context=ssl_context
    )


def _normalise(overrides: dict[str, Any]) -> dict[str, Any]:
    """Allow ``linger_ms=5`` as a spelling of ``linger.ms`` in keyword overrides."""
    return {key.replace("_", "."): value for key, value in overrides.items()}


def partition_for(key: bytes, partitions: int) -> int:
    """The partition :data:`PARTITIONER` sends ``key`` to: where its table state lives.

    Kafka's murmur2 (the Java client's ``Utils.murmur2``, which librdkafka's
    ``murmur2_random`` copies), made positive, modulo the partition count. The profile API
    uses it to find the worker that holds a profile.
    """
    m, length = 0x5BD1E995, len(key)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    whole = length & ~3
    for i in range(0, whole, 4):
        k = int.from_bytes(key[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    extra = length - whole
    if extra == 3:
        h ^= key[whole + 2] << 16
    if extra >= 2:
        h ^= key[whole + 1] << 8
    if extra >= 1:
        h ^= key[whole]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions
