"""The ``scv`` command line: broker, topics, worker, demo, run, replay, config."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import orjson

from scv.settings import Settings, get_settings


def cmd_broker(args: argparse.Namespace) -> int:
    from scv.broker import EmbeddedBroker

    settings = get_settings()
    port = settings.broker_port if args.port is None else args.port
    with EmbeddedBroker(args.host or settings.broker_host, port) as broker:
        print(f"tansu ready: bootstrap {broker.bootstrap}", flush=True)
        if args.create_topics:
            from scv.topics import create_topics

            created = create_topics(
                settings.model_copy(update={"bootstrap_servers": broker.bootstrap})
            )
            print(f"topics: {len(created)} ready", flush=True)
        _wait_for_signal()
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from scv.topics import create_topics, describe

    settings = get_settings()
    if args.action == "create":
        for name, status in sorted(create_topics(settings).items()):
            print(f"{status:8} {name}")
    else:
        for name, partitions in sorted(describe(settings).items()):
            print(f"{partitions:3}  {name}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from faust.worker import Worker

    from scv.streams.app import app, load_stages, settings

    load_stages()
    Worker(app, loglevel=settings.log_level, quiet=True).execute_from_commandline()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from scv.demo import run_demo

    summary = run_demo(
        args.events,
        args.seed,
        workers=args.workers,
        bootstrap=args.bootstrap,
        cart_window_s=args.cart_window,
    )
    text = orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from scv.live import run_live

    return run_live(rate=args.rate, workers=args.workers, duration=args.duration, seed=args.seed)


def cmd_replay(args: argparse.Namespace) -> int:
    from confluent_kafka import Producer

    from scv.connectors.replay import replay
    from scv.kafka import producer_config

    settings = get_settings()
    producer = Producer(producer_config(settings))
    topic = settings.topic(args.topic)
    count = replay(
        [Path(p) for p in args.files], topic, producer, key_field=args.key_field, fmt=args.format
    )
    print(f"replayed {count} records into {topic}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
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

    p = sub.add_parser("broker", help="run the embedded tansu broker until interrupted")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None, help="0 picks a free port")
    p.add_argument("--create-topics", action="store_true", help="also create scv's topics")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("topics", help="create or list scv's topics")
    p.add_argument("action", choices=["create", "list"])
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser(
        "worker", help="run the stream worker (all stages) against SCV_BOOTSTRAP_SERVERS"
    )
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "demo", help="run broker, worker(s) and demo traffic to completion; print a summary"
    )
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the summary to this file")
    p.add_argument("--bootstrap", default=None, help="use this broker instead of an embedded one")
    p.add_argument("--cart-window", type=float, default=8.0, help="abandoned-cart window, seconds")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "run", help="run the pipeline continuously with demo traffic and a live summary"
    )
    p.add_argument("--rate", type=float, default=200.0, help="demo events per second")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("replay", help="produce JSONL, CSV or Parquet records into a raw topic")
    p.add_argument("--topic", required=True, help="e.g. raw.transactions.v1 (prefix is added)")
    p.add_argument("--key-field", default=None)
    p.add_argument("--format", default=None, choices=["jsonl", "csv", "parquet"])
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("config", help="print the effective settings (from SCV_* variables)")
    p.set_defaults(func=cmd_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "worker":
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
