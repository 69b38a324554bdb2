"""``scv bench api``: how fast the profile API answers a call-centre agent's search.

Workers process the demo workload to the end; then one client looks up ``lookups`` identifiers
an agent would type (emails, phones as people write them, customer ids), drawn from the live
profiles, each a whole ``GET /profiles/lookup`` on a kept-alive connection, one at a time.
With several workers the client spreads its requests over all of them, so some requests are
forwarded to the graph's holder and some states fetched from another worker; the report
splits latency by the number of worker-to-worker hops (0, 1 or 2) a lookup took.
"""

from __future__ import annotations

import http.client
import random
import secrets
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import orjson

from scv.connectors.demo import generate
from scv.demo import local_pipeline, produce_events
from scv.kafka import partition_for
from scv.runner import WorkerProcess, latest_by_key, read_topic, wait_drained
from scv.streams.api import SERVED_BY
from scv.topics import Topics

#: The identifier types a call-centre agent searches by.
SEARCHED = ("email", "phone", "customer_id")
WARM_UP = 100


def quantiles_ms(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99/max of ``samples`` (seconds) in milliseconds (nearest rank)."""
    ordered = sorted(samples)
    if not ordered:
        return {}

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    return {
        "p50": round(rank(0.50) * 1000, 3),
        "p95": round(rank(0.95) * 1000, 3),
        "p99": round(rank(0.99) * 1000, 3),
        "max": round(ordered[-1] * 1000, 3),
    }


def _targets(profiles: dict[bytes, Any], lookups: int, rng: random.Random) -> list[tuple[str, str]]:
    """``lookups`` (type, value) pairs owned by live profiles, phones in national format."""
    owned = []
    for value in profiles.values():
        identifiers = orjson.loads(value)["identifiers"]
        for kind in SEARCHED:
            for v in identifiers.get(kind, []):
                if kind == "phone" and v.startswith("+44"):
                    v = "0" + v[3:]  # as an agent types a caller's number
                owned.append((kind, v))
    if not owned:
        raise RuntimeError("no searchable identifiers in the live profiles")
    return [rng.choice(owned) for _ in range(lookups)]


class _Client:
    """Lookups spread over the workers, one at a time, each timed from request to last byte."""

    def __init__(self, procs: list[WorkerProcess], token: str, partitions: int) -> None:
        self.procs = procs
        self.partitions = partitions
        self.headers = {"Authorization": f"Bearer {token}"}
        self.connections = [
            http.client.HTTPConnection(p.settings.web_host, p.settings.web_port, timeout=10)
            for p in procs
        ]
        self.connections[0].request("GET", "/workers", headers=self.headers)
        workers = orjson.loads(self.connections[0].getresponse().read())["workers"]
        #: profile partition -> the worker holding it
        self.holder = {p: url for url, holds in workers.items() for p in holds.get("profiles", [])}

    def run(self, targets: list[tuple[str, str]]) -> dict[str, Any]:
        """Time every lookup of ``targets``; the report (the first ``WARM_UP`` not counted)."""
        samples: dict[int, list[float]] = {0: [], 1: [], 2: []}
        statuses: dict[int, int] = {}
        started = time.perf_counter()
        for i, (kind, value) in enumerate(targets):
            if i == WARM_UP:
                started = time.perf_counter()
            worker = i % len(self.procs)
            conn = self.connections[worker]
            path = f"/profiles/lookup?type={kind}&value={urllib.parse.quote(value)}"
            t0 = time.perf_counter()
            conn.request("GET", path, headers=self.headers)
            resp = conn.getresponse()
            body = resp.read()
            elapsed = time.perf_counter() - t0
            if i < WARM_UP:
                continue
            statuses[resp.status] = statuses.get(resp.status, 0) + 1
            if resp.status == 200:
                graph = resp.getheader(SERVED_BY)
                pid = orjson.loads(body)["profile_id"].encode()
                state = self.holder[partition_for(pid, self.partitions)]
                samples[(graph != self.procs[worker].url) + (state != graph)].append(elapsed)
        seconds = time.perf_counter() - started
        every = [t for ts in samples.values() for t in ts]
        return {
            "lookups": len(targets) - WARM_UP,
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "lookups_per_second": round((len(targets) - WARM_UP) / seconds, 1),
            "latency_ms": quantiles_ms(every),
            "by_hops": {
                str(hops): {"lookups": len(ts), **quantiles_ms(ts)}
                for hops, ts in samples.items()
                if ts
            },
        }

    def close(self) -> None:
        for conn in self.connections:
            conn.close()


def run_api_bench(
    events: int,
    lookups: int,
    *,
    workers: int = 1,
    seed: int = 7,
    under_load: bool = False,
    bootstrap: str | None = None,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Demo workload through ``workers`` workers, then ``lookups`` timed lookups.

    ``under_load`` also times ``lookups`` more while the workers take in another ``events``
    demo events (a second seed) as fast as the broker delivers them: how much the stream
    loop, which shares the process (and the GIL) with the web thread, slows the API down.
    """
    token = secrets.token_urlsafe(16)
    settings = {"api_token": token, "cart_window_s": 5.0}
    with local_pipeline(
        "api", workers=workers, bootstrap=bootstrap, settings=settings, work_dir=work_dir
    ) as (base, procs, _):
        inputs = Topics(base).dead_lettered
        count = produce_events(base, iter(generate(events, seed)), lambda ev: None)
        wait_drained(base, inputs, 600)
        live = latest_by_key(read_topic(base, Topics(base).profiles))
        rng = random.Random(seed)
        client = _Client(procs, token, base.stage_partitions)
        try:
            report: dict[str, Any] = {
                "events": count,
                "profiles": len(live),
                "workers": workers,
                **client.run(_targets(live, lookups + WARM_UP, rng)),
                "seed": seed,
            }
            if under_load:
                more = generate(events, seed + 1)
                feeder = threading.Thread(
                    target=produce_events, args=(base, iter(more), lambda ev: None)
                )
                loaded_from = time.time()
                feeder.start()
                loaded = client.run(_targets(live, lookups + WARM_UP, rng))
                loaded_until = time.time()
                feeder.join()
                drained = wait_drained(base, inputs, 600, settle=0.5)
                report["under_load"] = {
                    "events": events,
                    "seconds_timed": round(loaded_until - loaded_from, 2),
                    "seconds_to_drain": round(drained - loaded_from, 2),
                    **loaded,
                }
        finally:
            client.close()
    return report
