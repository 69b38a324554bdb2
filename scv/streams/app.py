"""The one ``faust.App`` of scv, its topics and tables.

Stage modules (``normalize``, ``resolve``, ``profiles``, ``web``) import ``app`` from here and
register their agents; ``scv worker`` imports this module and runs it. Everything that
decides something lives in ``scv.domain``; this package only wires it to Kafka.
"""

from __future__ import annotations

import weakref
from typing import Any

import faust
from faust import streams as faust_streams

from scv.domain.model import SOURCES
from scv.kafka import faust_broker_kwargs, set_fetch_max_wait
from scv.settings import Settings, get_settings
from scv.streams.output import Output
from scv.topics import Topics

settings: Settings = get_settings()
topics = Topics(settings)
set_fetch_max_wait(settings.fetch_max_wait_ms)
#: Every stage's output (not the DLQs, nor table changelogs): flushed at each batch end.
output = Output(settings)

app = faust.App(
    settings.app_id,
    autodiscover=False,
    origin="scv.streams",
    store=settings.store,
    datadir=str(settings.data_dir),
    topic_partitions=settings.stage_partitions,
    web_enabled=True,
    web_bind=settings.web_host,
    web_port=settings.web_port,
    # Faust's built-in pages dump table contents and app internals: personal data. Off.
    web_tables_enabled=False,
    web_router_enabled=False,
    web_graph_enabled=False,
    web_stats_enabled=False,
    web_metrics_enabled=False,
    **faust_broker_kwargs(settings),
)


#: Every scv topic carries bytes: decoding is ours, so bad input becomes a DLQ entry and not a
#: Faust ``ValueDecodeError`` that crashes the agent before our code sees the message.
_BYTES: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


def _raw_topic(name: str) -> faust.TopicT:
    return app.topic(name, internal=False, **_BYTES)


raw_topics = {src: _raw_topic(topics.raw(src)) for src in SOURCES}
raw_stream_topic = app.topic(*topics.raw_topics, internal=False, **_BYTES)
#: input topic -> its dead-letter topic, for every topic a stage consumes.
dlq_topics = {name: _raw_topic(topics.dlq(name)) for name in topics.dead_lettered}

identity_events = _raw_topic(topics.identity_events)
commands = _raw_topic(topics.commands)
#: The resolver's input: events and commands, both single-partition, so one worker owns both.
resolver_input = app.topic(topics.identity_events, topics.commands, internal=False, **_BYTES)
profile_events = _raw_topic(topics.profile_events)
profiles_out = _raw_topic(topics.profiles)
merges_out = _raw_topic(topics.merges)
actions_out = _raw_topic(topics.actions)
review_out = _raw_topic(topics.review)

#: RocksDB memory per table partition. Faust's defaults (a 2 GB block cache and three 64 MB
#: write buffers per database, and a worker opens one database per table partition) let a
#: worker's memory grow with its state; these bound it.
_ROCKSDB: dict[str, Any] = {
    "block_cache_size": settings.rocksdb_block_cache_mb * 2**20,
    "write_buffer_size": settings.rocksdb_write_buffer_mb * 2**20,
    "max_write_buffer_number": 2,
}

# --- resolver state: single writer, one partition --------------------------------------
owners = app.Table(
    "identity-owners",
    key_type=bytes,
    value_type=bytes,
    options=_ROCKSDB,
    partitions=1,
    help="identifier type:value -> profile id",
)
nodes = app.Table(
    "identity-nodes",
    key_type=bytes,
    value_type=bytes,
    options=_ROCKSDB,
    partitions=1,
    help="profile id -> identifiers of the profile (JSON)",
)

# --- profile state: partitioned by profile id ------------------------------------------
profile_table = app.Table(
    "profiles",
    key_type=bytes,
    value_type=bytes,
    options=_ROCKSDB,
    partitions=settings.stage_partitions,
    help="profile id -> aggregated profile state (JSON)",
)
carts_due = app.Table(
    "carts-due",
    key_type=bytes,
    value_type=bytes,
    options=_ROCKSDB,
    partitions=settings.stage_partitions,
    help="profile id -> earliest due time of an open cart",
)


def load_stages() -> None:
    """Import the stage modules so their agents, timers and pages register on ``app``.

    Our own topics are ``internal=False``: Faust never declares them (``scv topics create``
    provisions them with the right partitions); it still creates its table changelogs.
    """
    from scv.streams import normalize, profiles, resolve, web  # noqa: F401


def set_current_event(event: Any) -> None:
    """Make ``event`` Faust's current event while a batch is worked through.

    A table picks a key's changelog partition from the current event, which Faust sets per
    message only while a stream is iterated one event at a time; a ``take_events`` batch body
    sets it itself, to the event being decided (the tables are co-partitioned with it).
    """
    faust_streams._current_event.set(weakref.ref(event))
