"""What a worker needs the broker to let it do, checked before it starts.

A worker the broker does not let in would otherwise never become ready, and say little:
librdkafka retries a refused login forever (logging it), a consumer refused its group logs
one warning, and a producer refused a topic fails its first delivery. So ``scv worker``
first asks the broker, with an admin client on the worker's own credentials, what it may do
on every topic it reads or writes and on its consumer group (Kafka's authorized operations,
KIP-430), and stops with one line naming what is refused (:class:`~scv.kafka.KafkaRefused`;
``scv`` exits with 2).

Only a refusal stops the worker. A broker that does not report authorized operations
(tansu, or any broker without an authorizer reports them all), a topic that does not exist
yet, or a broker that does not answer within the check's time leaves the worker to start as
before. The ACLs themselves are listed in docs/configuration.md#acls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AclOperation, AdminClient

from scv.kafka import KafkaRefused, admin_config, refusal
from scv.settings import Settings
from scv.topics import TABLES, Topics

log = logging.getLogger(__name__)

READ, WRITE = AclOperation.READ, AclOperation.WRITE

#: ("topic" | "group", name)
Resource = tuple[str, str]

#: Errors that mean the principal may not even describe the resource.
_REFUSED = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED}

#: The graph tables follow the resolver, the others the profile stage.
_RESOLVER_TABLES = [name for name, partitioned in TABLES.items() if not partitioned]
_PROFILE_TABLES = [name for name, partitioned in TABLES.items() if partitioned]


@dataclass
class Needs:
    """The operations a worker performs, per topic and per consumer group."""

    topics: dict[str, set[AclOperation]] = field(default_factory=dict)
    groups: dict[str, set[AclOperation]] = field(default_factory=dict)

    def topic(self, names: Iterable[str], *ops: AclOperation) -> None:
        for name in names:
            self.topics.setdefault(name, set()).update(ops)

    @property
    def resources(self) -> dict[Resource, set[AclOperation]]:
        return {("topic", n): ops for n, ops in self.topics.items()} | {
            ("group", n): ops for n, ops in self.groups.items()
        }


def worker_needs(settings: Settings) -> Needs:
    """What a worker running ``SCV_STAGES`` reads and writes (its inputs, outputs, DLQs,
    changelogs, the actions it reads back on restore, the workers directory) and the group
    it joins. The restore and directory consumers assign partitions without joining or
    committing, so their group ids need no ACL."""
    topics = Topics(settings)
    stages = set(settings.stages.split(","))
    needs = Needs(groups={settings.app_id: {READ}})
    needs.topic([topics.workers], READ, WRITE)
    if "normalize" in stages:
        needs.topic(topics.raw_topics, READ)
        needs.topic([topics.dlq(t) for t in topics.raw_topics], WRITE)
        needs.topic([topics.identity_events], WRITE)
    if "resolve" in stages:
        inputs = [topics.identity_events, topics.commands]
        needs.topic(inputs, READ)
        needs.topic([topics.dlq(t) for t in inputs], WRITE)
        written = [topics.profile_events, topics.merges, topics.households, topics.review]
        needs.topic([*written, topics.audit], WRITE)
        needs.topic([topics.changelog(t) for t in _RESOLVER_TABLES], READ, WRITE)
    if "profiles" in stages:
        # Hand-overs go back to the stage's own input; restore reads the actions it sent.
        needs.topic([topics.profile_events, topics.actions], READ, WRITE)
        needs.topic([topics.dlq(topics.profile_events), topics.profiles, topics.audit], WRITE)
        needs.topic([topics.changelog(t) for t in _PROFILE_TABLES], READ, WRITE)
    return needs


def missing(
    needs: Mapping[Resource, set[AclOperation]],
    granted: Mapping[Resource, Iterable[AclOperation] | None],
) -> dict[Resource, list[AclOperation]]:
    """The needed operations the broker does not grant, per resource. A resource the broker
    said nothing about (missing from ``granted``, or None) is not judged."""
    out: dict[Resource, list[AclOperation]] = {}
    for resource, ops in needs.items():
        allowed = granted.get(resource)
        if allowed is None:
            continue
        lacking = sorted(ops - set(allowed), key=lambda op: op.name)
        if lacking:
            out[resource] = lacking
    return out


def refused_line(settings: Settings, lacking: Mapping[Resource, list[AclOperation]]) -> str:
    """One line naming the principal and each operation it may not perform, where."""
    by_op: dict[tuple[str, str], list[str]] = {}
    for (kind, name), ops in sorted(lacking.items()):
        for op in ops:
            by_op.setdefault((kind, op.name), []).append(name)
    parts = [
        f"{what} {kind}{'s' if len(names) > 1 else ''} {', '.join(names)}"
        for (kind, what), names in sorted(by_op.items())
    ]
    who = f"user {settings.sasl_username!r}" if settings.sasl_username else "this client"
    return (
        f"{who} is not authorized by Kafka at {settings.bootstrap_servers} to "
        f"{'; '.join(parts)} (docs/configuration.md#acls lists what a worker needs)"
    )


def check_worker_access(
    settings: Settings, stopping: threading.Event | None = None, timeout: float = 20.0
) -> None:
    """Raise :class:`KafkaRefused` when the broker refuses the worker's login or an
    operation it needs; return when everything is granted, or not known within ``timeout``
    (or once ``stopping`` is set)."""
    errors: list[KafkaError] = []
    # The check's own client keeps quiet: a refused login is reported once, below.
    admin = AdminClient(admin_config(settings) | {"log_level": 2, "error_cb": errors.append})
    needs = worker_needs(settings).resources
    granted: dict[Resource, Iterable[AclOperation] | None] = {}
    deadline = time.monotonic() + timeout
    pending = set(needs)
    while pending and time.monotonic() < deadline:
        wait = max(1.0, deadline - time.monotonic())
        futures = _describe(admin, pending, wait)
        answer_by = time.monotonic() + wait + 5.0  # request_timeout ends them before this
        while not all(f.done() for f in futures.values()) and time.monotonic() < answer_by:
            admin.poll(0.1)
            for error in errors:
                line = refusal(settings, error)
                if line is not None:
                    raise KafkaRefused(line)
            if stopping is not None and stopping.is_set():
                return
        for resource, future in futures.items():
            if not future.done():
                continue
            try:
                granted[resource] = future.result().authorized_operations
            except KafkaException as exc:
                code = exc.args[0].code() if exc.args else None
                if code in _REFUSED:
                    granted[resource] = []
                elif code == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    granted[resource] = None  # not created yet: the worker waits for it
                else:
                    continue  # retried (a coordinator still loading, a timeout)
            pending.discard(resource)
        if pending:
            time.sleep(0.2)
    if pending:
        log.warning(
            "could not check the worker's ACLs on %d topic(s)/group(s) within %.0fs; starting",
            len(pending),
            timeout,
        )
    lacking = missing(needs, granted)
    if lacking:
        raise KafkaRefused(refused_line(settings, lacking))


def _describe(admin: AdminClient, resources: set[Resource], timeout: float) -> dict[Resource, Any]:
    topics = sorted(name for kind, name in resources if kind == "topic")
    groups = sorted(name for kind, name in resources if kind == "group")
    futures: dict[Resource, Any] = {}
    if topics:
        described = admin.describe_topics(
            TopicCollection(topics), include_authorized_operations=True, request_timeout=timeout
        )
        futures |= {("topic", name): future for name, future in described.items()}
    if groups:
        described = admin.describe_consumer_groups(
            groups, include_authorized_operations=True, request_timeout=timeout
        )
        futures |= {("group", name): future for name, future in described.items()}
    return futures
