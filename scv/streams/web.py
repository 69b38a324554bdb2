"""The worker's own HTTP endpoints: liveness, readiness, Prometheus metrics, explanations;
the profile API and the agent's page are in ``scv.streams.api``.

They run on an aiohttp server in a thread of their own, so a slow scrape never stalls the
stream loop. Nothing dumps tables.

When ``SCV_API_TOKEN`` is set, every path but the two probes and the page's static files
(:data:`OPEN_PATHS`, :data:`OPEN_PREFIXES`) requires it as a bearer token: the profile API
and ``/profiles/{id}/explain`` return personal data, and ``/metrics`` shows the worker's
internals (DLQ reasons, rates, matcher decisions); Prometheus sends the token with
``authorization: {credentials: ...}`` in its scrape config. The check is a middleware, so
an endpoint added later is protected without remembering to be.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from scv.domain.explain import explain, render_text
from scv.domain.graph import RETIRED, ProfileNode
from scv.settings import Settings

if TYPE_CHECKING:
    from scv.streams.worker import Worker

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


#: Paths answered without a token: orchestrators probe them and they say only up/ready.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/"})
#: The agent's page (HTML, JS, CSS: no data); it asks for the token when the API says 401.
OPEN_PREFIXES = ("/ui/",)


def authorized(settings: Settings, request: web.Request) -> bool:
    """True when no token is configured or the request carries it (constant-time compare)."""
    if settings.api_token is None:
        return True
    sent = request.headers.get("Authorization", "")
    expected = f"Bearer {settings.api_token.get_secret_value()}"
    return hmac.compare_digest(sent.encode(), expected.encode())


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def probes(settings: Settings, is_ready: Callable[[], bool]) -> web.Application:
    """``/livez``, ``/readyz`` (``is_ready``: partitions held, state restored) and
    ``/metrics``, behind the token check: what every scv process serves, the core's worker
    and the activation worker alike."""

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES) or authorized(settings, request):
            return await handler(request)
        return _json({"error": "unauthorized"}, status=401)

    app = web.Application(middlewares=[require_token])

    async def livez(request: web.Request) -> web.Response:
        return _json({"live": True})

    async def readyz(request: web.Request) -> web.Response:
        ready = is_ready()
        return _json({"ready": ready}, status=200 if ready else 503)

    async def metrics_page(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    return app


def routes(settings: Settings, worker: Worker) -> web.Application:
    app = probes(settings, worker.ready.is_set)

    async def explain_page(request: web.Request) -> web.Response:
        """Why each identifier belongs to the profile (JSON; ``?format=text`` for prose).

        Answered by the worker that owns the identity graph (one partition)."""
        from scv.domain.households import view_for
        from scv.streams.api import TableOwners, Unavailable, read

        try:
            raw = read(worker.pipeline.nodes, 0, request.match_info["profile_id"].encode())
        except Unavailable:
            body = {"error": "this worker does not hold the identity graph; ask another"}
            return _json(body, status=421)
        if raw is None or raw == RETIRED:  # unknown, or merged away
            body = {
                "error": "no live profile with this id (merged away ids: see profiles.merges.v1)"
            }
            return _json(body, status=404)
        node = ProfileNode.from_dict(orjson.loads(raw))
        try:
            home = view_for(TableOwners(worker.pipeline.owners), node.keys())
        except Unavailable:
            body = {"error": "this worker does not hold the identity graph; ask another"}
            return _json(body, status=421)
        expl = explain(node, home)
        if request.query.get("format") == "text":
            return web.Response(text=render_text(expl) + "\n")
        return _json(expl)

    app.router.add_get("/profiles/{profile_id}/explain", explain_page)
    from scv.streams.api import add_profile_api  # it imports authorized() from here

    add_profile_api(app, settings, worker)
    return app


class WebServer:
    """An aiohttp server on its own event loop in a daemon thread."""

    def __init__(self, settings: Settings, app: web.Application) -> None:
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._serve, args=(settings.web_host, settings.web_port), daemon=True
        )

    def _serve(self, host: str, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, host, port)
            self._loop.run_until_complete(site.start())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def start(self) -> WebServer:
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise RuntimeError(f"worker web server failed to start: {self._error}")
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


def start_web(settings: Settings, worker: Worker) -> WebServer:
    warn_if_open(settings)
    return WebServer(settings, routes(settings, worker)).start()


def warn_if_open(settings: Settings) -> None:
    if settings.api_token is None and not _loopback(settings.web_host):
        log.warning(
            "SCV_API_TOKEN is unset and the HTTP port listens on %s: /metrics and "
            "/profiles/{id}/explain answer anyone who can reach it",
            settings.web_host,
        )


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
