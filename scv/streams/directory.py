"""Which worker holds which table partition, and at which web address.

The profile API must answer from the worker that holds the data: the identity graph lives on
the single resolver partition, a profile's state on the partition of ``profiles.events.v1``
its id hashes to, and Kafka moves both between workers on every rebalance. So every worker
announces what it holds on a compacted topic (``<app_id>-workers``, one partition, keyed by
the worker's advertised URL) and reads everyone's announcements back.

Why a topic rather than asking the consumer group: the group knows members and their
partitions but not their web addresses, and tansu does not describe group assignments.
The topic needs nothing beyond the broker every worker already talks to, and it is
compacted: a new worker reads the current holders from the start.

A worker announces what it holds only while it is ready (partitions restored); during a
rebalance it announces nothing, so peers answer "retry" instead of sending requests to a
worker that cannot answer them. If two announcements claim a partition (a worker crashed
without withdrawing its claim), the later one on the topic wins: the claim of the worker
that took the partition over. A worker that stops cleanly deletes its entry (tombstone).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

from scv.kafka import consumer_config, producer_config
from scv.settings import Settings
from scv.topics import Topics

log = logging.getLogger(__name__)

#: table name -> partitions held
Holdings = dict[str, list[int]]

#: Re-announce unchanged holdings this often, so an entry shows it is still current.
REFRESH_S = 30.0


class Directory:
    """Announces this worker's holdings and keeps everyone's, in a thread of its own.

    ``holdings`` is called from that thread every ``interval_s`` and must be cheap and safe
    to call off the stream loop (it copies the tables' open-partition keys).
    """

    def __init__(
        self,
        settings: Settings,
        url: str,
        holdings: Callable[[], Holdings],
        interval_s: float = 0.05,
    ) -> None:
        self.url = url
        self.topic = Topics(settings).workers
        self._settings = settings
        self._holdings = holdings
        self._interval_s = interval_s
        self._lock = threading.Lock()
        #: url -> (offset of its latest announcement, holdings)
        self._entries: dict[str, tuple[int, Holdings]] = {}
        self._reached = False  # the broker has taken at least one announcement
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scv-directory", daemon=True)
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None

    # --- reading ---------------------------------------------------------------------------
    def owner(self, table: str, partition: int) -> str | None:
        """The URL of the worker that last claimed ``table``'s ``partition`` (None: nobody)."""
        best: tuple[int, str] | None = None
        with self._lock:
            for url, (offset, holds) in self._entries.items():
                if partition in holds.get(table, ()) and (best is None or offset > best[0]):
                    best = (offset, url)
        return best[1] if best is not None else None

    def entries(self) -> dict[str, Holdings]:
        """Every worker's latest announcement (for ``/workers``)."""
        with self._lock:
            return {url: holds for url, (_, holds) in sorted(self._entries.items())}

    def _apply(self, key: bytes, value: bytes | None, offset: int) -> None:
        url = key.decode()
        with self._lock:
            if value is None:
                self._entries.pop(url, None)
            else:
                holds = orjson.loads(value).get("holds") or {}
                self._entries[url] = (offset, {t: [int(p) for p in ps] for t, ps in holds.items()})

    # --- the thread ------------------------------------------------------------------------
    def start(self) -> Directory:
        self._producer = Producer(producer_config(self._settings))
        self._consumer = Consumer(
            consumer_config(
                self._settings,
                f"{self._settings.app_id}-directory",
                **{"enable.auto.commit": False, "fetch.wait.max.ms": 20},
            )
        )
        # One partition, written with an explicit partition: read it all, no group join.
        self._consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        self._thread.start()
        return self

    def _announce(self, holds: Holdings | None) -> None:
        assert self._producer is not None
        value = None if holds is None else orjson.dumps({"holds": holds, "ts": time.time()})
        self._producer.produce(
            self.topic, key=self.url.encode(), value=value, partition=0, on_delivery=self._sent
        )
        self._producer.poll(0)

    def _sent(self, err: object, msg: object) -> None:
        if err is None:
            self._reached = True

    def _run(self) -> None:
        assert self._consumer is not None
        announced: Holdings | None = None
        announced_at = 0.0
        while not self._stop.is_set():
            try:
                holds = self._holdings()
                now = time.monotonic()
                if holds != announced or now - announced_at > REFRESH_S:
                    self._announce(holds)
                    announced, announced_at = holds, now
                for msg in self._consumer.consume(1000, self._interval_s):
                    key = msg.key()
                    if msg.error() is None and key is not None:
                        self._apply(key, msg.value(), int(msg.offset() or 0))
            except Exception:  # keep announcing: a broker hiccup must not end the thread
                log.exception("worker directory")
                self._stop.wait(1.0)

    def stop(self) -> None:
        """Withdraw this worker's entry and stop the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        if self._producer is not None:
            try:
                self._announce(None)
            except KafkaException as exc:  # e.g. no ACL to write the topic: nothing to withdraw
                log.warning("worker directory: could not withdraw this worker's entry: %s", exc)
            # A broker that never took an announcement will not take the withdrawal either:
            # do not hold up the shutdown for it.
            self._producer.flush(5 if self._reached else 0.2)
            self._producer = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
