"""The ``scv`` command line: broker, topics, worker, demo, bench, model, run, replay, export,
resolve, explain, command, config."""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from scv.connectors.febrl import DATASETS
from scv.drain import DrainTimeout
from scv.kafka import KafkaRefused
from scv.settings import Settings, get_settings


def cmd_broker(args: argparse.Namespace) -> int:
    from scv.brokers import ApacheKafka, Broker, EmbeddedBroker, KafkaSetupError
    from scv.brokers.fetch import kafka_libs

    settings = get_settings()
    kafka = args.kafka or settings.broker == "kafka"
    try:
        if args.fetch_only:
            if kafka:
                libs = kafka_libs(settings.kafka_version, settings.kafka_home)
                print(f"Apache Kafka jars in {libs}")
            return 0
        broker: Broker
        if kafka:
            work = Path(args.data) if args.data else None
            broker = ApacheKafka(
                args.nodes, work_dir=work, version=settings.kafka_version, home=settings.kafka_home
            )
        else:
            port = settings.broker_port if args.port is None else args.port
            broker = EmbeddedBroker(args.host or settings.broker_host, port)
        with broker:
            print(f"{broker.kind} ready: bootstrap {broker.bootstrap}", flush=True)
            if args.create_topics:
                from scv.topics import create_topics

                update: dict[str, Any] = {"bootstrap_servers": broker.bootstrap}
                if kafka and args.nodes == 3:
                    update["replication_factor"] = 3
                created = create_topics(settings.model_copy(update=update))
                print(f"topics: {len(created)} ready", flush=True)
            _wait_for_signal()
    except KafkaSetupError as exc:
        print(f"scv broker: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from scv.topics import create_topics, describe

    settings = get_settings()
    if args.action == "strimzi":
        from scv.strimzi import render

        sys.stdout.write(render(settings, args.cluster))
        return 0
    if args.action == "create":
        for name, status in sorted(create_topics(settings).items()):
            print(f"{status:8} {name}")
    else:
        for name, partitions in sorted(describe(settings).items()):
            print(f"{partitions:3}  {name}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from scv.streams.worker import run_worker

    run_worker(get_settings())
    return 0


def cmd_activation(args: argparse.Namespace) -> int:
    """The activation layer's Faust worker (``faust -A scv.activation.app worker`` does the
    same); a bad programme file stops it with one line naming the file and line."""
    settings = get_settings()
    try:
        from scv.activation.programmes import load_programmes

        load_programmes(settings.programmes_path)
    except ValueError as exc:
        print(f"scv activation: {exc}", file=sys.stderr)
        return 2
    from scv.activation.app import app

    # Faust reads its command line from sys.argv; its own web server stays off (scv's
    # probes and metrics are served by the app itself, no page that dumps tables).
    sys.argv = ["scv activation", "worker", "--loglevel", settings.log_level, "--without-web"]
    app.main()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from scv.demo import run_demo, run_demo_offline

    refused = None
    if args.profile != "demo" and args.households:
        # The realistic profile forms its own households (about 40 % of people).
        refused = f"--households is for --profile demo; {args.profile} has its own households"
    elif args.offline and (args.bootstrap or args.workers != 1):
        refused = "--offline runs the stages in this process: no --bootstrap, no --workers"
    if refused:
        print(f"scv demo: {refused}", file=sys.stderr)
        return 2

    run = (
        functools.partial(run_demo_offline)
        if args.offline
        else functools.partial(
            run_demo, workers=args.workers, bootstrap=args.bootstrap, cart_window_s=args.cart_window
        )
    )
    summary = run(
        args.events,
        args.seed,
        matching=args.matching,
        households=args.households,
        profile=args.profile,
    )
    _report(summary, args.json)
    if args.check:
        failed = demo_problems(summary)
        if failed:
            print(f"scv demo: check failed: {'; '.join(failed)}", file=sys.stderr)
            return 1
    return 0


def demo_problems(summary: dict[str, Any]) -> list[str]:
    """What ``scv demo --check`` refuses: a person merged with another, an action sent
    twice, a DLQ that is not exactly the malformed input, or profiles that are not there.

    An offline run (``"mode": "offline"``) sends no actions to a broker, so there is no
    delivery whose exactly-once could fail: the duplicate-action check is the broker
    demo's alone. The others apply as they are."""
    problems = []
    if summary["pairwise_precision"] < 1.0:
        problems.append(f"pairwise_precision {summary['pairwise_precision']} < 1.0")
    if summary.get("mode") != "offline" and summary["duplicate_actions"]:
        problems.append(f"{summary['duplicate_actions']} duplicate actions")
    if summary["dlq"] != summary["malformed_in"]:
        problems.append(f"dlq {summary['dlq']} != malformed_in {summary['malformed_in']}")
    if summary["events_resolved"] < 0.9 * summary["events_in"] or not summary["profiles"]:
        problems.append(f"only {summary['events_resolved']} events resolved")
    return problems


def cmd_bench_guarantees(args: argparse.Namespace) -> int:
    from scv.bench.guarantees import run_guarantees

    report = run_guarantees(
        args.events, rounds=args.rounds, intervals=tuple(args.intervals), seed=args.seed
    )
    return _report(report, args.json)


def cmd_bench_backfill(args: argparse.Namespace) -> int:
    from scv.bench.backfill import run_backfill

    report = run_backfill(args.events, args.seed, args.households, args.runs, args.stall)
    _report(report, args.json)
    return 0 if all(r["drained"] for r in report["runs"]) else 1


def _report(report: dict[str, Any], json_path: str | None) -> int:
    """Print ``report`` as indented JSON and also write it to ``json_path`` if given."""
    text = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(text + "\n")
    print(text)
    return 0


def cmd_bench_accuracy(args: argparse.Namespace) -> int:
    from scv.bench.accuracy import run_accuracy

    report = run_accuracy(
        args.dataset,
        with_ssn=not args.no_ssn,
        seed=args.seed,
        limit=args.limit,
        model_path=Path(args.model) if args.model else None,
        workers=args.workers,
        bootstrap=args.bootstrap,
    )
    return _report(report, args.json)


def cmd_bench_throughput(args: argparse.Namespace) -> int:
    from scv.bench.throughput import throughput_report

    report = throughput_report(
        args.events,
        args.workers,
        args.seed,
        args.latency_events,
        rounds=args.rounds,
        split=args.split_stages,
        broker=args.broker,
        quix=not args.no_quix,
    )
    return _report(report, args.json)


def cmd_bench_latency(args: argparse.Namespace) -> int:
    from scv.bench.throughput import run_latency

    return _report(run_latency(args.rate, args.events, seed=args.seed), args.json)


def cmd_bench_activation(args: argparse.Namespace) -> int:
    from scv.bench.activation import run_activation_bench

    return _report(run_activation_bench(args.events, args.seed), args.json)


def cmd_bench_memory(args: argparse.Namespace) -> int:
    from scv.bench.memory import run_memory

    return _report(run_memory(args.small, args.large), args.json)


def cmd_bench_api(args: argparse.Namespace) -> int:
    from scv.bench.api import run_api_bench

    report = run_api_bench(
        args.events,
        args.lookups,
        workers=args.workers,
        seed=args.seed,
        under_load=args.under_load,
    )
    return _report(report, args.json)


def cmd_bench_chaos(args: argparse.Namespace) -> int:
    """Exit 1 unless every failure count of the report is 0."""
    from scv.bench.chaos import run_chaos

    report = run_chaos(
        args.events,
        seed=args.seed,
        workers=args.workers,
        kills=args.kills,
        kill_seed=args.kill_seed,
        rate=args.rate,
        bootstrap=args.bootstrap,
        brokers=args.brokers,
        broker_kills=args.broker_kills,
        rolling_restart=args.rolling_restart,
        cluster_restart=args.cluster_restart,
    )
    _report(report, args.json)
    return 0 if report["ok"] else 1


def cmd_model_train(args: argparse.Namespace) -> int:
    """Fit a Fellegi-Sunter model without labels (EM) and save it."""
    if args.dataset == "demo":
        from scv.matchdemo import demo_events, train_model

        model = train_model(demo_events(args.events, args.seed)[0])
    else:
        from scv.matchtrain import train

        model = train(args.dataset, with_ssn=not args.no_ssn)
    model.save(args.out)
    summary = {k: model.to_dict()[k] for k in ("prior", "upper", "lower", "meta")}
    return _report({"model": args.out, **summary}, None)


def cmd_run(args: argparse.Namespace) -> int:
    from scv.live import run_live

    return run_live(rate=args.rate, workers=args.workers, duration=args.duration, seed=args.seed)


def cmd_replay(args: argparse.Namespace) -> int:
    from confluent_kafka import Producer

    from scv.connectors.backfill import replay_files, watch_folder
    from scv.kafka import source_producer_config

    if bool(args.files) == bool(args.watch):
        print("scv replay: give FILE... or --watch DIR (not both)", file=sys.stderr)
        return 2
    settings = get_settings()
    producer = Producer(source_producer_config(settings))
    topic = settings.topic(args.topic)
    if args.watch:
        return watch_folder(Path(args.watch), topic, producer, args)
    return replay_files([Path(p) for p in args.files], topic, producer, args)


def cmd_export(args: argparse.Namespace) -> int:
    from scv.connectors.export import export_parquet

    settings = get_settings()
    try:
        count = export_parquet(settings, Path(args.parquet), timeout=args.timeout)
    except (RuntimeError, TimeoutError) as exc:
        print(f"scv export: {exc}", file=sys.stderr)
        return 2
    print(f"exported {count} profiles to {args.parquet}")
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    from scv.resolvediff import rule_diff

    if not args.diff:
        print("scv resolve: only --diff is supported: add --diff", file=sys.stderr)
        return 2
    if args.limit < 0:
        print("scv resolve: --limit must be >= 0", file=sys.stderr)
        return 2
    settings = get_settings()
    topics = args.from_topics
    if args.from_file is None and not topics:
        from scv.topics import IDENTITY_EVENTS

        topics = [IDENTITY_EVENTS]
    try:
        return rule_diff(
            settings,
            candidate_rules=Path(args.rules),
            baseline_rules=Path(args.baseline_rules) if args.baseline_rules else None,
            topics=topics,
            file=Path(args.from_file) if args.from_file else None,
            limit=args.limit,
            json_path=Path(args.json) if args.json else None,
            store=args.store,
            state_dir=Path(args.state_dir) if args.state_dir else None,
            out=sys.stdout,
        )
    except (OSError, ValueError, TimeoutError) as exc:  # bad rules file, unknown topic, …
        print(f"scv resolve: {exc}", file=sys.stderr)
        return 2


def config_markdown() -> str:
    """The configuration reference (``docs/configuration.md``) built from :class:`Settings`.

    Uses the declared defaults, never the environment, so the output is the same everywhere.
    """

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `scv config --markdown > docs/configuration.md`; do not edit. -->",
        "",
        "Every process (`scv worker`, `scv topics`, `scv demo`, `scv run`, `scv replay`,",
        "`scv export`) reads these environment variables; `scv config` prints the effective",
        "values with secrets masked. On Kubernetes they come from the ConfigMap and Secret in",
        "`deploy/k8s/`; what to watch and how to operate: [operations.md](operations.md).",
        "",
        "| variable | default | description |",
        "|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if default is None:
            shown = "*(unset)*"
        elif default == "":
            shown = '`""`'
        else:
            shown = f"`{default!s}`"
        lines.append(f"| `SCV_{name.upper()}` | {shown} | {cell(field.description or '')} |")
    return "\n".join(lines) + "\n" + SECURITY_NOTES


#: The security part of ``docs/configuration.md`` (after the generated table).
SECURITY_NOTES = """
## Securing Kafka and the HTTP port

**Kafka.** Every client scv makes — the worker's consumer and producer, the restore
consumer, admin clients (`scv topics`), `scv demo`/`replay`/`command` producers — gets its
connection settings from one place (`scv/kafka.py`), so one set of variables secures all:

* `SCV_SECURITY_PROTOCOL=PLAINTEXT` (default): nothing else.
* `SSL`: `SCV_SSL_CAFILE` (unless the system CAs sign the brokers' certificates); for mutual
  TLS also `SCV_SSL_CERTFILE` and `SCV_SSL_KEYFILE` (and `SCV_SSL_KEY_PASSWORD` for an
  encrypted key). They become librdkafka's `ssl.ca.location`, `ssl.certificate.location`,
  `ssl.key.location`, `ssl.key.password` and `ssl.endpoint.identification.algorithm`.
* `SASL_PLAINTEXT`: `SCV_SASL_MECHANISM` (`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`),
  `SCV_SASL_USERNAME` and `SCV_SASL_PASSWORD` (`sasl.mechanism`, `sasl.username`,
  `sasl.password`).
* `SASL_SSL`: both of the above.

The broker's certificate must name the host scv connects to (`SCV_SSL_CHECK_HOSTNAME`,
on by default). Incomplete settings (an unknown protocol or mechanism, SASL without user or
password, a client certificate without its key) stop the process at start-up instead of
retrying a handshake forever. TLS settings are not sent when the protocol is not TLS.
Passwords and the API token are secrets: `scv config` prints them as `********`; pass them as
environment variables from your secret store (Kubernetes `secretKeyRef`, compose
`env_file`), never in an image.

**HTTP.** The worker's port serves `/livez`, `/readyz`, `/metrics` and
`/profiles/{id}/explain`; nothing dumps tables. With `SCV_API_TOKEN` set, every path but the
two probes requires `Authorization: Bearer <token>` (the explanation shows personal data,
the metrics show internals such as DLQ reasons); Prometheus sends it with
`authorization: {credentials_file: ...}` in its scrape config, and `scv explain` sends it
from `SCV_API_TOKEN`. Without a token every page is open: keep the port private (the default
host is `127.0.0.1`; the worker logs a warning when it listens elsewhere without a token).

**Logs.** At `info` the worker logs no email, phone or name: DLQ lines give topic, partition,
offset and a reason that names fields, never values.

## ACLs

On a cluster with an authorizer (and `allow.everyone.if.no.acl.found=false`), the worker's
principal (`User:<SCV_SASL_USERNAME>` with SASL) needs exactly this:

| resource | pattern | operations |
|---|---|---|
| topics `SCV_TOPIC_PREFIX` | prefixed | `Read`, `Write` |
| group `SCV_APP_ID` | literal (or prefixed) | `Read` |

```sh
kafka-acls.sh --bootstrap-server $BROKERS --command-config admin.properties --add \\
  --allow-principal User:scv --operation Read --operation Write \\
  --topic "$SCV_TOPIC_PREFIX" --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server $BROKERS --command-config admin.properties --add \\
  --allow-principal User:scv --operation Read --group "$SCV_APP_ID"
```

Every topic scv uses starts with `SCV_TOPIC_PREFIX`: the pipeline's, the DLQs, the table
changelogs (`<prefix><SCV_APP_ID>-<table>-changelog`) and the workers directory
(`<prefix><SCV_APP_ID>-workers`). Without a prefix, grant the same on the prefixes `raw.`,
`identity.`, `profiles.`, `actions.v1`, `audit.v1` and `<SCV_APP_ID>-`. Nothing else is
needed: no `Create` (topics are made up front, see below), no `IdempotentWrite` or
transactional ids (scv's producers are neither), no cluster operation. The restore,
directory and export consumers (groups `<SCV_APP_ID>-restore`, `-directory`, `-export`)
assign partitions without joining their group or committing, so their groups need no ACL.

Per topic, a worker reads its inputs (`raw.*.v1`, `identity.events.v1`,
`identity.commands.v1`, `profiles.events.v1`), `actions.v1` (a restore reads back what it
sent), the changelogs and the workers directory, and writes its outputs, the DLQs, the
changelogs and the directory; `Read` and `Write` on the prefix is the simple grant, and
`scv/streams/access.py` (`worker_needs`) lists the narrower one per stage. Other
principals get their own ACLs: sources `Write` on `raw.*.v1`, `scv command` `Write` on
`identity.commands.v1`, consumers of the outputs `Read` on them and on their own group.
`scv topics create` needs `Create` on the prefix, and `DescribeConfigs` to check the
compacted topics when they exist; run it as an administrator.

**At start-up** `scv worker` asks the broker, as its own principal, whether it may do all
of this (Kafka reports a client's authorized operations per topic and group). A refused
login or a missing ACL stops it within seconds, with exit code 2 and one line (wrapped
here), instead of a worker that retries forever and never gets ready:

```text
scv worker: Kafka at kafka:9093 refused the SASL login of SCRAM-SHA-512 user 'scv'
  (authentication failed): …; check SCV_SASL_MECHANISM, SCV_SASL_USERNAME and SCV_SASL_PASSWORD
scv worker: user 'scv' is not authorized by Kafka at kafka:9093 to READ group scv
  (docs/configuration.md#acls lists what a worker needs)
scv worker: user 'scv' is not authorized by Kafka at kafka:9093 to READ topic raw.web.v1
  (docs/configuration.md#acls lists what a worker needs)
```

A failed TLS handshake (a wrong `SCV_SSL_CAFILE`, say) is reported the same way. A broker
that does not report authorized operations, or does not answer within 20 s, is not judged:
the worker starts as before. `make test-kafka` runs a worker against an Apache Kafka with a
SASL_SSL listener (SCRAM-SHA-512, TLS) and exactly these ACLs, and three workers it refuses: a
wrong password, no group ACL, no `Read` on one input
(`tests/integration/test_kafka_security.py`).
"""


def cmd_explain(args: argparse.Namespace) -> int:
    from scv.steward import fetch_explanation

    try:
        print(fetch_explanation(get_settings(), args.profile, text=args.text, url=args.url))
    except RuntimeError as exc:
        print(f"scv explain: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_command(args: argparse.Namespace) -> int:
    from scv.steward import build_command, send_command

    try:
        consent = {purpose: True for purpose in args.grant or []}
        consent |= {purpose: False for purpose in args.deny or []}
        command = build_command(
            args.type.replace("-", "_"),
            args.identifier or [],
            profile_id=args.profile,
            reason=args.reason,
            requested_by=args.requested_by,
            consent=consent,
            source=args.source,
            withdraw=args.withdraw,
        )
        send_command(get_settings(), command)
    except (ValueError, RuntimeError) as exc:
        print(f"scv command: {exc}", file=sys.stderr)
        return 2
    print(f"sent {command['type']} {command['command_id']}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    if args.markdown:
        sys.stdout.write(config_markdown())
        return 0
    for name, field in Settings.model_fields.items():
        value = getattr(get_settings(), name)
        if hasattr(value, "get_secret_value"):
            value = "********"
        print(f"SCV_{name.upper():24} = {value!s:30}  # {field.description or ''}")
    return 0


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "broker",
        help="run a local broker until interrupted: tansu, or Apache Kafka (--kafka or "
        "SCV_BROKER=kafka)",
    )
    p.add_argument("--host", default=None, help="tansu: listen host")
    p.add_argument("--port", type=int, default=None, help="tansu: port (0 picks a free one)")
    p.add_argument("--kafka", action="store_true", help="Apache Kafka in KRaft mode")
    p.add_argument("--nodes", type=int, default=1, choices=[1, 3], help="Apache Kafka nodes")
    p.add_argument("--data", default=None, help="Apache Kafka: keep the data in this folder")
    p.add_argument(
        "--fetch-only", action="store_true", help="Apache Kafka: fetch the jars and exit"
    )
    p.add_argument("--create-topics", action="store_true", help="also create scv's topics")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser(
        "topics", help="create or list scv's topics, or print them as Strimzi KafkaTopics"
    )
    p.add_argument("action", choices=["create", "list", "strimzi"])
    p.add_argument("--cluster", default="my-cluster", help="strimzi: the Kafka cluster's name")
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser(
        "worker", help="run the stream worker (all stages) against SCV_BOOTSTRAP_SERVERS"
    )
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "activation",
        help="run the activation layer (lifecycle programmes, a Faust worker) against "
        "SCV_BOOTSTRAP_SERVERS",
    )
    p.set_defaults(func=cmd_activation)

    p = sub.add_parser(
        "demo", help="run broker, worker(s) and demo traffic to completion; print a summary"
    )
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the summary to this file")
    p.add_argument("--bootstrap", default=None, help="use this broker instead of an embedded one")
    p.add_argument("--cart-window", type=float, default=8.0, help="abandoned-cart window, seconds")
    p.add_argument(
        "--matching", action="store_true", help="turn on probabilistic matching (SCV_MATCHING)"
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 unless precision is 1.0, no action is sent twice (not with --offline: "
        "it sends none) and the DLQs hold exactly the malformed input (for the default "
        "traffic, without --households)",
    )
    p.add_argument(
        "--offline",
        action="store_true",
        help="no broker: the same traffic through the same stages in this process, scored "
        "the same way in seconds (for tuning identity rules; the broker run is the proof; "
        "--workers, --bootstrap and --cart-window do not apply)",
    )
    p.add_argument(
        "--households",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of people living in households of 2-4 that share a family email, a "
        "landline and a tablet (default 0; --profile demo only)",
    )
    p.add_argument(
        "--profile",
        choices=["demo", "realistic"],
        default="demo",
        help="traffic: demo (a UK shop shaped for exact checks) or realistic (a German "
        "retailer's customers: households, agents' placeholders, typos; runs the workers "
        "with SCV_DEFAULT_REGION=DE)",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "bench", help="benchmarks that print JSON (accuracy, throughput, latency, memory, api)"
    )
    bench = p.add_subparsers(dest="bench", required=True)
    p = bench.add_parser(
        "accuracy",
        help="stream shuffled FEBRL records through the pipeline and score the profiles",
    )
    p.add_argument("--dataset", default="febrl3", choices=DATASETS)
    p.add_argument("--no-ssn", action="store_true", help="leave out soc_sec_id")
    p.add_argument("--seed", type=int, default=1, help="shuffle seed")
    p.add_argument("--limit", type=int, default=None, help="stream only this many records")
    p.add_argument("--model", default=None, help="stream with this model (default: fit one)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--bootstrap", default=None, help="use this broker instead of an embedded one")
    p.add_argument("--json", default=None, help="also write the report to this file")
    p.set_defaults(func=cmd_bench_accuracy)

    p = bench.add_parser(
        "throughput",
        help="demo events as fast as possible through 1 and 2 workers, a naive Faust agent and "
        "a naive Quix Streams app",
    )
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to run")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--latency-events",
        type=int,
        default=0,
        help="also pace this many events at half the 1-worker rate for churn_save latency "
        "(and measure each stage without a broker)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="repeat everything this many times, each on a fresh broker; report medians",
    )
    p.add_argument(
        "--split-stages",
        action="store_true",
        help="also run each worker count above one with the stages split between the workers "
        "(SCV_STAGES: normalize,resolve and profiles)",
    )
    p.add_argument(
        "--broker",
        choices=["tansu", "kafka"],
        default=None,
        help="the broker each round starts fresh: tansu (embedded) or kafka (one Apache Kafka "
        "KRaft node); default SCV_BROKER (tansu)",
    )
    p.add_argument(
        "--no-quix",
        action="store_true",
        help="leave out the naive Quix Streams peer (it runs in a virtualenv of its own, "
        "made once under ~/.cache/scv with pip)",
    )
    p.add_argument("--json", default=None, help="also write the report to this file")
    p.set_defaults(func=cmd_bench_throughput)

    p = bench.add_parser("latency", help="churn_save latency with demo traffic at a fixed rate")
    p.add_argument("--rate", type=float, required=True, help="events per second")
    p.add_argument("--events", type=int, default=30_000)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--json", default=None, help="also write the report to this file")
    p.set_defaults(func=cmd_bench_latency)

    p = bench.add_parser(
        "activation",
        help="the demo traffic fast and in real time through core and activation: actions "
        "per programme and audiences compared",
    )
    p.add_argument("--events", type=int, default=5_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", default=None, help="also write the report to this file")
    p.set_defaults(func=cmd_bench_activation)

    p = bench.add_parser("memory", help="worker RSS as the graph grows (100k -> 1M identifiers)")
    p.add_argument("--small", type=int, default=100_000, help="identifiers at the first reading")
    p.add_argument("--large", type=int, default=1_000_000, help="identifiers at the second")
    p.add_argument("--json", default=None, help="also write the report to this file")
    p.set_defaults(func=cmd_bench_memory)

    p = bench.add_parser("api", help="profile API lookup latency after the demo workload")
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--lookups", type=int, default=2_000)
    p.add_argument(
        "--under-load",
        action="store_true",
        help="also time lookups while the workers take in as many events again",
    )
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", default=None, help="also write the report to this file")
    p.set_defaults(func=cmd_bench_api)
    p = bench.add_parser(
        "chaos",
        help="SIGKILL workers while the demo runs; compare with a run without faults "
        "(exit 1 unless lost updates, duplicate actions and differing profiles are all 0)",
    )
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=7, help="demo workload seed")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--kills", type=int, default=6)
    p.add_argument("--kill-seed", type=int, default=1, help="seed of the kill schedule")
    p.add_argument(
        "--rate",
        type=float,
        default=None,
        help="events/s in the faulty run (default: spread the events over about 7 s per kill)",
    )
    p.add_argument("--bootstrap", default=None, help="use this broker instead of an embedded one")
    p.add_argument(
        "--brokers",
        type=int,
        default=1,
        choices=[1, 3],
        help="Apache Kafka nodes (3: replication factor 3, min.insync.replicas 2; needs "
        "SCV_BROKER=kafka)",
    )
    p.add_argument(
        "--broker-kills",
        type=int,
        default=0,
        help="kill -9 this many nodes during the faulty run (the first leads the resolver's "
        "partition) and start them again with their data",
    )
    p.add_argument("--rolling-restart", action="store_true", help="also restart every node in turn")
    p.add_argument(
        "--cluster-restart", action="store_true", help="also stop every node, then start them"
    )
    p.add_argument("--json", default=None, help="also write the report to this file")
    p.set_defaults(func=cmd_bench_chaos)

    p = bench.add_parser(
        "guarantees",
        help="at least once against exactly once (each commit interval) on Apache Kafka "
        "(SCV_BROKER=kafka): rates, worker CPU, transactions",
    )
    p.add_argument("--events", type=int, default=30_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--intervals", type=float, nargs="+", default=[0.1, 0.5], help="commit intervals (s)"
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", default=None, help="also write the report to this file")
    p.set_defaults(func=cmd_bench_guarantees)

    p = bench.add_parser(
        "backfill",
        help="household-rich demo traffic replayed from four files at once (scv replay), "
        "several times; exit 1 unless every run drains",
    )
    p.add_argument("--events", type=int, default=35_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--households", type=float, default=0.5, metavar="SHARE")
    p.add_argument("--runs", type=int, default=5, help="runs, each on a fresh broker and worker")
    p.add_argument(
        "--stall", type=float, default=60.0, help="give a run up after this long without progress"
    )
    p.add_argument("--json", default=None, help="also write the report to this file")
    p.set_defaults(func=cmd_bench_backfill)

    p = sub.add_parser("model", help="probabilistic matching models")
    model = p.add_subparsers(dest="model", required=True)
    p = model.add_parser("train", help="fit a Fellegi-Sunter model by EM (no labels) and save it")
    p.add_argument("--dataset", required=True, choices=[*DATASETS, "demo"])
    p.add_argument("--no-ssn", action="store_true", help="FEBRL: leave out soc_sec_id")
    p.add_argument("--events", type=int, default=20000, help="demo: events to generate")
    p.add_argument("--seed", type=int, default=7, help="demo: generator seed")
    p.add_argument("--out", required=True, help="model JSON file to write")
    p.set_defaults(func=cmd_model_train)

    p = sub.add_parser(
        "run", help="run the pipeline continuously with demo traffic and a live summary"
    )
    p.add_argument("--rate", type=float, default=100.0, help="demo events per second")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "replay",
        help="produce JSONL, CSV or Parquet records into a raw topic (files, or a drop folder)",
        description="Produce the records of FILEs, or of every complete file that appears in "
        "a drop folder (--watch), into a raw topic; progress and rate go to stderr. Drop "
        "folder rules (temp names, settle time, done/ and failed/): docs/operations.md.",
    )
    p.add_argument("--topic", required=True, help="e.g. raw.transactions.v1 (prefix is added)")
    p.add_argument("--key-field", default=None)
    p.add_argument("--format", default=None, choices=["jsonl", "csv", "parquet"])
    p.add_argument("--watch", metavar="DIR", default=None, help="replay files dropped here")
    p.add_argument(
        "--settle",
        type=float,
        default=5.0,
        metavar="S",
        help="--watch: take a file once unmodified for S seconds",
    )
    p.add_argument(
        "--interval", type=float, default=2.0, metavar="S", help="--watch: scan every S seconds"
    )
    p.add_argument("--once", action="store_true", help="--watch: take what is ready, then exit")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("files", nargs="*")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("export", help="write the current profiles (profiles.v1) to a file")
    p.add_argument("--parquet", required=True, metavar="PATH", help="Parquet file to write")
    p.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to read profiles.v1 to its end"
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "resolve",
        help="re-resolve recorded identity events under other rules and print the profile diff",
        description="Replay identity.events.v1 (or a JSONL file of normalised events) in "
        "event-time order under the current rules and under --rules, and report which "
        "profiles would merge or split, and why. Reads without committing offsets; the "
        "worker's consumer group and tables are never touched.",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--from-topics",
        nargs="+",
        metavar="TOPIC",
        default=None,
        help="topics of normalised events (with SCV_TOPIC_PREFIX if that exists, else as "
        "given; "
        "default identity.events.v1)",
    )
    source.add_argument(
        "--from-file", metavar="FILE", default=None, help="JSONL file, one NormalizedEvent a line"
    )
    p.add_argument(
        "--rules",
        required=True,
        metavar="NEW.yaml",
        help="candidate rules YAML (a complete rule file)",
    )
    p.add_argument("--diff", action="store_true", help="print the profile diff (required)")
    p.add_argument(
        "--baseline-rules",
        metavar="PATH",
        default=None,
        help="baseline rules YAML (default SCV_RULES_PATH)",
    )
    p.add_argument(
        "--json", metavar="PATH", default=None, help="print JSON instead and also write it here"
    )
    p.add_argument(
        "--limit", metavar="N", type=int, default=20, help="merges and splits shown per section"
    )
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        default=None,
        help="where the scratch graph stores go (default: temp)",
    )
    p.add_argument(
        "--store", choices=["rocksdb", "memory"], default="rocksdb", help="scratch graph store"
    )
    p.set_defaults(func=cmd_resolve)

    p = sub.add_parser(
        "explain", help="ask a worker why each identifier belongs to a profile (links, events)"
    )
    p.add_argument("--profile", required=True, help="profile id (p_…)")
    p.add_argument("--text", action="store_true", help="readable lines instead of JSON")
    p.add_argument("--url", default=None, help="worker base URL (default SCV_WEB_HOST:PORT)")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser(
        "command",
        help="send an identity command (unmerge, ban-link, link, consent, object, erase) to "
        "identity.commands.v1",
    )
    p.add_argument("type", choices=["unmerge", "ban-link", "link", "consent", "object", "erase"])
    p.add_argument("--profile", default=None, help="the profile to act on")
    p.add_argument(
        "--identifier",
        action="append",
        metavar="TYPE:VALUE",
        help="identifier to take out (unmerge), one of the pair (ban-link), or the person "
        "(consent, object, erase: the first is the subject); repeatable",
    )
    p.add_argument("--grant", action="append", metavar="PURPOSE", help="consent: granted")
    p.add_argument("--deny", action="append", metavar="PURPOSE", help="consent: denied")
    p.add_argument("--source", default=None, help="consent/object: where it was captured")
    p.add_argument("--withdraw", action="store_true", help="object: withdraw an earlier objection")
    p.add_argument("--reason", default=None, help="why, for the audit trail")
    p.add_argument("--requested-by", default=None)
    p.set_defaults(func=cmd_command)

    p = sub.add_parser("config", help="print the effective settings (from SCV_* variables)")
    p.add_argument(
        "--markdown",
        action="store_true",
        help="print the reference table of every variable with its default (docs/configuration.md)",
    )
    p.set_defaults(func=cmd_config)
    return parser


def settings_error(exc: ValidationError) -> str:
    """One line naming each bad ``SCV_*`` variable and what is wrong with it."""
    parts = []
    for err in exc.errors():
        msg = str(err["msg"]).removeprefix("Value error, ")
        loc = err.get("loc") or ()
        if not loc:  # a rule between settings: the message names them
            parts.append(msg)
            continue
        field = Settings.model_fields.get(str(loc[0]))
        secret = field is not None and "SecretStr" in str(field.annotation)
        shown = "********" if secret else repr(err["input"])
        parts.append(f"SCV_{str(loc[0]).upper()}={shown}: {msg}")
    return "bad setting: " + "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command not in ("worker", "activation"):
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    try:
        return int(args.func(args) or 0)
    except DrainTimeout as exc:
        # `scv demo` and the benches wait for the pipeline to drain; when it stops draining
        # the message names the topics still behind (docs/operations.md, "When a drain
        # gives up").
        command = " ".join(filter(None, [args.command, getattr(args, "bench", None)]))
        print(f"scv {command}: {exc}", file=sys.stderr)
        return 1
    except KafkaRefused as exc:  # wrong credentials or a missing ACL: retrying cannot help
        print(f"scv {args.command}: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a bad SCV_* value: one line at start-up, no traceback
        if exc.title != Settings.__name__:
            raise
        print(f"scv {args.command}: {settings_error(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
