"""Operating scv against the broker and a running worker: metrics, replay, drop folder, export.

One worker (probabilistic matching on, so its metrics are exported too) serves the module.
Files are real JSON lines, CSV and Parquet; the commands run as ``python -m scv.cli``
subprocesses, the way an operator runs them.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition
from pipeline import Pipeline, uid
from pipeline import web_event as web
from prometheus_client.parser import text_string_to_metric_families

from scv.brokers import Broker
from scv.connectors.progress import human_bytes
from scv.kafka import consumer_config, producer_config
from scv.runner import read_topic, settings_env
from scv.settings import Settings
from scv.streams.metrics import ConsumerLag
from scv.topics import TopicSpec, create_topics

pytestmark = pytest.mark.integration

WORKER_SETTINGS = {"matching": True}
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "scv.json"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(pipeline: Pipeline) -> tuple[Samples, dict[str, str]]:
    """The worker's /metrics parsed by prometheus_client: (samples, family name -> type)."""
    status, body = pipeline.get("/metrics")
    assert status == 200
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(body.decode()):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, types


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of ``name`` over every series whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lb), v in samples.items() if n == name and want <= set(lb))


def scv(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = os.environ | settings_env(settings)
    return subprocess.run(
        [sys.executable, "-m", "scv.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# ------------------------------------------------------------------------------ metrics
def test_metrics_move_when_events_flow(pipeline: Pipeline) -> None:
    t = pipeline.topics
    before, _ = scrape(pipeline)
    cookie, other, address = uid("ck"), uid("ck"), f"{uid('m')}@acme-corp.co.uk"
    cart = {"cart_id": uid("cart"), "items": [{"sku": "S", "qty": 1, "price": 2.5}]}
    consent = {"marketing": True}
    pipeline.send("web", web("page_view", cookie))
    pipeline.send("web", web("signup", other, email=address, consent=consent))
    pipeline.send("web", web("login", cookie, email=address))  # a merge
    pipeline.send("web", web("cart_add", cookie, cart=cart))
    pipeline.send("web", b"{not json")
    pipeline.wait_for(lambda: _fired(pipeline, address), 30)
    pipeline.drain()

    def caught_up() -> tuple[Samples, dict[str, str]] | None:
        """A scrape after a statistics report (every 5 s) has seen the drained group."""
        samples, types = scrape(pipeline)
        lag = [v for (n, _), v in samples.items() if n == "scv_consumer_lag_messages"]
        return (samples, types) if lag and sum(lag) == 0 else None

    after, types = pipeline.wait_for(caught_up, 20)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("scv_events_in_total", stage="normalize") == 5
    assert moved("scv_events_out_total", stage="normalize", topic=t.identity_events) == 4
    assert moved("scv_dlq_total", topic=t.raw("web"), reason="invalid_json") == 1
    assert moved("scv_events_in_total", stage="resolve") == 4
    assert moved("scv_resolve_seconds_count") == 4
    assert moved("scv_resolve_seconds_sum") > 0
    assert moved("scv_merges_total") >= 1
    assert moved("scv_events_out_total", stage="resolve", topic=t.merges) >= 1
    assert moved("scv_events_out_total", stage="profiles", topic=t.profiles) >= 3
    assert moved("scv_events_out_total", stage="tables") >= 3  # changelog writes
    assert moved("scv_actions_total", type="abandoned_cart") == 1
    assert moved("scv_batch_messages_count") >= 1
    assert moved("scv_batch_messages_sum") >= 5 + 4  # raw plus resolver input at least
    assert moved("scv_match_decisions_total") >= 1  # matching is on in this module
    assert total(after, "scv_worker_ready") == 1
    assert total(after, "scv_table_restore_seconds_count") >= 1  # the start-up assignment
    # lag: one series per assigned input partition, all caught up after the drain
    lag = {lb: v for (n, lb), v in after.items() if n == "scv_consumer_lag_messages"}
    lag_topics = {dict(lb)["topic"] for lb in lag}
    assert set(t.raw_topics) | {t.identity_events, t.profile_events} <= lag_topics
    assert sum(lag.values()) == 0
    assert types["scv_resolve_seconds"] == "histogram"
    assert not [n for n, _ in after if n.endswith("_created")]


def _fired(pipeline: Pipeline, address: str) -> list[dict[str, Any]] | None:
    profile = pipeline.profile_with("email", address)
    if profile is None:
        return None
    return pipeline.actions(profile["profile_id"]) or None


def test_consumer_lag_comes_from_the_clients_statistics(broker: Broker, settings: Settings) -> None:
    """Committed 3 of 10 messages: lag 7; an empty partition: 0, not missing."""
    topic = settings.topic("lag-probe")
    create_topics(settings, [TopicSpec(topic, 2)])
    producer = Producer(producer_config(settings))
    for i in range(10):
        producer.produce(topic, value=str(i).encode(), partition=0)
    assert producer.flush(10) == 0
    lag = ConsumerLag()
    config = consumer_config(
        settings, "lag-probe", **{"enable.auto.commit": False, "statistics.interval.ms": 200}
    )
    consumer = Consumer(config | {"stats_cb": lag.on_stats})
    try:
        consumer.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 0)])
        got: list[Any] = []
        deadline = time.monotonic() + 20
        while len(got) < 3 and time.monotonic() < deadline:
            got += [m for m in consumer.consume(3 - len(got), 0.5) if m.error() is None]
        consumer.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)

        def reading() -> list[tuple[dict[str, str], float]]:
            [family] = list(lag.collect())
            return [(s.labels, s.value) for s in family.samples]

        want = [({"topic": topic, "partition": "0"}, 7), ({"topic": topic, "partition": "1"}, 0)]
        while reading() != want and time.monotonic() < deadline:
            consumer.poll(0.2)  # statistics are delivered from poll/consume
        assert reading() == want
        lag.clear()
        assert reading() == []
    finally:
        consumer.close()


def test_dashboard_and_alerts_name_metrics_the_worker_exports(pipeline: Pipeline) -> None:
    _, types = scrape(pipeline)
    exported = set(types)
    for name, kind in types.items():
        exported |= {
            "counter": {f"{name}_total"},
            "histogram": {f"{name}_bucket", f"{name}_sum", f"{name}_count"},
        }.get(kind, set())
    board = json.loads(DASHBOARD.read_text())
    rules = yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())
    queries = [
        *((p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])),
        *((r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]),
    ]
    used = set()
    for title, expr in queries:
        names = set(re.findall(r"\b((?:scv|process)_[a-z0-9_]+)\b", expr))
        assert names, f"{title}: no metric in {expr!r}"
        assert names <= exported, f"{title}: {sorted(names - exported)} not exported"
        used |= names
    # and the dashboard covers what the issue asks to watch
    for name in (
        "scv_events_in_total",
        "scv_events_out_total",
        "scv_dlq_total",
        "scv_merges_total",
        "scv_splits_total",
        "scv_actions_total",
        "scv_resolve_seconds_bucket",
        "scv_consumer_lag_messages",
        "scv_table_restore_seconds_sum",
    ):
        assert name in used, name


# ------------------------------------------------------------------------------ replay
def write_files(folder: Path, cookies: list[str]) -> list[Path]:
    """One web event per cookie, spread over a JSON-lines, a CSV and a Parquet file."""
    events = [web("page_view", c) for c in cookies]
    folder.mkdir(parents=True, exist_ok=True)
    jsonl, csv_path, parquet = folder / "a.jsonl", folder / "b.csv", folder / "c.parquet"
    jsonl.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events[0::3]))
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(events[1]))
        writer.writeheader()
        writer.writerows(events[1::3])
    pq.write_table(pa.Table.from_pylist(events[2::3]), parquet)
    return [jsonl, csv_path, parquet]


def test_replay_files_with_progress(pipeline: Pipeline, tmp_path: Path) -> None:
    cookies = [uid("ck") for _ in range(9)]
    files = write_files(tmp_path, cookies)
    done = scv(pipeline.settings, "replay", "--topic", "raw.web.v1", *map(str, files))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"replayed 9 records into {pipeline.topics.raw('web')}"
    # stderr is not a terminal here: no redraws, one summary with the rate
    size = re.escape(human_bytes(sum(f.stat().st_size for f in files)))
    assert re.fullmatch(
        rf"replay -> \S+ \({size}\): 9 records in \d+\.\ds \(\d[\d,]* rec/s\)\n", done.stderr
    ), done.stderr
    for cookie in cookies:
        pipeline.wait_for(lambda c=cookie: pipeline.profile_with("anonymous_id", c))


def test_drop_folder_replays_each_file_once(pipeline: Pipeline, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    cookies = [uid("ck") for _ in range(6)]
    staged = write_files(tmp_path / "staging", cookies)
    inbox.mkdir()
    for path in staged:  # the rename convention: written elsewhere, renamed into place
        path.rename(inbox / path.name)
    (inbox / "d.parquet").write_bytes(b"PAR1 not really parquet")
    (inbox / "e.jsonl.tmp").write_bytes(orjson.dumps(web("page_view", uid("ck"))) + b"\n")
    raw = pipeline.topics.raw("web")
    before = len(read_topic(pipeline.settings, raw))

    args = ["replay", "--topic", "raw.web.v1", "--watch", str(inbox), "--settle", "0"]
    first = scv(pipeline.settings, *args, "--once", "--quiet")
    assert first.returncode == 1, first.stderr  # one file failed
    lines = first.stdout.splitlines()
    assert lines[0].startswith(f"watching {inbox} -> {raw}")
    assert sorted(line.split()[1].rstrip(":") for line in lines[1:]) == [
        "a.jsonl",
        "b.csv",
        "c.parquet",
        "d.parquet",
    ]
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["a.jsonl", "b.csv", "c.parquet"]
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["d.parquet", "d.parquet.error"]
    assert [p.name for p in inbox.iterdir() if p.is_file() and not p.name.startswith(".")] == [
        "e.jsonl.tmp"  # still being written: left alone
    ]
    for cookie in cookies:
        pipeline.wait_for(lambda c=cookie: pipeline.profile_with("anonymous_id", c))
    assert len(read_topic(pipeline.settings, raw)) == before + 6

    # A restart: nothing finished is sent again.
    second = scv(pipeline.settings, *args, "--once", "--quiet")
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[1:] == []
    assert len(read_topic(pipeline.settings, raw)) == before + 6


# ------------------------------------------------------------------------------ export
def test_export_writes_the_live_profiles(pipeline: Pipeline, tmp_path: Path) -> None:
    cookie, other, address = uid("ck"), uid("ck"), f"{uid('x')}@acme-corp.co.uk"
    pipeline.send("web", web("page_view", cookie))
    pipeline.send("web", web("signup", other, email=address, first_name="Ann"))
    pipeline.wait_for(lambda: pipeline.profile_with("anonymous_id", cookie))
    pipeline.wait_for(lambda: pipeline.profile_with("email", address))
    pipeline.send("web", web("login", cookie, email=address))  # one of the two is merged away
    pipeline.wait_for(
        lambda: (
            (p := pipeline.profile_with("email", address))
            and cookie in p["identifiers"].get("anonymous_id", [])
            and p
        )
    )
    pipeline.drain()
    live = pipeline.profiles()

    out = tmp_path / "exports" / "profiles.parquet"
    done = scv(pipeline.settings, "export", "--parquet", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"exported {len(live)} profiles to {out}"
    assert not list(out.parent.glob(".*.tmp"))  # written under a temporary name, renamed

    rows = {r["profile_id"]: r for r in pq.read_table(out).to_pylist()}
    assert set(rows) == set(live)  # tombstoned (merged-away) profiles are not exported
    merged = pipeline.profile_with("email", address)
    assert merged is not None and merged["merged_from"]
    assert merged["merged_from"][0] not in rows
    row = rows[merged["profile_id"]]
    assert {(i["type"], i["value"]) for i in row["identifiers"]} == {
        (kind, value) for kind, values in merged["identifiers"].items() for value in values
    }
    assert orjson.loads(row["traits"]) == merged["traits"]
    assert row["event_count"] == merged["event_count"]
    assert row["updated_ts"].timestamp() == pytest.approx(merged["updated_ts"], abs=1e-6)


def test_export_of_an_empty_or_missing_topic(settings: Settings, tmp_path: Path) -> None:
    from scv.connectors.export import SCHEMA, export_parquet

    create_topics(settings)
    out = tmp_path / "empty.parquet"
    assert export_parquet(settings, out, timeout=30) == 0  # every partition reports its end
    table = pq.read_table(out)
    assert table.num_rows == 0 and table.schema.equals(SCHEMA)
    with pytest.raises(RuntimeError, match="not found"):
        export_parquet(settings.model_copy(update={"topic_prefix": "nope-"}), out, timeout=10)
