"""What the worker's HTTP port shows, and to whom (``scv.streams.web``).

With ``SCV_API_TOKEN`` set, only the probes answer without it; everything else — the
explanation (personal data), the metrics (internals), and any path added later — answers
401 unless the request carries ``Authorization: Bearer <token>``. The app is served by
aiohttp's test server over a real socket, on the real stages (tables in memory).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from stagekit import Outbox, feed, load_examples

from scv.streams import web as web_module
from scv.streams.web import OPEN_PATHS, OPEN_PREFIXES, routes
from scv.streams.worker import Pipeline
from scv.topics import Topics

MakePipeline = Callable[..., Pipeline]
TOKEN = "s3cret-token"
WEB = load_examples().WEB


def get_all(
    pipeline: Pipeline, requests: list[tuple[str, dict[str, str]]]
) -> list[tuple[int, bytes]]:
    """(status, body) of each GET against the worker's app."""
    worker: Any = SimpleNamespace(pipeline=pipeline, ready=threading.Event())
    worker.ready.set()
    app = routes(pipeline.settings, worker)

    async def run() -> list[tuple[int, bytes]]:
        async with TestClient(TestServer(app)) as client:
            answers = []
            for path, headers in requests:
                resp = await client.get(path, headers=headers)
                answers.append((resp.status, await resp.read()))
            return answers

    return asyncio.run(run())


@pytest.fixture
def guarded(make_pipeline: MakePipeline, sent: Outbox) -> tuple[Pipeline, str]:
    """A pipeline whose settings carry a token, with one profile in the graph."""
    pipeline = make_pipeline(api_token=SecretStr(TOKEN))
    topics = Topics(pipeline.settings)
    feed(pipeline, topics.raw("web"), orjson.dumps(WEB[4]))  # signup: customer id, cookie
    feed(pipeline, topics.identity_events, sent[-1].value)
    routed = [m for m in sent if m.topic == topics.profile_events]
    return pipeline, orjson.loads(routed[-1].value)["profile_id"]


def test_with_a_token_only_the_probes_answer_without_it(guarded: tuple[Pipeline, str]) -> None:
    pipeline, pid = guarded
    paths = ["/livez", "/readyz", "/metrics", f"/profiles/{pid}/explain", "/no-such-page"]
    answers = dict(zip(paths, get_all(pipeline, [(p, {}) for p in paths]), strict=True))
    assert answers["/livez"] == (200, b'{"live":true}')
    assert answers["/readyz"] == (200, b'{"ready":true}')
    for path in paths[2:]:
        assert answers[path] == (401, b'{"error":"unauthorized"}'), path


@pytest.mark.parametrize(
    "header",
    [
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},  # no scheme
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer "},
        {"X-Api-Token": TOKEN},
    ],
)
def test_anything_but_the_exact_bearer_token_is_refused(
    guarded: tuple[Pipeline, str], header: dict[str, str]
) -> None:
    pipeline, pid = guarded
    answers = get_all(pipeline, [("/metrics", header), (f"/profiles/{pid}/explain", header)])
    assert [status for status, _ in answers] == [401, 401]


def test_the_token_in_the_query_string_is_not_enough(guarded: tuple[Pipeline, str]) -> None:
    """Query strings end up in access logs and browser history."""
    pipeline, _ = guarded
    assert get_all(pipeline, [(f"/metrics?token={TOKEN}", {})])[0][0] == 401


def test_with_the_token_the_pages_answer(guarded: tuple[Pipeline, str]) -> None:
    pipeline, pid = guarded
    auth = {"Authorization": f"Bearer {TOKEN}"}
    (metrics, explained, unknown) = get_all(
        pipeline, [("/metrics", auth), (f"/profiles/{pid}/explain", auth), ("/x", auth)]
    )
    assert metrics[0] == 200 and b"scv_events_in_total" in metrics[1]
    assert explained[0] == 200
    assert "customer_id:C-1001" in explained[1].decode()
    assert unknown[0] == 404


def test_every_route_but_the_probes_is_behind_the_token(guarded: tuple[Pipeline, str]) -> None:
    """A page added later is guarded too: the check is a middleware over all routes."""
    pipeline, _ = guarded
    worker: Any = SimpleNamespace(pipeline=pipeline, ready=threading.Event())
    app = routes(pipeline.settings, worker)
    paths = {
        r.resource.canonical for r in app.router.routes() if isinstance(r.resource, web.Resource)
    }
    assert paths > OPEN_PATHS
    page = sorted(p for p in paths if p.startswith(OPEN_PREFIXES))
    guarded_paths = sorted(p.replace("{profile_id}", "p_x") for p in paths - OPEN_PATHS - set(page))
    assert guarded_paths  # metrics and explain at least
    answers = get_all(pipeline, [(p, {}) for p in guarded_paths])
    assert all(status == 401 for status, _ in answers), dict(
        zip(guarded_paths, answers, strict=True)
    )
    # the page itself holds no data: it loads, then asks for the token when the API says 401
    assert page and [s for s, _ in get_all(pipeline, [(p, {}) for p in page])] == [200] * len(page)


def test_without_a_token_the_pages_are_open_and_a_public_port_is_warned_about(
    make_pipeline: MakePipeline, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = make_pipeline(web_host="0.0.0.0", web_port=0)
    assert [s for s, _ in get_all(pipeline, [("/metrics", {})])] == [200]
    worker: Any = SimpleNamespace(pipeline=pipeline, ready=threading.Event())
    with caplog.at_level(logging.WARNING, logger="scv.streams.web"):
        server = web_module.start_web(pipeline.settings, worker)
        server.stop()
    assert "SCV_API_TOKEN is unset" in caplog.text


def test_a_loopback_port_without_a_token_is_not_warned_about(
    make_pipeline: MakePipeline, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = make_pipeline(web_host="127.0.0.1", web_port=0)
    worker: Any = SimpleNamespace(pipeline=pipeline, ready=threading.Event())
    with caplog.at_level(logging.WARNING, logger="scv.streams.web"):
        web_module.start_web(pipeline.settings, worker).stop()
    assert "SCV_API_TOKEN" not in caplog.text
