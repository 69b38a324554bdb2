"""Topic names, layouts and idempotent creation.

Every topic is created explicitly, with the partition count its stage relies on: a topic
auto-created by a producer gets the broker's default (4 on tansu, 1 on many Kafka installs),
which would silently break the single-writer resolver (``identity.events.v1`` must have one
partition) or the co-partitioning of profile-keyed topics. ``create_topics`` is safe to run
on every start: existing topics with the right layout are left alone, and a wrong partition
count is an error that says which setting to change.

Code refers to topics through :class:`Topics` (``Topics(settings).profiles``), never
through string literals, so the ``SCV_TOPIC_PREFIX`` is applied everywhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from scv.kafka import admin_config
from scv.settings import Settings

log = logging.getLogger(__name__)

#: Source systems with a raw input topic (same order as scv.domain.model.SOURCES).
SOURCES: tuple[str, ...] = ("web", "email", "transactions", "callcenter")

# Base names (without the prefix). Versions are part of the contract: a breaking change
# gets a new topic, never a new meaning for an old one.
RAW = "raw.{source}.v1"
DLQ_SUFFIX = ".dlq"
IDENTITY_EVENTS = "identity.events.v1"
COMMANDS = "identity.commands.v1"
PROFILE_EVENTS = "profiles.events.v1"
PROFILES = "profiles.v1"
MERGES = "profiles.merges.v1"
#: Households (compacted, keyed by household id): members, shared values, address.
HOUSEHOLDS = "households.v1"
ACTIONS = "actions.v1"
#: Live audiences (the activation layer): a profile entering or leaving, keyed by profile id.
AUDIENCES = "audiences.v1"
REVIEW = "identity.review.v1"
#: Audit trail (erasures, input dropped by the suppression list, hand-over storms): no
#: personal data.
AUDIT = "audit.v1"
#: The stages' state tables; True when partitioned like ``profiles.events.v1`` (the graph
#: tables follow the single-partition resolver input).
TABLES: dict[str, bool] = {
    "identity-owners": False,
    "identity-nodes": False,
    "identity-suppressed": False,
    "profiles": True,
    "carts-due": True,
}


class Topics:
    """Full topic names (with ``SCV_TOPIC_PREFIX``) for one settings object."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def raw(self, source: str) -> str:
        """Raw input topic of ``source`` (one of :data:`SOURCES`)."""
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
        return self._settings.topic(RAW.format(source=source))

    @staticmethod
    def dlq(topic: str) -> str:
        """Dead-letter topic for a full input topic name (``<topic>.dlq``)."""
        return f"{topic}{DLQ_SUFFIX}"

    @property
    def raw_topics(self) -> list[str]:
        return [self.raw(source) for source in SOURCES]

    def source_of(self, topic: str) -> str:
        """The source whose raw topic is ``topic`` (the inverse of :meth:`raw`)."""
        for source in SOURCES:
            if self.raw(source) == topic:
                return source
        raise ValueError(f"{topic!r} is not a raw input topic")

    @property
    def identity_events(self) -> str:
        return self._settings.topic(IDENTITY_EVENTS)

    @property
    def commands(self) -> str:
        return self._settings.topic(COMMANDS)

    @property
    def dead_lettered(self) -> list[str]:
        """Every topic a stage consumes: each has a ``<topic>.dlq`` beside it."""
        return [*self.raw_topics, self.identity_events, self.commands, self.profile_events]

    def changelog(self, table: str) -> str:
        """The compacted changelog of a stage table (one of :data:`TABLES`)."""
        return self._settings.topic(f"{self._settings.app_id}-{table}-changelog")

    @property
    def workers(self) -> str:
        """Which worker holds which table partition, at which URL (``scv.streams.directory``)."""
        return self._settings.topic(f"{self._settings.app_id}-workers")

    @property
    def review(self) -> str:
        return self._settings.topic(REVIEW)

    @property
    def commands_dlq(self) -> str:
        return self.dlq(self.commands)

    @property
    def profile_events(self) -> str:
        return self._settings.topic(PROFILE_EVENTS)

    @property
    def profiles(self) -> str:
        return self._settings.topic(PROFILES)

    @property
    def merges(self) -> str:
        return self._settings.topic(MERGES)

    @property
    def households(self) -> str:
        return self._settings.topic(HOUSEHOLDS)

    @property
    def actions(self) -> str:
        return self._settings.topic(ACTIONS)

    @property
    def audiences(self) -> str:
        return self._settings.topic(AUDIENCES)

    @property
    def audit(self) -> str:
        return self._settings.topic(AUDIT)


@dataclass(frozen=True)
class TopicSpec:
    """Desired layout of one topic.

    ``partitions_setting`` names the environment variable that controls the partition
    count, so a mismatch error can tell the operator what to change (``None`` for topics
    whose count is fixed by design, such as the single-writer resolver input).
    """

    name: str
    partitions: int
    compacted: bool = False
    config: Mapping[str, str] = field(default_factory=dict, hash=False)
    partitions_setting: str | None = None

    @property
    def topic_config(self) -> dict[str, str]:
        """Broker config to create the topic with (``cleanup.policy`` from ``compacted``)."""
        config = dict(self.config)
        if self.compacted:
            config.setdefault("cleanup.policy", "compact")
        return config


class TopicLayoutError(RuntimeError):
    """An existing topic does not have the layout scv needs (partitions, cleanup policy)."""


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic the pipeline reads or writes, with its partition count and config."""
    names = Topics(settings)
    raw_n, stage_n = settings.raw_partitions, settings.stage_partitions
    raw_env, stage_env = "SCV_RAW_PARTITIONS", "SCV_STAGE_PARTITIONS"
    specs: list[TopicSpec] = []
    for raw in names.raw_topics:
        specs.append(TopicSpec(raw, raw_n, partitions_setting=raw_env))
        specs.append(TopicSpec(names.dlq(raw), raw_n, partitions_setting=raw_env))
    specs += [
        # One partition: the resolver is a single writer and must see every event in order.
        TopicSpec(names.identity_events, 1),
        TopicSpec(names.dlq(names.identity_events), 1),
        TopicSpec(names.commands, 1),
        TopicSpec(names.commands_dlq, 1),
        TopicSpec(names.profile_events, stage_n, partitions_setting=stage_env),
        TopicSpec(names.dlq(names.profile_events), stage_n, partitions_setting=stage_env),
        TopicSpec(names.profiles, stage_n, compacted=True, partitions_setting=stage_env),
        TopicSpec(names.merges, stage_n, partitions_setting=stage_env),
        TopicSpec(names.households, stage_n, compacted=True, partitions_setting=stage_env),
        TopicSpec(names.actions, stage_n, partitions_setting=stage_env),
        TopicSpec(names.audiences, stage_n, partitions_setting=stage_env),
        TopicSpec(names.review, stage_n, partitions_setting=stage_env),
        # One partition: the audit trail reads in the order things were done.
        TopicSpec(names.audit, 1),
    ]
    # Workers' announcements of what they hold (compacted; one partition, read whole).
    specs.append(TopicSpec(names.workers, 1, compacted=True))
    # The stages' state changelogs (compacted): partitioned like the input they follow.
    for table, partitioned in TABLES.items():
        n = stage_n if partitioned else 1
        specs.append(
            TopicSpec(
                names.changelog(table),
                n,
                compacted=True,
                partitions_setting=stage_env if partitioned else None,
            )
        )
    return specs


def create_topics(
    settings: Settings,
    specs: Sequence[TopicSpec] | None = None,
    timeout: float = 15.0,
) -> dict[str, str]:
    """Create missing topics and verify existing ones; return ``{name: "created"|"exists"}``.

    Idempotent. Raises :class:`TopicLayoutError` when an existing topic has another
    partition count (or a compacted topic is not compacted), and :class:`RuntimeError`
    with the broker's message for any other failure.
    """
    specs = list(topic_specs(settings) if specs is None else specs)
    admin = _admin(settings)
    existing = _partition_counts(admin, settings, timeout)

    result: dict[str, str] = {}
    missing = [spec for spec in specs if spec.name not in existing]
    isr = settings.min_insync_replicas
    replicas = {"min.insync.replicas": str(isr)} if isr else {}
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    spec.name,
                    num_partitions=spec.partitions,
                    replication_factor=settings.replication_factor,
                    config=spec.topic_config | replicas,
                )
                for spec in missing
            ],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        errors: list[str] = []
        for name, future in futures.items():
            try:
                future.result()
                result[name] = "created"
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    result[name] = "exists"  # created concurrently by another process
                else:
                    errors.append(f"{name}: {error.name()} {error.str()}")
        if errors:
            raise RuntimeError("could not create topics: " + "; ".join(errors))
        # Usable when this returns: every topic in the metadata (and those created
        # concurrently elsewhere checked like existing ones).
        existing = _listed(admin, settings, list(result), timeout)

    problems = []
    for spec in specs:
        if result.get(spec.name) == "created":
            continue
        result[spec.name] = "exists"
        actual = existing.get(spec.name)
        if actual is not None and actual != spec.partitions:
            problems.append(_partition_problem(spec, actual))
    problems += _cleanup_policy_problems(
        admin, [s for s in specs if s.compacted and result[s.name] == "exists"], timeout
    )
    if problems:
        raise TopicLayoutError("; ".join(problems))
    created = sorted(name for name, state in result.items() if state == "created")
    if created:
        log.info("created topics: %s", ", ".join(created))
    return result


def _topic_configs(
    admin: AdminClient, names: list[str], timeout: float
) -> list[tuple[ConfigResource, dict[str, Any]]]:
    """Each topic's configuration. A topic just created elsewhere may not be known to the
    broker asked yet (UNKNOWN_TOPIC_OR_PART for a moment): asked again until ``timeout``.
    Other refusals (ACLs) are logged and the topic left out."""
    deadline = time.monotonic() + timeout
    out: list[tuple[ConfigResource, dict[str, Any]]] = []
    todo = list(names)
    while todo:
        resources = [ConfigResource(ResourceType.TOPIC, name) for name in todo]
        futures: dict[Any, Any] = admin.describe_configs(resources, request_timeout=timeout)
        todo = []
        for resource, future in futures.items():
            try:
                out.append((resource, future.result()))
            except KafkaException as exc:
                unknown = exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
                if unknown and time.monotonic() < deadline:
                    todo.append(resource.name)
                else:
                    log.warning("cannot check cleanup.policy of %s: %s", resource.name, exc)
        if todo:
            time.sleep(0.1)
    return out


def describe(settings: Settings, timeout: float = 10.0) -> dict[str, int]:
    """Existing topics with ``SCV_TOPIC_PREFIX`` (internal ``__*`` topics left out)."""
    counts = _partition_counts(_admin(settings), settings, timeout)
    return {
        name: n
        for name, n in sorted(counts.items())
        if name.startswith(settings.topic_prefix) and not name.startswith("__")
    }


# ---------------------------------------------------------------------------- internals
def _admin(settings: Settings) -> AdminClient:
    return AdminClient(admin_config(settings))


def _partition_counts(admin: AdminClient, settings: Settings, timeout: float) -> dict[str, int]:
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise RuntimeError(
            f"cannot read topic metadata from Kafka at {settings.bootstrap_servers}: "
            f"{exc.args[0].str() if exc.args else exc}"
        ) from exc
    return {
        name: len(topic.partitions)
        for name, topic in metadata.topics.items()
        if topic.error is None or topic.error.code() == KafkaError.NO_ERROR
    }


def _listed(
    admin: AdminClient, settings: Settings, names: list[str], timeout: float
) -> dict[str, int]:
    """Partition counts once the metadata lists ``names``: a topic another client just
    created reaches every broker's metadata a moment later (Apache Kafka; tansu at once)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = _partition_counts(admin, settings, timeout)
        if all(name in counts for name in names) or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)


def _partition_problem(spec: TopicSpec, actual: int) -> str:
    if spec.partitions_setting:
        fix = f"delete it or change {spec.partitions_setting}"
    else:
        fix = "delete it (this topic must have exactly that count by design)"
    return f"topic {spec.name} has {actual} partitions, expected {spec.partitions} — {fix}"


def _cleanup_policy_problems(
    admin: AdminClient, specs: Sequence[TopicSpec], timeout: float
) -> list[str]:
    """Compacted topics that exist with another cleanup.policy.

    A non-compacted ``profiles.v1`` would lose profiles once retention kicks in, so this is
    checked rather than assumed. If the broker refuses DescribeConfigs (ACLs), log and go on.
    """
    if not specs:
        return []
    problems: list[str] = []
    for resource, entries in _topic_configs(admin, [spec.name for spec in specs], timeout):
        entry = entries.get("cleanup.policy")
        policy = entry.value if entry is not None else None
        if policy is None or "compact" not in policy:
            problems.append(
                f"topic {resource.name} has cleanup.policy={policy}, expected compact — "
                "alter it (kafka-configs --alter --add-config cleanup.policy=compact) "
                "or delete it"
            )
    return problems
