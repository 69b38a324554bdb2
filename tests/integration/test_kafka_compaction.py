"""Erasure with real compaction: after ``scv command erase`` and a run of Apache Kafka's log
cleaner, none of the person's values is left in any compacted topic (read from the start,
and in the segment files on the broker's disk) nor in the worker's RocksDB files, the other
people's profiles are all still there, and each retention-bound topic holds what
docs/privacy.md's table *What is retained where* says it holds.

tansu keeps everything and compacts nothing, so this needs Apache Kafka
(``SCV_BROKER=kafka``, ``make test-kafka``). The compacted topics are tuned here for fast
cleaning (:data:`FAST_CLEANING`); scv itself creates them with ``cleanup.policy`` only.

A worker takes her events and other people's and stops, so its tables are in RocksDB's files
(it writes no WAL); the checks are shown to find her values. A second worker takes the
erasure (``scv command erase`` run as a subprocess), a replay and a new event of hers. Then
one page view per profile partition, each second, makes every segment roll, until the cleaner
has removed everything (bounded: a failure names each value, topic, partition and offset
still found, with the partition's segment files and cleaner checkpoint).

The worker runs with ``SCV_COMPRESSION=none``: a value inside an lz4 batch would not be found
by searching the segment files' bytes, and that check would pass without proving anything.
Probabilistic matching is on, so the blocking index (keys made of names, birth dates,
postcodes, phone digits, email local parts) is in the graph tables too.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import string
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)
from pipeline import Pipeline, now_iso, uid

from scv.brokers import Broker, free_port
from scv.brokers.apache import ApacheKafka
from scv.domain.graph import RETIRED
from scv.kafka import admin_config, client_config
from scv.runner import Record, WorkerProcess, latest_by_key, settings_env
from scv.settings import Settings
from scv.topics import Topics, create_topics, topic_specs

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

#: Topic configs that let the cleaner act within seconds. ``segment.ms``: the active segment
#: is never cleaned, so it must roll soon (a roll happens on the first append after it);
#: ``delete.retention.ms``: tombstones go at the next cleaning after it (an identity-owners
#: tombstone's key is an identifier); ``file.delete.delay.ms``: a cleaned segment's old file
#: (``.log.deleted``) would stay on disk a minute by default.
FAST_CLEANING = {
    "segment.ms": "1000",
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": "100",
    "file.delete.delay.ms": "0",
}
#: How long the cleaner may take to remove everything once the erasure is done.
CLEAN_WITHIN_S = 60.0
#: Other people, before more are added until every profile partition holds one of them.
OTHERS = 6


# --------------------------------------------------------------------------- the people
def _letters(n: int) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=n))


@dataclass
class Person:
    """Made-up values no one else in the test has (phones in Ofcom's drama range)."""

    email: str  # as typed: mixed case
    phone: str  # as typed: national format
    customer: str
    cookie: str
    first: str
    last: str
    street: str
    birth_date: str
    postcode: str

    @classmethod
    def make(cls, number: int) -> Person:
        return cls(
            email=f"{_letters(5).title()}.{_letters(8).title()}@Acme-Corp.co.uk",
            phone=f"07700 900{number:03}",
            customer=uid("C"),
            cookie=uid("ck"),
            first=_letters(9).title(),
            last=_letters(10).title(),
            street=f"{number} {_letters(9).title()} Lane",
            birth_date=f"19{random.randint(40, 99)}-{random.randint(1, 12):02}-"
            f"{random.randint(1, 28):02}",
            postcode=f"ZE{random.randint(1, 3)} {random.randint(0, 9)}{_letters(2).upper()}",
        )

    def needles(self) -> dict[str, bytes]:
        """What must not be left, lower-cased (searched for in lower-cased bytes): each value
        as sent and as normalised (the search covers the email's spellings), and the forms
        the matcher's blocking keys take (email local part, phone digits, birth date and
        postcode without separators)."""
        return {
            "email": self.email.lower().encode(),
            "email local part": self.email.split("@")[0].lower().encode(),
            "phone as typed": self.phone.lower().encode(),
            "phone digits": self.phone.replace(" ", "")[1:].encode(),  # E.164 and blocking
            "customer id": self.customer.lower().encode(),
            "cookie": self.cookie.lower().encode(),
            "first name": self.first.lower().encode(),
            "last name": self.last.lower().encode(),
            "street": self.street.lower().encode(),
            "birth date": self.birth_date.encode(),
            "birth date digits": self.birth_date.replace("-", "").encode(),
            "postcode": self.postcode.lower().encode(),
            "postcode compact": self.postcode.replace(" ", "").lower().encode(),
        }


def _event(etype: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": uid("ev"), "timestamp": now_iso(), "type": etype, **fields}


def page_view(p: Person) -> dict[str, Any]:
    return _event("page_view", anonymous_id=p.cookie, session_id=uid("s"))


def order(p: Person) -> dict[str, Any]:
    return _event(
        "order",
        order_id=uid("o"),
        customer_id=p.customer,
        email=p.email,
        phone=p.phone,
        first_name=p.first,
        last_name=p.last,
        birth_date=p.birth_date,
        address={"street": p.street, "city": "Lerwick", "postcode": p.postcode},
        items=[{"sku": "SKU-9", "qty": 1, "price": 12.5}],
        total=12.5,
        currency="GBP",
    )


def her_story(p: Person, cart_id: str) -> list[tuple[str, dict[str, Any]]]:
    """A cookie, then an order (another profile), then a login that merges the two, a cart
    she abandons with marketing consent, and a call."""
    cart = {
        "cart_id": cart_id,
        "items": [{"sku": "SKU-1", "name": "Kettle", "qty": 1, "price": 29.99}],
        "currency": "GBP",
    }
    return [
        ("web", page_view(p)),
        ("transactions", order(p)),
        (
            "web",
            _event(
                "login",
                anonymous_id=p.cookie,
                session_id=uid("s"),
                email=p.email,
                customer_id=p.customer,
                consent={"marketing": True},
                traits={"first_name": p.first, "last_name": p.last},
            ),
        ),
        ("web", _event("cart_add", anonymous_id=p.cookie, session_id=uid("s"), cart=cart)),
        (
            "callcenter",
            _event("call", phone=p.phone, agent_id="agent-7", first_name=p.first, last_name=p.last),
        ),
    ]


def rejected(p: Person) -> bytes:
    """A web event the schema refuses (unknown type): its original bytes go to the DLQ."""
    return orjson.dumps(_event("teleport", anonymous_id=p.cookie, email=p.email))


def other_login(p: Person) -> dict[str, Any]:
    return _event(
        "login",
        anonymous_id=p.cookie,
        session_id=uid("s"),
        email=p.email,
        customer_id=p.customer,
        traits={"first_name": p.first, "last_name": p.last},
    )


# --------------------------------------------------------------------------- reading
def read_from_start(settings: Settings, topics: Iterable[str], isolation: str) -> list[Record]:
    """Every record of ``topics`` from the first one kept to the log end (no group)."""
    consumer = Consumer(
        client_config(settings)
        | {
            "group.id": f"scv-compaction-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": isolation,
        }
    )
    try:
        meta = consumer.list_topics(timeout=10)
        ends: dict[tuple[str, int], int] = {}
        for topic in topics:
            for p in meta.topics[topic].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high > low:
                    ends[(topic, p)] = high
        if not ends:
            return []
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in ends])
        out: list[Record] = []
        deadline = time.monotonic() + 30
        while ends:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {sorted(ends)} to their end in 30 s")
            for msg in consumer.consume(10000, 0.3):
                if msg.error() is not None:
                    continue
                topic, part, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
                if offset < ends.get((topic, part), 0):
                    headers = _header_map(msg.headers())
                    key, value = msg.key(), msg.value()  # bytes: no deserialiser is set
                    assert not isinstance(key, str) and not isinstance(value, str)
                    ts = msg.timestamp()[1]
                    out.append(Record(topic, part, offset, key, value, headers, ts))
            # The position, not the last offset seen: the cleaner may leave gaps anywhere.
            positions = consumer.position([TopicPartition(t, p) for t, p in ends])
            for tp in positions:
                if tp.offset >= ends[(tp.topic, tp.partition)]:
                    del ends[(tp.topic, tp.partition)]
        return out
    finally:
        consumer.close()


def _header_map(raw: Any) -> dict[str, bytes]:
    """A consumed message's headers: (name, value) pairs."""
    return {name: v.encode() if isinstance(v, str) else v or b"" for name, v in raw or []}


def found_in_records(records: Iterable[Record], needles: dict[str, bytes]) -> list[str]:
    """``topic[partition]@offset key|value|header <name>: <what>`` for every hit."""
    hits = []
    for rec in records:
        parts = [("key", rec.key or b""), ("value", rec.value or b"")]
        parts += [(f"header {name}", value) for name, value in rec.headers.items()]
        for where, data in parts:
            low = data.lower()
            for what, needle in needles.items():
                if needle in low:
                    hits.append(f"{rec.topic}[{rec.partition}]@{rec.offset} {where}: {what}")
    return hits


def found_in_files(files: Iterable[Path], needles: dict[str, bytes]) -> list[str]:
    hits = []
    for path in files:
        try:
            low = path.read_bytes().lower()
        except OSError:  # deleted meanwhile (a cleaned segment's old file)
            continue
        hits += [f"{path}: {what}" for what, needle in needles.items() if needle in low]
    return hits


def segment_files(kafka: ApacheKafka, topics: Iterable[str]) -> list[Path]:
    """The record files of ``topics`` on the broker's disk: segments and the cleaner's
    ``.cleaned``/``.swap``/``.deleted`` copies (indexes hold offsets, not records)."""
    names = set(topics)
    files: list[Path] = []
    for node in kafka.nodes:
        for folder in node.data.iterdir():
            if folder.is_dir() and folder.name.rpartition("-")[0] in names:
                files += [f for f in folder.iterdir() if ".log" in f.name]
    return files


def state_files(settings: Settings) -> list[Path]:
    return [p for p in Path(settings.data_dir).rglob("*") if p.is_file()]


# --------------------------------------------------------------------------- the broker
def compacted_topics(settings: Settings) -> list[str]:
    return [spec.name for spec in topic_specs(settings) if spec.compacted]


def topic_configs(settings: Settings, names: list[str]) -> dict[str, dict[str, str]]:
    admin = AdminClient(admin_config(settings))
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in names])
    return {
        res.name: {k: e.value for k, e in future.result().items()}
        for res, future in futures.items()
    }


def tune_for_fast_cleaning(settings: Settings) -> list[str]:
    """Set :data:`FAST_CLEANING` on every compacted topic scv made; the topics changed."""
    names = compacted_topics(settings)
    every = [spec.name for spec in topic_specs(settings)]
    policies = {n: c.get("cleanup.policy") for n, c in topic_configs(settings, every).items()}
    assert sorted(n for n, p in policies.items() if "compact" in (p or "")) == sorted(names)
    entries = [
        ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
        for k, v in FAST_CLEANING.items()
    ]
    admin = AdminClient(admin_config(settings))
    resources = [ConfigResource(ResourceType.TOPIC, n, incremental_configs=entries) for n in names]
    for future in admin.incremental_alter_configs(resources).values():
        future.result()
    # The broker applies a change once the controller's metadata reaches it: a moment later.
    deadline = time.monotonic() + 15
    while True:
        configs = topic_configs(settings, names)
        stale = {
            n: c for n, c in configs.items() if any(c[k] != v for k, v in FAST_CLEANING.items())
        }
        if not stale:
            return names
        assert time.monotonic() < deadline, f"configs not applied after 15 s: {stale}"
        time.sleep(0.2)


def cleaner_report(kafka: ApacheKafka, partitions: set[tuple[str, int]]) -> str:
    """Each partition's segment files, the cleaner's checkpoint for it and its log lines."""
    lines = []
    node = kafka.nodes[0]
    checkpoint = node.data / "cleaner-offset-checkpoint"
    cleaned = checkpoint.read_text().splitlines() if checkpoint.exists() else []
    log = node.log_path.read_text(errors="replace").splitlines() if node.log_path.exists() else []
    for topic, part in sorted(partitions):
        folder = node.data / f"{topic}-{part}"
        lines.append(f"-- {topic}-{part}")
        for f in sorted(folder.iterdir()) if folder.exists() else []:
            if not f.name.endswith((".index", ".timeindex")):
                stat = f.stat()
                lines.append(f"   {f.name} {stat.st_size} B, mtime {time.ctime(stat.st_mtime)}")
        lines += [f"   checkpoint: {c}" for c in cleaned if c.startswith(f"{topic} {part} ")]
        said = [s for s in log if "clean" in s.lower() and f"{topic}-{part}" in s]
        lines += [f"   {s}" for s in said[-6:]] or ["   (no cleaner line in the log names it)"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the worker
@pytest.fixture
def tuned(kafka: Broker, settings: Settings) -> Settings:
    """Settings for a worker on the Apache Kafka session broker, whose topics exist and are
    tuned for fast cleaning."""
    settings = settings.model_copy(
        update={
            "web_port": free_port(),
            "cart_window_s": 2.0,
            "cart_check_interval_s": 0.5,
            "matching": True,  # the blocking index holds name, phone and email-based keys
            "compression": "none",
        }
    )
    create_topics(settings)
    tune_for_fast_cleaning(settings)
    return settings


@contextlib.contextmanager
def running_worker(settings: Settings, log: Path) -> Iterator[Pipeline]:
    worker = WorkerProcess(settings, log).start()
    try:
        worker.wait_ready(90)
        pipeline = Pipeline(settings, worker)
        try:
            yield pipeline
        finally:
            pipeline.close()
    finally:
        worker.stop()


def erase_with_the_cli(settings: Settings, *identifiers: str) -> str:
    """``scv command erase --identifier … --requested-by dpo``; the command id it sent."""
    args = [sys.executable, "-m", "scv.cli", "command", "erase", "--requested-by", "dpo"]
    for ident in identifiers:
        args += ["--identifier", ident]
    done = subprocess.run(
        args,
        env=os.environ | settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = re.search(r"sent erase (cmd-\S+)", done.stdout)
    assert found, done.stdout
    return found.group(1)


# --------------------------------------------------------------------------- the test
def test_erased_values_leave_every_compacted_topic_and_the_retained_ones_match_the_docs(
    kafka: Broker, tuned: Settings, tmp_path: Path
) -> None:
    assert isinstance(kafka, ApacheKafka)
    settings, topics = tuned, Topics(tuned)
    compacted = compacted_topics(settings)
    numbers = iter(random.sample(range(1000), 100))
    her = Person.make(next(numbers))
    needles = her.needles()
    cart_id = uid("cart")
    started = time.monotonic()

    # --- her story, and other people until one lives in every profile partition --------
    with running_worker(settings, tmp_path / "worker-1.log") as pipeline:
        story = her_story(her, cart_id)
        for source, event in story[:2]:  # two profiles first; then the login merges them
            pipeline.send(source, event)
        pipeline.wait_for(lambda: pipeline.profile_with("anonymous_id", her.cookie))
        pipeline.wait_for(lambda: pipeline.profile_with("customer_id", her.customer))
        for source, event in story[2:]:
            pipeline.send(source, event)
        pipeline.send("web", rejected(her))
        others = people_in_every_partition(pipeline, numbers)
        profile = pipeline.wait_for(
            lambda: (
                p
                if (p := pipeline.profile_with("email", her.email.lower()))
                and p["event_count"] == len(story)
                else None
            )
        )
        pid, merged = profile["profile_id"], list(profile["merged_from"])
        assert merged, "the login merged her cookie's profile into the order's"
        pipeline.wait_for(lambda: next(iter(pipeline.actions(pid)), None))
        pipeline.drain()
    # The worker stopped: its memtables are in SST files now (there is no WAL).

    # Before: her values are everywhere the checks below look, or they would prove nothing.
    before = found_in_records(read_from_start(settings, compacted, "read_uncommitted"), needles)
    holding = {hit.split("@")[0].rpartition("[")[0] for hit in before}
    assert {
        topics.profiles,
        *(topics.changelog(t) for t in ("identity-owners", "identity-nodes", "profiles")),
    } <= holding, holding
    assert found_in_files(segment_files(kafka, compacted), needles)
    assert found_in_files(state_files(settings), needles)

    with running_worker(settings, tmp_path / "worker-2.log") as pipeline:
        # --- the erasure --------------------------------------------------------------
        command_id = erase_with_the_cli(settings, f"email:{her.email}", f"phone:{her.phone}")
        pipeline.wait_for(lambda: True if pid not in pipeline.profiles() else None)
        pipeline.drain()
        erased_at = time.monotonic()
        # After it: a replay, a new order (the list drops both) and a rejected event.
        after = order(her)
        pipeline.send("transactions", story[1][1])
        pipeline.send("transactions", after)
        pipeline.send("web", rejected(her))

        # --- the cleaner --------------------------------------------------------------
        # What stays of her ids (docs/privacy.md): the graph's retired marker and the
        # profile table's erasure marker; her snapshots' tombstones go after them.
        markers = {
            (topics.changelog(table), key.encode()): marker
            for key in (pid, *merged)
            for table, marker in (
                ("identity-nodes", RETIRED),
                ("profiles", orjson.dumps({"erased": command_id})),
            )
        }
        rounds = 0
        while True:
            for _, person in others.values():  # traffic on every partition: segments roll
                pipeline.send("web", page_view(person))
            rounds += 1
            left = leftovers(kafka, settings, needles, markers)
            if not left:
                break
            if time.monotonic() - erased_at > CLEAN_WITHIN_S:
                parts = {
                    (m.group(1), int(m.group(2)))
                    for hit in left
                    if (m := re.match(r"(\S+)\[(\d+)\]", hit))
                }
                pytest.fail(
                    f"{CLEAN_WITHIN_S:.0f} s after the erasure ({rounds} rounds of traffic) "
                    "the cleaner has not removed:\n  "
                    + "\n  ".join(left)
                    + "\n"
                    + cleaner_report(kafka, parts)
                )
            time.sleep(1.0)
        cleaned_in = time.monotonic() - erased_at
        pipeline.drain()

        # Both isolation levels see the same (scv writes no transactions): nothing of hers.
        committed = read_from_start(settings, compacted, "read_committed")
        assert found_in_records(committed, needles) == []
        # What is left of her ids there, exactly: the markers.
        ids = {key for _, key in markers}
        assert {(r.topic, r.key, r.value) for r in committed if r.key in ids} == {
            (topic, key, value) for (topic, key), value in markers.items()
        }

        # Compaction kept what it should: every other person's profile and graph entries.
        live = latest_by_key(r for r in committed if r.topic == topics.profiles)
        owners = latest_by_key(
            r for r in committed if r.topic == topics.changelog("identity-owners")
        )
        for other_pid, (_, person) in others.items():
            snap = orjson.loads(live[other_pid.encode()])
            assert person.email.lower() in snap["identifiers"]["email"]
            assert owners[f"email:{person.email.lower()}".encode()] == other_pid.encode()
        assert set(pipeline.profiles()) >= set(others)

        # RocksDB: nothing of hers in any file of the worker's state directory.
        assert found_in_files(state_files(settings), needles) == []

        check_retention_bound_topics(pipeline, her, pid, cart_id, command_id, after)
    print(
        f"cleaned {cleaned_in:.1f} s after the erasure ({rounds} rounds of traffic); "
        f"the test took {time.monotonic() - started:.1f} s"
    )


def people_in_every_partition(
    pipeline: Pipeline, numbers: Iterator[int]
) -> dict[str, tuple[int, Person]]:
    """Other people (profile id -> partition, person), until each partition of profiles.v1
    (and of the profile tables' changelogs, partitioned alike) holds one: a page view of
    theirs then writes to it."""
    settings, topics = pipeline.settings, pipeline.topics
    others: dict[str, tuple[int, Person]] = {}
    pending: list[Person] = []
    while True:
        for _ in range(OTHERS if not others else 4):
            person = Person.make(next(numbers))
            pending.append(person)
            pipeline.send("web", other_login(person))
        pipeline.drain()
        snapshots = read_from_start(settings, [topics.profiles], "read_committed")
        live = latest_by_key(snapshots)
        where = {r.key: r.partition for r in snapshots if r.key in live}
        for key, value in live.items():
            emails = orjson.loads(value)["identifiers"].get("email", [])
            for person in pending:
                if person.email.lower() in emails:
                    others[key.decode()] = (where[key], person)
        pending = [p for p in pending if all(p is not q for _, q in others.values())]
        assert not pending, f"no profile for {pending}"
        covered = {part for part, _ in others.values()}
        if covered == set(range(settings.stage_partitions)):
            return others
        assert len(others) < 60, f"{len(others)} people cover only partitions {covered}"


def leftovers(
    kafka: ApacheKafka,
    settings: Settings,
    needles: dict[str, bytes],
    markers: dict[tuple[str, bytes], bytes],
) -> list[str]:
    """What the cleaner has yet to remove: her values in the compacted topics (read from the
    start with read_uncommitted, which sees every record read_committed sees and more) and
    in their segment files, and any record keyed by one of her profile ids but the markers
    ``markers`` (topic, key -> value) says stay: older states and snapshots, forwarding
    markers, tombstones."""
    compacted = compacted_topics(settings)
    records = read_from_start(settings, compacted, "read_uncommitted")
    left = found_in_records(records, needles)
    for path in segment_files(kafka, compacted):
        topic, _, part = path.parent.name.rpartition("-")
        left += [f"{topic}[{part}] {hit}" for hit in found_in_files([path], needles)]
    ids = {key for _, key in markers}
    left += [
        f"{r.topic}[{r.partition}]@{r.offset} key: her profile id {r.key!r} ({r.value!r})"
        for r in records
        if r.key in ids and markers.get((r.topic, r.key)) != r.value
    ]
    return left


#: docs/privacy.md, *What is retained where*: what each topic that is not compacted
#: still holds of her after the erasure (until retention deletes it). The sets are exact:
#: each kind of value she sent, where the table says it stays, and nowhere else.
IDENTIFIERS = {"email", "email local part", "phone digits", "customer id", "cookie"}
TRAITS = {"first name", "last name", "street", "birth date", "postcode"}
RETAINED: dict[str, set[str]] = {
    # the raw events, as she sent them
    "raw.web.v1": {"email", "email local part", "customer id", "cookie", "first name", "last name"},
    "raw.transactions.v1": {"email", "email local part", "phone as typed", "customer id"} | TRAITS,
    "raw.callcenter.v1": {"phone as typed", "first name", "last name"},
    "raw.email.v1": set(),
    # the original bytes of her rejected events (one of them sent after the erasure)
    "raw.web.v1.dlq": {"email", "email local part", "cookie"},
    "raw.transactions.v1.dlq": set(),
    "raw.callcenter.v1.dlq": set(),
    "raw.email.v1.dlq": set(),
    # normalised events: identifiers and traits (also of events sent after the erasure)
    "identity.events.v1": IDENTIFIERS | TRAITS,
    "identity.events.v1.dlq": set(),
    # the erase command: its subject and identifiers, as typed
    "identity.commands.v1": {"email", "email local part", "phone as typed"},
    "identity.commands.v1.dlq": set(),
    # resolved events and hand-over states
    "profiles.events.v1": IDENTIFIERS | TRAITS,
    "profiles.events.v1.dlq": set(),
    # identifier keys in the merge's reason
    "profiles.merges.v1": {"email", "email local part", "customer id"},
    # her abandoned cart: items, no identifier, name or address
    "actions.v1": set(),
    # live audiences (written by the activation worker, which this test does not run):
    # profile ids and audience names only
    "audiences.v1": set(),
    # no review request was made for her
    "identity.review.v1": set(),
    # the audit trail: ids, types and counts
    "audit.v1": set(),
}


def check_retention_bound_topics(
    pipeline: Pipeline,
    her: Person,
    pid: str,
    cart_id: str,
    command_id: str,
    after: dict[str, Any],
) -> None:
    """Every topic that is not compacted holds of her exactly what :data:`RETAINED` says."""
    settings, needles = pipeline.settings, her.needles()
    # Two forms of one value count as that value (the forms the blocking keys use).
    fold = {"birth date digits": "birth date", "postcode compact": "postcode"}
    bound = [spec.name for spec in topic_specs(settings) if not spec.compacted]
    assert {settings.topic(name) for name in RETAINED} == set(bound)
    held: dict[str, set[str]] = {}
    records: dict[str, list[Record]] = {}
    for name in RETAINED:
        records[name] = read_from_start(settings, [settings.topic(name)], "read_committed")
        hits = found_in_records(records[name], needles)
        held[name] = {fold.get(what, what) for what in (h.rpartition(": ")[2] for h in hits)}
    wrong = {
        name: {"table": sorted(RETAINED[name]), "found": sorted(held[name])}
        for name in RETAINED
        if held[name] != RETAINED[name]
    }
    assert not wrong, orjson.dumps(wrong, option=orjson.OPT_INDENT_2).decode()

    # What arrived after the erasure: normalised and dead-lettered before the list is
    # consulted (the resolver consults it), so it is retained like what came before ...
    after_id = after["event_id"].encode()
    assert any(after_id in (r.value or b"") for r in records["identity.events.v1"])
    rejected_after = [r for r in records["raw.web.v1.dlq"] if b"teleport" in (r.value or b"")]
    assert len(rejected_after) == 2
    # ... but never resolved: no profile event and an audit record instead.
    assert not any(after_id in (r.value or b"") for r in records["profiles.events.v1"])
    audit = [orjson.loads(r.value or b"") for r in records["audit.v1"]]
    dropped = [a["event_id"] for a in audit if a["kind"] == "suppressed_event"]
    assert after["event_id"] in dropped
    assert {a["stage"] for a in audit if a.get("command_id") == command_id} == {
        "resolve",
        "profiles",
    }
    # Her abandoned cart's action is kept (cart items only).
    assert [a["payload"]["cart_id"] for a in pipeline.actions(pid)] == [cart_id]
