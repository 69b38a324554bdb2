"""The worker's own HTTP endpoints: liveness, readiness, Prometheus metrics, explanations.

Faust's table and router pages are switched off in ``app.py``. Only ``/profiles/{id}/explain``
returns personal data, and it requires ``SCV_API_TOKEN`` as a bearer token when one is set.
"""

from __future__ import annotations

import hmac
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from scv.domain.explain import explain, render_text
from scv.domain.graph import RETIRED, ProfileNode
from scv.streams.app import app, nodes, settings


def is_ready() -> bool:
    """Ready once tables are recovered and no rebalance is in progress."""
    recovery = app.tables.recovery  # type: ignore[attr-defined]
    return bool(recovery.completed.is_set()) and not app.rebalancing


@app.page("/livez")
async def livez(web: Any, request: Any) -> Any:
    return web.json({"live": True})


@app.page("/readyz")
async def readyz(web: Any, request: Any) -> Any:
    ready = is_ready()
    return web.json({"ready": ready}, status=200 if ready else 503)


@app.page("/metrics")
async def metrics_page(web: Any, request: Any) -> Any:
    return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])


def authorized(request: Any) -> bool:
    """True when no token is configured or the request carries it (constant-time compare)."""
    if settings.api_token is None:
        return True
    sent = request.headers.get("Authorization", "")
    expected = f"Bearer {settings.api_token.get_secret_value()}"
    return hmac.compare_digest(sent.encode(), expected.encode())


@app.page("/profiles/{profile_id}/explain")
@app.table_route(table=nodes, match_info="profile_id")
async def explain_page(web: Any, request: Any, profile_id: str) -> Any:
    """Why each identifier belongs to the profile (JSON; ``?format=text`` for prose).

    Routed to the worker that owns the identity graph (one partition)."""
    if not authorized(request):
        return web.json({"error": "unauthorized"}, status=401)
    raw = nodes.get(profile_id.encode())
    if raw is None or raw == RETIRED:  # unknown, or merged away
        body = {"error": "no live profile with this id (merged away ids: see profiles.merges.v1)"}
        return web.json(body, status=404)
    expl = explain(ProfileNode.from_dict(orjson.loads(raw)))
    if request.query.get("format") == "text":
        return web.text(render_text(expl) + "\n")
    return web.json(expl)
