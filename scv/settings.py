"""One settings object for every process, read from ``SCV_*`` environment variables.

Defaults run locally against the embedded broker; production overrides the broker address,
security and state directory. ``scv config`` prints the effective values (secrets masked).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from scv.brokers.fetch import KAFKA_VERSION

#: The suppression key a local setup uses when ``SCV_SUPPRESSION_KEY`` is unset (the worker
#: warns: anyone with the code can test a guessed identifier against this key's hashes).
LOCAL_SUPPRESSION_KEY = "scv-local-suppression-key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCV_", extra="ignore")

    # --- Kafka ---------------------------------------------------------------------------
    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma separated."
    )
    security_protocol: str = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: str | None = Field(None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.")
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password.")
    ssl_cafile: str | None = Field(None, description="CA bundle for SSL/SASL_SSL.")
    ssl_certfile: str | None = Field(
        None, description="Client certificate (PEM) for mutual TLS; needs SCV_SSL_KEYFILE."
    )
    ssl_keyfile: str | None = Field(None, description="Private key (PEM) of SCV_SSL_CERTFILE.")
    ssl_key_password: SecretStr | None = Field(
        None, description="Password of SCV_SSL_KEYFILE when the key is encrypted."
    )
    ssl_check_hostname: bool = Field(
        True,
        description="Check that the broker's certificate names the host connected to; turn "
        "off only for brokers whose certificates lack the name they are reached by.",
    )
    topic_prefix: str = Field(
        "", description="Prefix for every topic name (lets several pipelines share a cluster)."
    )
    raw_partitions: int = Field(4, description="Partitions of the raw.* input topics.")
    stage_partitions: int = Field(
        4, description="Partitions of profile-keyed topics (profiles, actions, resolved events)."
    )
    replication_factor: int = Field(1, ge=1, description="Replication factor for created topics.")
    min_insync_replicas: int | None = Field(
        None,
        ge=1,
        description="min.insync.replicas of created topics (the broker's default if unset). "
        "With SCV_REPLICATION_FACTOR=3, 2 keeps every acknowledged write on two brokers and "
        "lets one broker fail without stopping the pipeline.",
    )

    # --- Worker --------------------------------------------------------------------------
    app_id: str = Field(
        "scv", description="Worker consumer group id; also names the table changelog topics."
    )
    data_dir: Path = Field(Path("var/state"), description="RocksDB state directory.")
    store: str = Field(
        "rocksdb://",
        description="Table store: rocksdb:// (kept on disk) or memory:// (rebuilt from the "
        "changelog at each start).",
    )
    web_port: int = Field(6066, description="Worker HTTP port (health, metrics).")
    web_host: str = Field("127.0.0.1", description="Worker HTTP bind address.")
    web_url: str | None = Field(
        None,
        description="URL other workers reach this worker's HTTP port at (profile API "
        "forwarding); default http://SCV_WEB_HOST:SCV_WEB_PORT, with the host name when bound "
        "to 0.0.0.0. Set it in containers (e.g. from the pod IP).",
    )
    session_timeout_s: float = Field(
        10.0, description="Consumer session timeout; tansu delays joins by about half of it."
    )
    fetch_max_wait_ms: int = Field(
        30,
        ge=1,
        description="Longest a worker's fetch waits at the broker for data. On brokers that do "
        "not answer a waiting fetch early (tansu) every hop waits up to this; shorter costs "
        "broker CPU (churn_save p99 at 5k events/s: 401 ms at 100, 243 at 30).",
    )
    batch_max: int = Field(
        500, ge=1, description="Most events a stage decides before writing its tables once."
    )
    batch_within_s: float = Field(
        0.01,
        gt=0,
        description="Longest a stage waits to fill a batch; adds at most this to each hop.",
    )
    linger_ms: int = Field(
        5,
        ge=0,
        description="How long a worker's producer gathers output into one request; each hop "
        "of an event waits at most this (one request is in flight at a time).",
    )
    idempotent_output: bool = Field(
        True,
        description="at_least_once: the worker's producer is idempotent, so a retry after a "
        "broker failover (the broker wrote a batch, its answer was lost) cannot write an "
        "action or an audit record twice. Off, one request is in flight at a time and such "
        "a retry may repeat a record; the local pipelines scv starts on tansu turn it off "
        "(an in-memory broker on the same machine does not fail over, and idempotence cost "
        "7.5-12.6 µs per message there). exactly_once is always idempotent.",
    )
    compression: Literal["none", "lz4", "zstd", "snappy", "gzip"] = Field(
        "lz4",
        description="Compression of every batch scv produces. A broker stores a compressed "
        "batch without parsing its records: tansu spent 3.1 µs per message uncompressed, "
        "0.3 with lz4, and on a small machine the worker shares those cores.",
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once",
        description="at_least_once: scv's own commit protocol, with idempotent effects (any "
        "Kafka-compatible broker, tansu included). exactly_once: each worker's outputs, "
        "changelog writes and input offsets commit in one Kafka transaction (KIP-447), and "
        "a worker the group has replaced is fenced; needs a broker with working "
        "transactions (Apache Kafka, Confluent, MSK, Redpanda; not tansu). "
        "docs/guarantees.md.",
    )
    commit_interval_s: float = Field(
        0.1,
        gt=0,
        description="exactly_once: how long a transaction gathers batches before it commits; "
        "outputs become visible to read_committed consumers then, so each hop waits up to "
        "this (docs/performance.md has the cost per commit).",
    )
    transactional_id: str | None = Field(
        None,
        description="exactly_once: this worker's transactional.id. It must be stable across "
        "restarts of one worker and differ between workers, so that a restarted worker "
        "aborts what its predecessor left open. Default: SCV_APP_ID, the host name and a "
        "hash of SCV_DATA_DIR.",
    )
    transaction_timeout_s: float = Field(
        10.0,
        gt=0,
        description="exactly_once: how long the broker keeps a transaction of a worker that "
        "died open before aborting it; read_committed consumers of its partitions wait for "
        "that (at most this long) unless the worker restarts sooner.",
    )
    rocksdb_block_cache_mb: int = Field(
        2, ge=1, description="RocksDB block cache shared by all of a worker's tables (MB)."
    )
    rocksdb_write_buffer_mb: int = Field(
        2, ge=1, description="RocksDB write buffer per table partition (MB; two are kept)."
    )
    stages: str = Field(
        "normalize,resolve,profiles",
        pattern=r"^(normalize|resolve|profiles)(,(normalize|resolve|profiles))*$",
        description="The stages this worker runs (comma separated); workers of one app may "
        "run different ones. The resolver is a single writer, so its worker also gets a share "
        "of every other stage's partitions unless it runs fewer stages: "
        "normalize,resolve on some workers and profiles on others splits the work about evenly "
        "(docs/performance.md, Scaling).",
    )
    profile_cache_size: int = Field(
        4096,
        ge=1,
        description="Decoded profile states a worker keeps between batches (all partitions).",
    )
    gc_full_interval_s: float = Field(
        600.0,
        gt=0,
        description="Longest time between two full garbage collections; they also run when "
        "the worker is idle (see docs/performance.md).",
    )
    handover_storm_count: int = Field(
        50,
        ge=1,
        description="Hand-overs (absorb, adopt) one profile may receive within "
        "SCV_HANDOVER_STORM_WINDOW_S; more is a storm (a hand-over loop, or a giant merge): "
        "logged with the profile ids, counted in scv_handover_storms_total and recorded on "
        "audit.v1, once per profile and window, and every message is still applied. In the "
        "20k- and 60k-event demo no profile received more than 4 in the whole run, so the "
        "default leaves a wide margin; a loop passes it within seconds.",
    )
    handover_storm_window_s: float = Field(
        60.0,
        gt=0,
        description="The sliding window of SCV_HANDOVER_STORM_COUNT, in seconds.",
    )
    log_level: str = Field("info", description="Worker log level.")
    api_token: SecretStr | None = Field(
        None,
        description="Bearer token every worker HTTP path but /livez, /readyz and the page's "
        "static files requires (explain and the profile API show personal data, metrics "
        "internals); unset = no token (keep the port private).",
    )
    suppression_key: SecretStr = Field(
        SecretStr(LOCAL_SUPPRESSION_KEY),
        description="Secret for the HMAC-SHA256 hashes on the erasure suppression list; the "
        "built-in default is for local use only (the worker warns). Set your own before the "
        "first erasure and never change it: the list cannot be re-hashed (docs/privacy.md).",
    )

    # --- Identity rules and actions ------------------------------------------------------
    default_region: str = Field(
        "GB", description="Region for phone numbers written without a country code."
    )
    rules_path: Path | None = Field(
        None, description="YAML file with identity governance rules; built-in defaults if unset."
    )
    matching: bool = Field(
        False,
        description="Probabilistic matching in the resolver: an event with person attributes "
        "but no known identifier may join the profile its attributes match.",
    )
    matching_model_path: Path | None = Field(
        None, description="Fellegi-Sunter model file for matching; the demo-trained one if unset."
    )
    cart_window_s: float = Field(
        1800.0,
        ge=0,
        description="Seconds a cart may stay without an order before abandoned_cart, counted "
        "from when the worker saw its last change (docs/actions.md).",
    )
    cart_check_interval_s: float = Field(1.0, description="How often due carts are checked.")
    cart_max_lag_s: float = Field(
        7 * 86400.0,
        ge=0,
        description="No abandoned_cart for a cart whose last change happened (event time) more "
        "than this many seconds before the reminder would go out: a replay or backfill of old "
        "traffic is suppressed as stale. 0 = no bound; else above SCV_CART_WINDOW_S.",
    )
    action_cooldown_s: float = Field(
        86400.0,
        ge=0,
        description="Minimum seconds between two actions of one type for one profile "
        "(processing time); a blocked action is suppressed as cooldown.",
    )
    churn_visit_types: str = Field(
        "page_view,product_view,cart_add,login",
        description="The raw.web.v1 event types that count as a visit for churn_save (comma "
        "separated): after a cancellation call, the next such visit gets the onsite offer.",
    )
    churn_visit_grace_s: float = Field(
        300.0,
        ge=0,
        description="How long (processing time) after the worker saw a visit an onsite offer "
        "may still be made in it, when the call, a consent grant or the merge that joins call "
        "and visit is processed later; after that the offer waits for the next visit.",
    )
    churn_visit_max_lag_s: float = Field(
        1800.0,
        ge=0,
        description="No churn_save for a visit that happened (event time) more than this many "
        "seconds before now: the person is no longer on the site (a replay or backfill), "
        "suppressed as stale; the cancellation flag waits for the next visit. 0 = no bound; "
        "else at least SCV_CHURN_VISIT_GRACE_S.",
    )
    churn_max_age_s: float = Field(
        30 * 86400.0,
        ge=0,
        description="How long (event time) a cancellation call waits for a visit: a visit "
        "later than this after the call clears the flag, suppressed as expired. 0 = no limit.",
    )

    # --- Activation layer (scv activation) -------------------------------------------------
    programmes_path: Path | None = Field(
        None,
        description="YAML file of the activation layer's programmes; the built-in ones "
        "(scv/activation/programmes.default.yaml) if unset. Checked at start-up.",
    )
    activation_web_port: int = Field(
        6067, description="HTTP port of `scv activation` (/livez, /readyz, /metrics)."
    )

    # --- Local broker --------------------------------------------------------------------
    broker: Literal["tansu", "kafka"] = Field(
        "tansu",
        description="The broker `scv run`, `scv demo`, `scv bench` and the tests start when "
        "they start one: tansu (embedded, memory only, no dependencies) or kafka (Apache "
        "Kafka in KRaft mode with data on disk; needs Java 17+, and Maven the first time, "
        "to fetch it into ~/.cache/scv).",
    )
    broker_host: str = Field("127.0.0.1", description="Embedded tansu listen host.")
    broker_port: int = Field(9092, description="Embedded tansu port (0 picks a free one).")
    kafka_version: str = Field(
        KAFKA_VERSION,
        pattern=r"^4\.\d+\.\d+$",
        description="The Apache Kafka 4.x release SCV_BROKER=kafka fetches from Maven Central.",
    )
    kafka_home: Path | None = Field(
        None,
        description="An Apache Kafka install (the folder holding libs/) to run instead of "
        "fetching SCV_KAFKA_VERSION.",
    )

    @field_validator("churn_visit_types")
    @classmethod
    def _known_web_types(cls, value: str) -> str:
        from scv.schemas import load_schema  # the web schema's type list is the contract

        known = load_schema("raw.web.v1")["properties"]["type"]["enum"]
        types = [t.strip() for t in value.split(",")]
        if not all(types):
            raise ValueError("a comma-separated list of raw.web.v1 event types, none empty")
        unknown = sorted(set(types) - set(known))
        if unknown:
            raise ValueError(f"not raw.web.v1 event types: {', '.join(unknown)}")
        return ",".join(types)

    @model_validator(mode="after")
    def _windows_fit(self) -> Settings:
        if self.min_insync_replicas and self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                "SCV_MIN_INSYNC_REPLICAS must not exceed SCV_REPLICATION_FACTOR: no write "
                "could be acknowledged"
            )
        if 0 < self.cart_max_lag_s <= self.cart_window_s:
            raise ValueError(
                "SCV_CART_MAX_LAG_S must be 0 or above SCV_CART_WINDOW_S: every reminder "
                "would be stale"
            )
        if 0 < self.churn_visit_max_lag_s < self.churn_visit_grace_s:
            raise ValueError(
                "SCV_CHURN_VISIT_MAX_LAG_S must be 0 or at least SCV_CHURN_VISIT_GRACE_S"
            )
        return self

    def worker_transactional_id(self) -> str:
        """``SCV_TRANSACTIONAL_ID``, or one derived from what stays the same when this
        worker restarts (the app, the host, the state directory)."""
        if self.transactional_id:
            return self.transactional_id
        import hashlib
        import socket

        where = hashlib.sha1(str(self.data_dir.resolve()).encode()).hexdigest()[:10]
        return f"{self.app_id}-{socket.gethostname()}-{where}"

    def visit_types(self) -> frozenset[str]:
        """``SCV_CHURN_VISIT_TYPES`` as a set."""
        return frozenset(self.churn_visit_types.split(","))

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
