"""A real Prometheus server scrapes a running worker, evaluates the alert rules and answers
every query of the Grafana dashboard.

The worker runs with a hand-over storm bound of 1 (``SCV_HANDOVER_STORM_COUNT``), so that one
profile absorbing two others makes ``ScvHandoverStorm`` fire.

Needs the ``prometheus`` binary from Debian's package, which ``make test`` installs (``make
tools``); without it the test fails and says how to get it. The exposition itself is also
parsed without a server in test_operations.py.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from pipeline import Pipeline, now_iso, uid

from scv.brokers import free_port
from scv.runner import read_topic

PROMETHEUS = shutil.which("prometheus")
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

pytestmark = [pytest.mark.integration]

#: A profile that receives a second hand-over within the window is a storm.
WORKER_SETTINGS = {"handover_storm_count": 1}


class Server:
    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def value(self, expr: str) -> float | None:
        result = self.api("query", query=expr)["result"]
        return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="module")
def prometheus(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Prometheus scraping the module's worker every second, with deploy/'s rules."""
    work = tmp_path_factory.mktemp("prometheus")
    shipped = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    [job] = shipped["scrape_configs"]
    target = pipeline.worker.url.removeprefix("http://")
    config = shipped | {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DEPLOY / "prometheus-rules.yml")],
        "scrape_configs": [job | {"static_configs": [{"targets": [target]}]}],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    assert PROMETHEUS is not None, "no prometheus binary: `make tools` installs Debian's package"
    log = (work / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Server(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):  # refused until prometheus listens
                if server.value('up{job="scv"}') == 1:
                    break
            assert proc.poll() is None, (work / "prometheus.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "prometheus never scraped the worker"
            time.sleep(0.3)
        yield server
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def test_prometheus_scrapes_the_worker_and_sees_events(
    pipeline: Pipeline, prometheus: Server
) -> None:
    expr = 'sum(scv_events_in_total{stage="normalize"})'
    start = prometheus.value(expr) or 0.0
    for _ in range(3):
        cookie = uid("ck")
        event = {
            "event_id": uid("web"),
            "timestamp": now_iso(),
            "type": "page_view",
            "anonymous_id": cookie,
            "session_id": uid("s"),
        }
        pipeline.send("web", event)
    pipeline.wait_for(lambda: (prometheus.value(expr) or 0) >= start + 3 or None, 30)
    assert prometheus.value('scv_worker_ready{job="scv"}') == 1
    assert (prometheus.value("sum(scv_consumer_lag_messages)") or 0) >= 0


def alert_rules(prometheus: Server) -> dict[str, dict[str, Any]]:
    """The loaded alert rules by name, with their health and state."""
    [group] = prometheus.api("rules")["groups"]
    return {r["name"]: r for r in group["rules"]}


def test_alert_rules_load_and_evaluate(prometheus: Server) -> None:
    deadline = time.monotonic() + 15
    while not all(
        r.get("lastEvaluation", "").startswith("2") for r in alert_rules(prometheus).values()
    ):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    rules = alert_rules(prometheus)
    assert len(rules) == 8
    assert {name: r["health"] for name, r in rules.items()} == dict.fromkeys(rules, "ok")
    # the worker holds the resolver partition and runs every stage: neither alert may fire
    assert rules["ScvNoResolver"]["state"] == "inactive"
    assert rules["ScvStageUnread"]["state"] == "inactive"
    # separate profiles, no merge yet: nothing handed over, even with a bound of 1
    assert rules["ScvHandoverStorm"]["state"] == "inactive"


def test_a_handover_storm_fires_its_alert(pipeline: Pipeline, prometheus: Server) -> None:
    """Three visitors, then one email ties them together: the oldest profile absorbs two
    others, its second hand-over passes the bound of 1, and the rule fires."""
    email = f"{uid('ann')}@acme-corp.co.uk"
    cookies = [uid("ck") for _ in range(3)]
    events = [
        {"anonymous_id": cookies[0], "email": email},
        {"anonymous_id": cookies[1]},
        {"anonymous_id": cookies[2]},
        {"anonymous_id": cookies[1], "email": email},
        {"anonymous_id": cookies[2], "email": email},
    ]
    for i, fields in enumerate(events):
        event = {"event_id": uid("web"), "timestamp": now_iso(i - 10), "type": "page_view"}
        pipeline.send("web", event | {"session_id": uid("s")} | fields, key=email.encode())

    def firing() -> dict[str, Any] | None:
        rule = alert_rules(prometheus)["ScvHandoverStorm"]
        return rule if rule["state"] == "firing" else None

    rule = pipeline.wait_for(firing, 30)
    [alert] = rule["alerts"]
    assert alert["labels"]["alertname"] == "ScvHandoverStorm"
    survivor = pipeline.profile_with("email", email)
    assert survivor is not None
    pid = survivor["profile_id"]
    # the audit record and the warning name the profiles, never the email
    records = read_topic(pipeline.settings, pipeline.topics.audit)
    audit = [orjson.loads(r.value or b"") for r in records]
    [record] = [r for r in audit if r["kind"] == "handover_storm"]
    assert record["profile_id"] == pid and len(record["peers"]) == 2
    assert set(survivor["merged_from"]) == set(record["peers"])
    log = pipeline.worker.log_path.read_text()
    [line] = [x for x in log.splitlines() if "hand-over storm" in x]
    assert pid in line and email not in line and not any(c in line for c in cookies)


def test_every_dashboard_query_is_valid_promql(prometheus: Server) -> None:
    board = json.loads((DEPLOY / "grafana" / "dashboards" / "scv.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    answered = 0
    for expr in exprs:
        result = prometheus.api("query", query=expr)["result"]  # raises on a syntax error
        answered += bool(result)
    # every query names series that exist; a few are empty until there is traffic of that
    # kind (rates need two scrapes, splits and the matcher may never have happened)
    assert answered >= len(exprs) // 2, f"{answered} of {len(exprs)} queries returned data"
