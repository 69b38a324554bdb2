"""``scv run`` / ``make run``: the pipeline running continuously with a live summary.

Starts the embedded broker (unless ``SCV_BOOTSTRAP_SERVERS`` points at a reachable one and
``--external`` is given), provisions topics, starts workers and an activation worker
(``scv activation``), feeds demo traffic at a steady rate and prints what activation
services would see: profiles, merges, actions (the core's and the programmes'), DLQ.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from scv.brokers import EmbeddedBroker, free_port
from scv.connectors.demo import generate
from scv.kafka import client_config, source_producer_config
from scv.runner import ActivationProcess, WorkerProcess
from scv.settings import Settings, get_settings
from scv.topics import Topics, create_topics


class Tally:
    """Counts what reaches the output topics, read from the start without a consumer group."""

    def __init__(self, settings: Settings) -> None:
        self.topics = Topics(settings)
        self.live: set[bytes] = set()
        self.merges = 0
        self.actions: Counter[str] = Counter()
        self.dlq = 0
        self.last_action = ""
        self._consumer = Consumer(
            client_config(settings)
            | {"group.id": "scv-live", "enable.auto.commit": False, "auto.offset.reset": "earliest"}
        )
        names = [self.topics.profiles, self.topics.merges, self.topics.actions]
        names += [self.topics.dlq(n) for n in self.topics.dead_lettered]
        meta = self._consumer.list_topics(timeout=10)
        self._consumer.assign(
            [TopicPartition(t, p, 0) for t in names for p in meta.topics[t].partitions]
        )

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self._consumer.consume(5000, 0.2):
                if msg.error() is not None:
                    continue
                topic, key, value = msg.topic(), msg.key() or b"", msg.value()
                if topic == self.topics.profiles:
                    (self.live.add if value is not None else self.live.discard)(key)
                elif topic == self.topics.merges and value is not None:
                    self.merges += orjson.loads(value).get("kind") == "merge"
                elif topic == self.topics.actions and value is not None:
                    action = orjson.loads(value)
                    self.actions[action["type"]] += 1
                    self.last_action = (
                        f"{action['type']} via {action['channel']} for {action['profile_id']}"
                    )
                else:
                    self.dlq += 1

    def close(self) -> None:
        self._consumer.close()


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0


def run_live(
    *, rate: float, workers: int, duration: float | None, seed: int, cart_window_s: float = 20.0
) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    base = get_settings()
    work = Path(tempfile.mkdtemp(prefix="scv-run-"))
    with contextlib.ExitStack() as stack:
        port = base.broker_port if _port_free(base.broker_host, base.broker_port) else free_port()
        broker = stack.enter_context(
            EmbeddedBroker(base.broker_host, port, log_path=work / "broker.log")
        )
        settings = base.model_copy(
            update={
                "bootstrap_servers": broker.bootstrap,
                "cart_window_s": cart_window_s,
                "session_timeout_s": min(base.session_timeout_s, 4.0),
                "idempotent_output": False,  # the embedded tansu does not fail over
            }
        )
        create_topics(settings)
        print(f"broker   {broker.bootstrap} (embedded tansu, memory only; state in {work})")
        procs = []
        for i in range(workers):
            s = settings.model_copy(
                update={"data_dir": work / f"worker{i}", "web_port": free_port()}
            )
            procs.append(WorkerProcess(s, work / f"worker{i}.log").start())
            stack.callback(procs[-1].stop)
        s = settings.model_copy(
            update={"data_dir": work / "activation", "activation_web_port": free_port()}
        )
        procs.append(ActivationProcess(s, work / "activation.log").start())
        stack.callback(procs[-1].stop)
        for proc in procs:
            proc.wait_ready(120)
            kind = "activation" if isinstance(proc, ActivationProcess) else "worker  "
            print(f"{kind} ready at {proc.url} (log {proc.log_path})")
        print(
            f"source   demo traffic at {rate:.0f} events/s; "
            f"cart window {cart_window_s:.0f}s; Ctrl-C stops\n"
        )
        tally = Tally(settings)
        stack.callback(tally.close)
        topics = Topics(settings)
        producer = Producer(source_producer_config(settings))
        started = time.monotonic()
        produced = 0
        chunk = 0
        last_print = started
        while not stop.is_set() and (duration is None or time.monotonic() - started < duration):
            size = max(int(rate * 30), 100)
            for ev in generate(size, seed + chunk, start_ts=time.time(), seconds_span=size / rate):
                if stop.is_set() or (
                    duration is not None and time.monotonic() - started >= duration
                ):
                    break
                producer.produce(topics.raw(ev.source), value=ev.value, key=ev.key)
                produced += 1
                behind = produced / rate - (time.monotonic() - started)
                if behind > 0:
                    producer.poll(0)
                    tally.poll(behind)
                if time.monotonic() - last_print >= 5:
                    last_print = time.monotonic()
                    acts = (
                        ", ".join(f"{k} {v}" for k, v in sorted(tally.actions.items()))
                        or "none yet"
                    )
                    print(
                        f"[{time.monotonic() - started:6.0f}s] events in {produced:7d} | profiles "
                        f"{len(tally.live):6d} | merges {tally.merges:6d} | actions: {acts} | "
                        f"dlq {tally.dlq}",
                        flush=True,
                    )
                    if tally.last_action:
                        print(f"          last action: {tally.last_action}", flush=True)
            chunk += 1
        producer.flush(10)
        del producer  # before the broker stops, or librdkafka logs the disconnect
        print("stopping…")
    return 0
