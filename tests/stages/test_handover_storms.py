"""The profiles stage's hand-over safety net: a profile handed over more than
``SCV_HANDOVER_STORM_COUNT`` times within the window is logged (profile ids only), counted in
``scv_handover_storms_total`` and recorded on ``audit.v1``, and every message is still applied
or forwarded (``scv.domain.handovers`` has the rule itself)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY
from stagekit import Outbox, Sent, feed, load_examples
from test_profiles_stage import event_msg, web_event

from scv.domain.parts import Adoption
from scv.schemas import validator
from scv.streams.worker import Pipeline
from scv.topics import Topics

MakePipeline = Callable[..., Pipeline]
WEB = load_examples().WEB
A = "p_survivor"
EMAIL = "jane.doe@example.com"  # in WEB[0]: personal data that must not reach the log


def storms() -> float:
    return REGISTRY.get_sample_value("scv_handover_storms_total") or 0.0


def absorbs(pipeline: Pipeline, sent: Outbox, absorbed: list[str]) -> list[bytes]:
    """The ``absorb`` hand-overs the absorbed profiles' owners send: each absorbed profile
    gets an event (with an email), then a merge into ``A``."""
    t = Topics(pipeline.settings)
    out = []
    for i, pid in enumerate(absorbed):
        raw = WEB[4] | {"event_id": f"web-{i}", "anonymous_id": f"ck-{i}", "email": EMAIL}
        feed(pipeline, t.profile_events, event_msg(pid, web_event(raw)), key=pid.encode())
        merge = {"kind": "merge", "profile_id": pid, "survivor": A, "reason": {}, "seq": i + 1}
        n = len(sent)
        feed(pipeline, t.profile_events, orjson.dumps(merge), key=pid.encode())
        [handover] = [m for m in sent[n:] if m.topic == t.profile_events]
        assert handover.json()["kind"] == "absorb"
        out.append(handover.value or b"")
    return out


def audit(sent: list[Sent], topics: Topics) -> list[dict[str, Any]]:
    records = [m.json() for m in sent if m.topic == topics.audit]
    for record in records:
        validator("audit.v1")(record)
    return records


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "scv.streams.profiles" and r.levelno == logging.WARNING
    ]


def test_absorbs_past_the_bound_are_logged_counted_audited_and_applied(
    make_pipeline: MakePipeline, sent: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = make_pipeline(handover_storm_count=2, handover_storm_window_s=60.0)
    t = Topics(pipeline.settings)
    absorbed = [f"p_gone{i}" for i in range(4)]
    handovers = absorbs(pipeline, sent, absorbed)
    assert audit(sent, t) == []
    before, n = storms(), len(sent)

    caplog.set_level(logging.WARNING, logger="scv.streams")
    feed(pipeline, t.profile_events, *handovers, key=A.encode())  # one batch of four

    # the third passes the bound; the fourth is within the same window: one report
    assert storms() == before + 1
    [record] = audit(sent[n:], t)
    assert {k: record[k] for k in ("kind", "stage", "profile_id", "message_kind")} == {
        "kind": "handover_storm",
        "stage": "profiles",
        "profile_id": A,
        "message_kind": "absorb",
    }
    assert record["peers"] == absorbed[:3]
    assert record["counts"] == {"handovers": 3}
    assert (record["bound"], record["window_s"]) == (2, 60.0)
    [line] = warnings(caplog)
    assert A in line and all(pid in line for pid in absorbed[:3])
    assert EMAIL not in line and "ck-" not in line and EMAIL not in str(record)

    # nothing was held back: all four states were folded into the survivor
    state = orjson.loads(pipeline.profile_table[0].get(A.encode()) or b"{}")
    assert sorted(state["merged_from"]) == absorbed
    assert sent.to(t.dlq(t.profile_events)) == []


def test_forwarded_hand_overs_count_for_the_merged_away_id(
    make_pipeline: MakePipeline, sent: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = make_pipeline(handover_storm_count=1)
    t = Topics(pipeline.settings)
    gone = "p_gone0"
    absorbs(pipeline, sent, [gone])  # gone is merged into A: it forwards what reaches it
    late = [
        orjson.dumps({"kind": "absorb", "profile_id": gone, "absorbed": f"p_late{i}", "state": {}})
        for i in range(2)
    ]
    before, n = storms(), len(sent)
    caplog.set_level(logging.WARNING, logger="scv.streams")
    feed(pipeline, t.profile_events, *late, key=gone.encode())

    assert storms() == before + 1
    [record] = audit(sent[n:], t)
    assert record["profile_id"] == gone
    assert record["peers"] == ["p_late0", "p_late1", A]  # what came, and where it went
    forwarded = [m.json() for m in sent[n:] if m.topic == t.profile_events]
    assert [(m["profile_id"], m["absorbed"]) for m in forwarded] == [
        (A, "p_late0"),
        (A, "p_late1"),
    ]
    [line] = warnings(caplog)
    assert gone in line and A in line


def test_an_adopt_loop_is_reported_and_still_applied(
    make_pipeline: MakePipeline, sent: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    """The bug the net is for: two profiles handing a part to each other again and again."""
    pipeline = make_pipeline(handover_storm_count=3, handover_storm_window_s=60.0)
    t = Topics(pipeline.settings)
    b = "p_part"

    def adoption(to: str, origin: str) -> bytes:
        return orjson.dumps(Adoption(to, origin, ["customer_id:C-2"], {}, [], {}).to_dict())

    before, n = storms(), len(sent)
    caplog.set_level(logging.WARNING, logger="scv.streams")
    for _ in range(5):  # one hop each way per batch, as the two partitions would see it
        feed(pipeline, t.profile_events, adoption(b, A), key=b.encode())
        feed(pipeline, t.profile_events, adoption(A, b), key=A.encode())

    assert storms() == before + 2  # each side once in the window
    records = audit(sent[n:], t)
    assert [(r["profile_id"], r["peers"], r["message_kind"]) for r in records] == [
        (b, [A], "adopt"),
        (A, [b], "adopt"),
    ]
    assert len(warnings(caplog)) == 2
    for pid in (A, b):
        state = orjson.loads(pipeline.profile_table[0].get(pid.encode()) or b"{}")
        assert state["identifiers"] == {"customer_id": ["C-2"]}


def test_normal_hand_overs_stay_quiet(
    pipeline: Pipeline, sent: Outbox, topics: Topics, caplog: pytest.LogCaptureFixture
) -> None:
    """The default bound: a survivor absorbing a few profiles is not a storm."""
    handovers = absorbs(pipeline, sent, [f"p_gone{i}" for i in range(4)])
    before = storms()
    caplog.set_level(logging.WARNING, logger="scv.streams")
    feed(pipeline, topics.profile_events, *handovers, key=A.encode())
    assert storms() == before
    assert audit(sent, topics) == []
    assert warnings(caplog) == []
