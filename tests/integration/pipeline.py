"""A running scv pipeline for integration tests: one real ``scv worker`` on the test broker.

Tests talk to it the way source systems and activation services do: they produce raw JSON to
``raw.<source>.v1`` and read ``profiles.v1``, ``profiles.merges.v1``, ``actions.v1`` and the
DLQs. Nothing is mocked; the worker is the same subprocess ``scv demo`` starts.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from confluent_kafka import Producer

from scv.kafka import producer_config
from scv.runner import (
    DrainTimeout,
    Record,
    WorkerProcess,
    latest_by_key,
    read_topic,
    wait_drained,
)
from scv.settings import Settings
from scv.topics import Topics

T = TypeVar("T")


def now_iso(offset_s: float = 0.0) -> str:
    """An event timestamp near the wall clock (carts fall due relative to it)."""
    return datetime.fromtimestamp(time.time() + offset_s, UTC).isoformat()


def uid(prefix: str) -> str:
    """A value no other test uses, so tests can share one worker without seeing each other."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def web_event(etype: str, cookie: str, **fields: Any) -> dict[str, Any]:
    """A ``raw.web.v1`` event of type ``etype`` on browser ``cookie``, in a session of its own."""
    return {
        "event_id": uid("web"),
        "timestamp": now_iso(),
        "type": etype,
        "anonymous_id": cookie,
        "session_id": uid("sess"),
        **fields,
    }


def http_get(url: str) -> tuple[int, bytes]:
    """GET ``url``: (status, body), an error status included."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as err:
        return int(err.code), bytes(err.read())


class Pipeline:
    def __init__(self, settings: Settings, worker: WorkerProcess) -> None:
        self.settings = settings
        self.topics = Topics(settings)
        self.worker = worker
        self._producer = Producer(producer_config(settings))

    # --- the source side ---------------------------------------------------------------
    def send(self, source: str, event: dict[str, Any] | bytes, key: bytes | None = None) -> None:
        value = event if isinstance(event, bytes) else orjson.dumps(event)
        self._producer.produce(self.topics.raw(source), value=value, key=key)
        assert self._producer.flush(10) == 0

    # --- the activation side -----------------------------------------------------------
    def drain(self, timeout: float = 60.0, stall: float = 30.0) -> None:
        """Until every stage has consumed and committed everything (and nothing follows).

        Fails (``DrainTimeout``, with the worker's log) once the lag has not gone down for
        ``stall`` seconds, or after ``timeout``.
        """
        try:
            wait_drained(self.settings, self.topics.dead_lettered, timeout, settle=1.0, stall=stall)
        except DrainTimeout as exc:
            exc.add_note(f"worker log:\n{self.worker.tail()}")
            raise

    def wait_for(self, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
        """Poll ``probe`` until it returns something; for outcomes that must appear."""
        deadline = time.monotonic() + timeout
        while True:
            found = probe()
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing after {timeout}s; worker log:\n{self.worker.tail()}")
            time.sleep(0.3)

    def profiles(self) -> dict[str, dict[str, Any]]:
        """Live profiles: ``profiles.v1`` read with compaction semantics."""
        latest = latest_by_key(read_topic(self.settings, self.topics.profiles))
        return {key.decode(): orjson.loads(value) for key, value in latest.items()}

    def profiles_with(self, id_type: str, value: str) -> list[dict[str, Any]]:
        return [p for p in self.profiles().values() if value in p["identifiers"].get(id_type, [])]

    def profile_with(self, id_type: str, value: str) -> dict[str, Any] | None:
        """The one live profile owning ``type:value`` (None while there is none)."""
        found = self.profiles_with(id_type, value)
        assert len(found) <= 1, f"{id_type} owned by {len(found)} live profiles"
        return found[0] if found else None

    def households(self) -> dict[str, dict[str, Any]]:
        """Live households: ``households.v1`` read with compaction semantics."""
        latest = latest_by_key(read_topic(self.settings, self.topics.households))
        return {key.decode(): orjson.loads(value) for key, value in latest.items()}

    def merges(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.value or b"") for r in read_topic(self.settings, self.topics.merges)]

    def actions(self, profile_id: str | None = None) -> list[dict[str, Any]]:
        records = read_topic(self.settings, self.topics.actions)
        actions = [orjson.loads(r.value or b"") for r in records]
        return [a for a in actions if profile_id is None or a["profile_id"] == profile_id]

    def dlq(self, topic: str) -> list[Record]:
        return read_topic(self.settings, self.topics.dlq(topic))

    def get(self, path: str) -> tuple[int, bytes]:
        """GET on the worker's HTTP port: (status, body)."""
        return http_get(self.worker.url + path)

    def close(self) -> None:
        """Flush and drop the producer while the broker is still up (else librdkafka logs
        the broker's shutdown as a failure)."""
        self._producer.flush(10)
        del self._producer
