"""The activation layer's Faust application: two agents between ``profiles.v1`` and ``actions.v1``.

``decide`` reads every profile change (keyed by profile id), keeps a small memory per profile
in a RocksDB table with a changelog (facts, subjects messaged, recent sends for the caps, the
latest decisions), publishes audience changes on ``audiences.v1`` and sends what the
programmes earn (:func:`scv.activation.decide.decide`) to an internal topic keyed by
**action id**. ``gate`` reads that topic, so every decision about one subject (one
customer's welcome, one order's cross-sell) reaches the same partition whichever profile it
came from, and sends an action id to ``actions.v1`` only the first time (a table of sent
ids): two profiles of one person that both messaged a subject before they merged, or a
decision repeated after a crash, repeat an id and are dropped there. Every output is
acknowledged by the broker before the state that records it is written (:func:`delivered`).

Both agents run with concurrency 1 (faust-streaming issue #606: above 1 a commit can pass a
message still in flight). Faust's own web pages are off (they can dump tables); the worker
serves ``/livez``, ``/readyz``, ``/metrics`` and ``/profiles/{id}/programmes`` (one profile's
decisions) on ``SCV_ACTIVATION_WEB_PORT`` with scv's token check. Kafka connection and
security come from the same ``SCV_*`` settings as the core's workers
(:func:`scv.kafka.faust_broker_kwargs`).

Run it as ``scv activation`` or ``faust -A scv.activation.app worker``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
import orjson
from aiohttp import web
from prometheus_client import Counter

from scv.activation.decide import DUPLICATE, Memory, decide, forget
from scv.activation.programmes import AUDIENCE_FACT, load_programmes
from scv.kafka import faust_broker_kwargs, partition_for, set_fetch_max_wait
from scv.settings import Settings
from scv.streams.web import WebServer, probes, warn_if_open
from scv.topics import Topics

log = logging.getLogger(__name__)

#: The internal topic between the agents, keyed by action id (created by the worker).
DECISIONS = "activation.decisions.v1"

ACTIONS = Counter("scv_activation_actions_total", "Programme actions sent.", ["programme"])
SKIPPED = Counter(
    "scv_activation_skipped_total",
    "Programme triggers that sent nothing, by reason.",
    ["programme", "reason"],
)
CHANGES = Counter("scv_activation_profile_changes_total", "Profile snapshots judged.")
AUDIENCE_MOVES = Counter(
    "scv_activation_audience_changes_total",
    "Profiles entering or leaving a live audience.",
    ["audience", "change"],
)


class Activation:
    """The Faust app and its topics, tables and agents for ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rules = load_programmes(settings.programmes_path)
        topics = Topics(settings)
        set_fetch_max_wait(settings.fetch_max_wait_ms)
        partitions = settings.stage_partitions
        datadir = settings.data_dir / "activation"
        datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
        self.app = faust.App(
            f"{settings.app_id}-activation",
            autodiscover=False,
            store=settings.store,
            datadir=str(datadir),
            topic_partitions=partitions,
            web_enabled=False,
            topic_allow_declare=True,
            # bytes in and out everywhere: orjson does the JSON, as in the core
            key_serializer="raw",
            value_serializer="raw",
            **(
                faust_broker_kwargs(settings)
                # each output is awaited before the state that says it was sent (delivered()):
                # a linger would be added to every one of them
                | {"producer_linger": 0.001}
            ),
        )

        def topic(name: str, internal: bool = False) -> Any:
            return self.app.topic(
                name, key_type=bytes, value_type=bytes, partitions=partitions, internal=internal
            )

        def table(name: str) -> Any:
            return self.app.Table(name, key_type=bytes, value_type=bytes, partitions=partitions)

        self.profiles = topic(topics.profiles)
        self.actions = topic(topics.actions)
        self.audiences = topic(topics.audiences)
        self.decisions = topic(settings.topic(DECISIONS), internal=True)
        self.memory = table("activation-memory")
        self.sent = table("activation-sent")
        #: the newest event time seen (``max_lag_s`` is measured against it); kept in memory:
        #: after a restart it starts again from the first change read
        self.stream_ts = 0.0
        self.app.agent(self.profiles, name="decide", concurrency=1)(self._decide)
        self.app.agent(self.decisions, name="gate", concurrency=1)(self._gate)
        self.web: WebServer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # Faust's, once the worker runs
        self.app.task(self._serve)

    async def _serve(self) -> None:
        """scv's probes and metrics on ``SCV_ACTIVATION_WEB_PORT`` (a thread of its own),
        and one profile's programme trail."""
        self.loop = asyncio.get_running_loop()
        settings = self.settings.model_copy(update={"web_port": self.settings.activation_web_port})
        warn_if_open(settings)
        pages = probes(settings, self.is_ready)
        pages.router.add_get("/profiles/{profile_id}/programmes", self._programmes_page)
        self.web = WebServer(settings, pages).start()

    async def _programmes_page(self, request: web.Request) -> web.Response:
        """Why this profile got, or did not get, each message: its facts, audiences and
        latest decisions (behind the API token: facts are personal data). Runs on the web
        thread; the table is read on Faust's loop."""
        key = request.match_info["profile_id"].encode()
        assert self.loop is not None  # set before the web server starts
        future = asyncio.run_coroutine_threadsafe(self.trace(key), self.loop)
        status, body = await asyncio.wrap_future(future)
        return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")

    async def trace(self, key: bytes) -> tuple[int, dict[str, Any]]:
        topic = self.profiles.get_topic_name()
        partition = partition_for(key, self.settings.stage_partitions)
        held = {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}
        if partition not in held:
            return 421, {"error": f"partition {partition} is held by another activation worker"}
        stored = self.memory.get(key)
        if not stored:
            body = {"error": "not seen by the activation layer (a merged-away or erased id is "
                    "forgotten: see profiles.merges.v1)"}  # fmt: skip
            return 404, body
        memory = Memory.from_dict(orjson.loads(stored))
        facts = memory.facts or {}
        audiences = [
            a.name for a in self.rules.audiences if facts.get(AUDIENCE_FACT.format(name=a.name))
        ]
        decisions = [
            {"event_ts": ts, "programme": name, "outcome": outcome, "detail": detail}
            for ts, name, outcome, detail in reversed(memory.trail)
        ]
        return 200, {
            "profile_id": key.decode(),
            "audiences": audiences,
            "decisions": decisions,
            "facts": facts,
        }

    async def _decide(self, stream: Any) -> None:
        async for event in stream.events():
            await self.on_profile(event.key, event.value)

    async def on_profile(self, key: bytes | None, value: bytes | None) -> None:
        """One ``profiles.v1`` record: a snapshot to judge, or a tombstone (the profile was
        merged away or erased: its memory goes too)."""
        if key is None:
            return
        stored = self.memory.get(key)
        memory = Memory.from_dict(orjson.loads(stored) if stored else None)
        if value is None:
            last_ts = float((memory.facts or {}).get("updated_ts") or 0.0)
            for name in forget(memory, self.rules):
                await self._audience(key, name, False, last_ts, "profile_gone")
            self.memory.pop(key, None)
            return
        snapshot = orjson.loads(value)
        CHANGES.inc()
        self.stream_ts = max(self.stream_ts, float(snapshot.get("updated_ts") or 0.0))
        decision = decide(memory, snapshot, self.rules, self.stream_ts, time.time())
        event_ts = float(snapshot.get("updated_ts") or 0.0)
        # What the change earned is on the broker before the memory says it was seen: a
        # crash in between replays the change and sends again (the gate drops the repeat);
        # the other order would lose the message.
        for name, entered in decision.audiences:
            await self._audience(key, name, entered, event_ts, "facts")
        for skipped in decision.skipped:
            SKIPPED.labels(skipped.programme, skipped.reason).inc()
        for action in decision.actions:
            await delivered(
                self.decisions, action.action_id.encode(), orjson.dumps(action.to_dict())
            )
        self.memory[key] = orjson.dumps(memory.to_dict())

    async def _audience(
        self, key: bytes, name: str, entered: bool, event_ts: float, reason: str
    ) -> None:
        AUDIENCE_MOVES.labels(name, "entered" if entered else "left").inc()
        record = {
            "profile_id": key.decode(),
            "audience": name,
            "change": "entered" if entered else "left",
            "reason": reason,
            "event_ts": event_ts,
            "created_at": time.time(),
        }
        await delivered(self.audiences, key, orjson.dumps(record))

    async def _gate(self, stream: Any) -> None:
        async for key, value in stream.items():
            await self.on_decision(key, value)

    async def on_decision(self, key: bytes, value: bytes) -> None:
        """Send an action the first time its id comes by."""
        action = orjson.loads(value)
        if key in self.sent:
            SKIPPED.labels(action["type"], DUPLICATE).inc()
            return
        await delivered(self.actions, action["profile_id"].encode(), value)
        self.sent[key] = orjson.dumps(action["created_at"])  # after: a crash repeats, never loses
        ACTIONS.labels(action["type"]).inc()

    def is_ready(self) -> bool:
        """Group joined, tables recovered, no rebalance in progress."""
        recovery = self.app.tables.recovery  # type: ignore[attr-defined]
        return bool(recovery.completed.is_set() and not self.app.rebalancing)


async def delivered(topic: Any, key: bytes, value: bytes) -> None:
    """Send now and wait for the broker's acknowledgement.

    Faust would otherwise attach the message to the input offset and publish it only at the
    next commit, while a table write goes out at once: a crash in between would leave the
    table saying "done" for a message never sent. Acknowledged first, a crash can only
    repeat it (the gate's table, written after, catches repeats of one action id)."""
    pending = await topic.send(key=key, value=value, force=True)
    await pending


def build(settings: Settings | None = None) -> Activation:
    return Activation(settings or Settings())


activation = build()
#: what ``faust -A scv.activation.app worker`` looks for
app = activation.app
