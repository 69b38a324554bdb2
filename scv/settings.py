"""One settings object for every process, read from ``SCV_*`` environment variables.

Defaults run locally against the embedded broker; production overrides the broker address,
security and state directory. ``scv config`` prints the effective values (secrets masked).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    replication_factor: int = Field(1, description="Replication factor for created topics.")

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
    rocksdb_block_cache_mb: int = Field(
        2, ge=1, description="RocksDB block cache shared by all of a worker's tables (MB)."
    )
    rocksdb_write_buffer_mb: int = Field(
        2, ge=1, description="RocksDB write buffer per table partition (MB; two are kept)."
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
    log_level: str = Field("info", description="Worker log level.")
    api_token: SecretStr | None = Field(
        None,
        description="Bearer token every worker HTTP path but /livez and /readyz requires "
        "(explain shows personal data, metrics internals); unset = no token (keep the port "
        "private).",
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
        1800.0, description="Seconds a cart may stay without an order before abandoned_cart."
    )
    cart_check_interval_s: float = Field(1.0, description="How often due carts are checked.")
    action_cooldown_s: float = Field(
        86400.0, description="Minimum seconds between two actions of one type for one profile."
    )

    # --- Embedded broker -----------------------------------------------------------------
    broker_host: str = Field("127.0.0.1", description="Embedded tansu listen host.")
    broker_port: int = Field(9092, description="Embedded tansu port (0 picks a free one).")

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
