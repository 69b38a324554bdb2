"""A demo run through a real worker at INFO: its log (stdout and stderr) holds no email,
phone, name, street or national id of the people in the workload.

The workload is the demo generator's (:mod:`scv.connectors.demo`), malformed messages
included, so the DLQ lines are in the log too; the run goes through ``run_pipeline``, the
path ``scv demo`` takes, with probabilistic matching on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from scv.brokers import Broker
from scv.connectors.demo import generate
from scv.demo import run_pipeline
from scv.domain.normalize import normalize_phone

pytestmark = pytest.mark.integration

EVENTS, SEED = 800, 11


def personal_values(doc: dict[str, Any]) -> set[str]:
    """What identifies a person in one raw event, as sent and as normalised."""
    found: set[str] = set()
    holders = [doc, doc.get("traits") or {}, doc.get("address") or {}]
    for holder in holders:
        if not isinstance(holder, dict):
            continue
        for key in ("email", "phone", "street", "postcode", "national_id"):
            value = holder.get(key)
            if isinstance(value, str) and len(value.strip()) >= 5:
                found.add(value.strip().lower())
        first, last = holder.get("first_name"), holder.get("last_name")
        if isinstance(first, str) and isinstance(last, str):
            found.add(f"{first} {last}".lower())
            found.update(n.lower() for n in (first, last) if len(n) >= 6)
    phone = doc.get("phone")
    if isinstance(phone, str) and (e164 := normalize_phone(phone, "GB")):
        found.update({e164, e164[3:], "0" + e164[3:]})
    return found


def test_a_demo_runs_at_info_without_logging_personal_data(broker: Broker, tmp_path: Path) -> None:
    events = list(generate(EVENTS, SEED))
    pii: set[str] = set()
    for ev in events:
        try:
            doc = orjson.loads(ev.value)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict):
            pii |= personal_values(doc)
    assert len(pii) > 100  # the workload is full of people

    summary = run_pipeline(
        events,
        name="logs",
        bootstrap=broker.bootstrap,
        cart_window_s=2.0,
        settings={"log_level": "info", "matching": True},
        work_dir=tmp_path,
    )
    assert summary["events_resolved"] > EVENTS * 0.9
    assert summary["dlq"] == summary["malformed_in"] > 0

    log = (tmp_path / "worker0.log").read_text(errors="replace")
    assert " INFO " in log and "-> dlq" in log  # the right log, at INFO, with DLQ lines
    text = log.lower()
    leaked = sorted(v for v in pii if re.search(rf"(?<![\w@.+]){re.escape(v)}(?![\w@])", text))
    assert leaked == []
