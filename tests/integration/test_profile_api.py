"""The profile API with two real workers: any worker answers, the graph holder assembles the
view, and a profile's state comes from whichever worker holds its partition.

Profiles are placed on purpose: the first event's id decides a new profile's id
(``new_profile_id``), so each person's id is chosen to land on a partition of the worker that
does *not* hold the graph, or of the one that does.
"""

from __future__ import annotations

import itertools
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pipeline import Pipeline, now_iso, uid

from scv.brokers import Broker, free_port
from scv.domain.graph import new_profile_id
from scv.kafka import partition_for
from scv.runner import WorkerProcess
from scv.settings import Settings
from scv.topics import create_topics

pytestmark = pytest.mark.integration

TOKEN = "api-test-token"
_phones = itertools.count(200)


class Cluster:
    def __init__(self, settings: Settings, workers: list[WorkerProcess]) -> None:
        self.settings = settings
        self.workers = workers
        self.pipeline = Pipeline(settings, workers[0])
        self.holds: dict[str, dict[str, list[int]]] = {}

    def get(self, worker: WorkerProcess, path: str, token: str | None = TOKEN) -> Any:
        """(status, JSON body, the worker that served it)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(worker.url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, orjson.loads(resp.read()), resp.headers.get("X-SCV-Served-By")
        except urllib.error.HTTPError as err:
            return err.code, orjson.loads(err.read()), err.headers.get("X-SCV-Served-By")

    def settled(self) -> dict[str, dict[str, list[int]]] | None:
        """Both workers see both announcements, covering the graph and every partition."""
        views = [self.get(w, "/workers")[1]["workers"] for w in self.workers]
        if views[0] != views[1] or len(views[0]) != 2:
            return None
        held = sorted(p for holds in views[0].values() for p in holds.get("profiles", []))
        graph = [u for u, holds in views[0].items() if holds.get("identity-nodes") == [0]]
        return views[0] if held == [0, 1, 2, 3] and len(graph) == 1 else None

    @property
    def graph_url(self) -> str:
        return next(u for u, holds in self.holds.items() if "identity-nodes" in holds)

    def partitions_of(self, url: str) -> list[int]:
        return self.holds[url].get("profiles", [])


@pytest.fixture(scope="module")
def cluster(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    work: Path = tmp_path_factory.mktemp("api2")
    base = Settings(
        bootstrap_servers=broker.bootstrap,
        topic_prefix="api2-",
        app_id="scv-api2",
        session_timeout_s=2.0,
        api_token=TOKEN,  # type: ignore[arg-type]
    )
    create_topics(base)
    workers = []
    try:
        for i in range(2):
            s = base.model_copy(update={"data_dir": work / f"w{i}", "web_port": free_port()})
            workers.append(WorkerProcess(s, work / f"w{i}.log").start())
        for w in workers:
            w.wait_ready(90)
        running = Cluster(base, workers)
        running.holds = running.pipeline.wait_for(running.settled, timeout=60)
        yield running
        running.pipeline.close()
    finally:
        for w in workers:
            w.stop()


def event_id_on(partitions: list[int]) -> str:
    """A signup event id whose new profile lands on one of ``partitions``."""
    while True:
        eid = uid("web")
        if partition_for(new_profile_id(eid).encode(), 4) in partitions:
            return eid


def person(cluster: Cluster, partitions: list[int]) -> dict[str, str]:
    """Signup on the web, an order, a call: three channels, one profile (whichever event the
    resolver sees first names it, so every event id is chosen for ``partitions``)."""
    n = next(_phones)
    p = {
        "cookie": uid("ck"),
        "email": f"{uid('ann')}@Acme-Corp.co.uk",
        "customer_id": uid("C"),
        "phone_typed": f"07700 900{n}",
        "phone": f"+447700900{n}",
    }
    send = cluster.pipeline.send
    signup = {
        "event_id": event_id_on(partitions),
        "timestamp": now_iso(-60),
        "type": "signup",
        "anonymous_id": p["cookie"],
        "session_id": uid("s"),
        "email": p["email"],
        "traits": {"first_name": "Ann", "last_name": "Example"},
        "consent": {"marketing": True},
    }
    send("web", signup)
    order = {
        "event_id": event_id_on(partitions),
        "timestamp": now_iso(-30),
        "type": "order",
        "order_id": uid("O"),
        "email": p["email"],
        "customer_id": p["customer_id"],
        "phone": p["phone_typed"],
        "items": [{"sku": "SKU-1", "name": "Kettle", "qty": 1, "price": 29.99}],
        "total": 29.99,
        "currency": "GBP",
    }
    send("transactions", order)
    send(
        "callcenter",
        {
            "event_id": event_id_on(partitions),
            "timestamp": now_iso(),
            "type": "call",
            "phone": p["phone_typed"],
        },
    )
    return p


def lookup(kind: str, value: str) -> str:
    return f"/profiles/lookup?type={kind}&value={urllib.parse.quote(value)}"


def test_any_worker_answers_with_state_from_the_partition_holder(cluster: Cluster) -> None:
    graph = cluster.graph_url
    other = next(u for u in cluster.holds if u != graph)
    people = [person(cluster, cluster.partitions_of(url)) for url in (other, graph, other)]

    def complete(p: dict[str, str]) -> dict[str, Any] | None:
        status, body, _ = cluster.get(cluster.workers[0], lookup("email", p["email"]))
        profile = body.get("profile") if status == 200 else None
        return body if profile and len(profile["channels"]) == 3 else None

    for p, held_by in zip(people, (other, graph, other), strict=True):
        view = cluster.pipeline.wait_for(lambda p=p: complete(p), timeout=60)
        pid = view["profile_id"]
        assert partition_for(pid.encode(), 4) in cluster.partitions_of(held_by)
        # The API reads the state the loop has written; its snapshot reaches profiles.v1
        # with the batch's output a moment later (under exactly once, at the commit).
        snapshot = cluster.pipeline.wait_for(
            lambda p=p: cluster.pipeline.profile_with("email", p["email"].lower()), timeout=30
        )
        assert snapshot["profile_id"] == pid
        for worker in cluster.workers:  # either worker, by any identifier, typed any way
            for kind, value in [
                ("email", p["email"].upper()),
                ("phone", p["phone_typed"]),
                ("phone", p["phone"]),
                ("customer_id", p["customer_id"]),
                ("anonymous_id", p["cookie"]),
            ]:
                status, body, served_by = cluster.get(worker, lookup(kind, value))
                assert status == 200, body
                assert body["profile_id"] == pid and served_by == graph
            status, body, served_by = cluster.get(worker, f"/profiles/{pid}")
            assert (status, served_by) == (200, graph)
        identifiers = {i["identifier"] for i in view["graph"]["identifiers"]}
        assert identifiers == {
            f"anonymous_id:{p['cookie']}",
            f"email:{p['email'].lower()}",
            f"customer_id:{p['customer_id']}",
            f"phone:{p['phone']}",
        }
        assert {link["rule"] for link in view["graph"]["links"]} == {"deterministic"}
        profile = view["profile"]
        assert [a["source"] for a in profile["activity"]] == ["callcenter", "transactions", "web"]
        assert profile["consent"]["marketing"]["granted"] is True
        assert profile["traits"]["first_name"] == "Ann"
        assert profile["orders"]["count"] == 1 and profile["orders"]["recent"][0]["total"] == 29.99


def test_bad_requests_unknown_profiles_and_missing_tokens(cluster: Cluster) -> None:
    for worker in cluster.workers:
        assert cluster.get(worker, lookup("email", "x@acme-corp.co.uk"), token=None)[0] == 401
        assert cluster.get(worker, "/profiles/p_00", token="wrong")[0] == 401
        assert cluster.get(worker, "/workers", token=None)[0] == 401
        status, body, _ = cluster.get(worker, lookup("favourite_colour", "blue"))
        assert status == 400 and "type must be one of" in body["error"]
        assert cluster.get(worker, lookup("email", "not-an-address"))[0] == 400
        assert cluster.get(worker, lookup("phone", "12"))[0] == 400
        assert cluster.get(worker, lookup("email", ""))[0] == 400
        assert cluster.get(worker, lookup("customer_id", "C" * 400))[0] == 400
        assert cluster.get(worker, "/profiles/p_%3Cscript%3E")[0] == 400
        status, body, _ = cluster.get(worker, lookup("email", f"{uid('nobody')}@acme-corp.co.uk"))
        assert (status, body) == (404, {"error": "no profile has this email"})
        assert cluster.get(worker, "/profiles/p_0000000000000000dead")[0] == 404


def test_an_id_merged_away_answers_with_the_profile_that_absorbed_it(cluster: Cluster) -> None:
    cookie, email = uid("ck"), f"{uid('bo')}@acme-corp.co.uk"
    send = cluster.pipeline.send
    send("web", {"event_id": uid("w"), "timestamp": now_iso(-20), "type": "page_view",
                 "anonymous_id": cookie, "session_id": uid("s")})  # fmt: skip
    send("email", {"event_id": uid("e"), "timestamp": now_iso(-10), "type": "sent",
                   "email": email, "campaign_id": "spring"})  # fmt: skip
    for kind, value in (("anonymous_id", cookie), ("email", email)):
        cluster.pipeline.wait_for(lambda k=kind, v=value: cluster.pipeline.profile_with(k, v))
    send("web", {"event_id": uid("w"), "timestamp": now_iso(), "type": "login",
                 "anonymous_id": cookie, "email": email, "session_id": uid("s")})  # fmt: skip

    def merged() -> dict[str, Any] | None:
        found = [m for m in cluster.pipeline.merges() if m["kind"] == "merge"]
        mine = [m for m in found if f"email:{email}" in m["reason"]["identifiers"]]
        return mine[0] if mine else None

    merge = cluster.pipeline.wait_for(merged)
    cluster.pipeline.drain()
    for worker in cluster.workers:
        status, body, _ = cluster.get(worker, f"/profiles/{merge['absorbed']}")
        assert status == 200, body
        assert body["profile_id"] == merge["survivor"]
        assert body["merged_away"] == [merge["absorbed"]]
        assert merge["absorbed"] in body["profile"]["merged_from"]
        assert {"email", "web"} <= set(body["profile"]["channels"])
        assert len(body["graph"]["links"]) == 1


def test_requests_in_flight_during_a_rebalance_get_retry_or_an_answer(cluster: Cluster) -> None:
    """A third worker joins: partitions move; every answer meanwhile is 200 or 503 + retry."""
    p = person(cluster, [0, 1, 2, 3])

    def found() -> dict[str, Any] | None:
        status, body, _ = cluster.get(cluster.workers[0], lookup("email", p["email"]))
        return body if status == 200 and body["profile"] else None

    view = cluster.pipeline.wait_for(found)
    first = cluster.workers[0].settings
    s = first.model_copy(update={"data_dir": first.data_dir.parent / "w3", "web_port": free_port()})
    third = WorkerProcess(s, s.data_dir.parent / "w3.log").start()
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            for worker in cluster.workers:
                status, body, _ = cluster.get(worker, lookup("email", p["email"]))
                seen.add(status)
                assert status in (200, 503), body
                if status == 200:
                    assert body["profile_id"] == view["profile_id"]
            if third.ready() and len(cluster.get(third, "/workers")[1]["workers"]) == 3:
                status, body, _ = cluster.get(third, lookup("email", p["email"]))
                if status == 200 and body["profile"]:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError(f"third worker never answered; statuses seen {seen}")
    finally:
        third.stop()
    assert 200 in seen
