"""The worker's Prometheus counters move by exactly what the stages did.

Raw events go through all three stages the way the worker hands them over (each stage's
output fed back as the next batch), and every counter's change is compared with what the
outbox recorded. Counters are process-wide, so the test compares before and after.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import REGISTRY
from stagekit import Msg, Outbox

from scv.streams.worker import Pipeline
from scv.topics import Topics

MakePipeline = Callable[..., Pipeline]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def web(event_id: str, **fields: Any) -> bytes:
    body = {
        "event_id": event_id,
        "timestamp": time.time() - 60,  # live: an old cart would be suppressed as stale
        "type": "page_view",
        "session_id": "s-1",
    }
    return orjson.dumps(body | fields)


def pump(pipeline: Pipeline, sent: Outbox, topic: str, values: list[bytes]) -> None:
    """Process ``values`` from ``topic``, then every stage input they lead to, until quiet."""
    batch = [Msg(topic, v, None, 0, i) for i, v in enumerate(values)]
    offset = len(values)
    while batch:
        seen = len(sent)
        pipeline.process(batch)
        batch = []
        for m in sent[seen:]:
            if m.topic in pipeline.stage_of:
                partition = zlib.crc32(m.key or b"") % pipeline.settings.stage_partitions
                batch.append(Msg(m.topic, m.value, m.key, partition, offset))
                offset += 1


def test_counters_follow_the_stages(make_pipeline: MakePipeline, sent: Outbox) -> None:
    pipeline = make_pipeline(cart_window_s=60.0)
    t = Topics(pipeline.settings)
    email = "ann.lee@acme-corp.co.uk"
    cart = {"cart_id": "cart-9", "items": [{"sku": "S", "qty": 1, "price": 3.0}]}
    raw = [
        web("w1", anonymous_id="ck-1"),
        web("w2", anonymous_id="ck-2", email=email, type="signup"),
        web("w3", anonymous_id="ck-1", email=email, type="login"),  # joins the two: a merge
        web("w4", anonymous_id="ck-1", type="cart_add", cart=cart),  # no marketing consent
        b'{"event_id": "w5", ',  # not JSON
    ]
    names = [
        ("scv_events_in_total", {"stage": "normalize"}),
        ("scv_events_in_total", {"stage": "resolve"}),
        ("scv_events_in_total", {"stage": "profiles"}),
        ("scv_events_out_total", {"stage": "normalize", "topic": t.identity_events}),
        ("scv_events_out_total", {"stage": "normalize", "topic": t.dlq(t.raw("web"))}),
        ("scv_events_out_total", {"stage": "resolve", "topic": t.profile_events}),
        ("scv_events_out_total", {"stage": "resolve", "topic": t.merges}),
        ("scv_events_out_total", {"stage": "profiles", "topic": t.profiles}),
        ("scv_events_out_total", {"stage": "profiles", "topic": t.profile_events}),
        ("scv_dlq_total", {"topic": t.raw("web"), "reason": "invalid_json"}),
        ("scv_merges_total", {"rule": "deterministic"}),
        ("scv_resolve_seconds_count", {}),
        ("scv_actions_suppressed_total", {"type": "abandoned_cart", "reason": "no_consent"}),
        ("scv_actions_total", {"type": "abandoned_cart"}),
        ("scv_state_cache_lookups_total", {"table": "identity-owners", "result": "miss"}),
    ]
    before = {(n, tuple(sorted(lb.items()))): sample(n, **lb) for n, lb in names}

    pump(pipeline, sent, t.raw("web"), raw)
    # The cart falls due an hour later; no consent was given, so nothing fires.
    pipeline.check_due(time.time() + 3600)

    delta = {key: sample(key[0], **dict(key[1])) - value for key, value in before.items()}

    def d(name: str, **labels: str) -> float:
        return delta[(name, tuple(sorted(labels.items())))]

    merges = [m for m in sent.to(t.merges) if m.json().get("kind", "merge") == "merge"]
    assert len(merges) == 1
    assert d("scv_events_in_total", stage="normalize") == 5
    assert d("scv_events_out_total", stage="normalize", topic=t.identity_events) == 4
    assert d("scv_events_out_total", stage="normalize", topic=t.dlq(t.raw("web"))) == 1
    assert d("scv_dlq_total", topic=t.raw("web"), reason="invalid_json") == 1
    assert d("scv_events_in_total", stage="resolve") == 4
    assert d("scv_resolve_seconds_count") == 4
    assert d("scv_merges_total", rule="deterministic") == 1
    assert d("scv_events_out_total", stage="resolve", topic=t.merges) == len(sent.to(t.merges))
    # profiles.events.v1 is written by the resolver and by the profile owners (hand-overs)
    from_resolve = d("scv_events_out_total", stage="resolve", topic=t.profile_events)
    from_profiles = d("scv_events_out_total", stage="profiles", topic=t.profile_events)
    assert from_resolve >= 4 and from_profiles >= 1  # the merge's state hand-over
    assert from_resolve + from_profiles == len(sent.to(t.profile_events))
    assert d("scv_events_in_total", stage="profiles") == len(sent.to(t.profile_events)) + 1
    assert d("scv_events_out_total", stage="profiles", topic=t.profiles) == len(sent.to(t.profiles))
    assert d("scv_actions_suppressed_total", type="abandoned_cart", reason="no_consent") == 1
    assert d("scv_actions_total", type="abandoned_cart") == 0
    # the resolver's reads of the graph reach Prometheus too (ck-1, ck-2, the email: new)
    assert d("scv_state_cache_lookups_total", table="identity-owners", result="miss") >= 3


def test_profile_cache_reads_are_counted_hits_and_misses(make_pipeline: MakePipeline) -> None:
    """A profile held between batches is a hit; one evicted (a cache of one per partition)
    or never seen is a miss: the figure an operator sizes SCV_PROFILE_CACHE_SIZE by."""
    pipeline = make_pipeline(stage_partitions=2, profile_cache_size=2)  # one per partition
    topic = Topics(pipeline.settings).profile_events

    def consent(pid: str) -> bytes:
        body = {"kind": "consent", "profile_id": pid, "ts": 1.0, "consent": {"email": True}}
        return orjson.dumps(body)

    def lookups() -> tuple[float, float]:
        labels = {"table": "profiles"}
        return (
            sample("scv_state_cache_lookups_total", result="hit", **labels),
            sample("scv_state_cache_lookups_total", result="miss", **labels),
        )

    def batch(*pids: str) -> tuple[float, float]:
        hits, misses = lookups()
        msgs = [Msg(topic, consent(p), p.encode(), 0, i) for i, p in enumerate(pids)]
        pipeline.process(msgs)
        after = lookups()
        return after[0] - hits, after[1] - misses

    assert batch("p-a", "p-a") == (0, 1)  # new: read once per batch, from the table
    assert batch("p-a") == (1, 0)  # kept decoded between batches
    assert batch("p-b") == (0, 1)  # the cache holds one: p-a goes
    assert batch("p-a", "p-b") == (1, 1)  # p-b was kept, p-a read back from the table
