"""The worker's own HTTP endpoints: liveness, readiness and Prometheus metrics.

Faust's table and router pages are switched off in ``app.py``; nothing here returns
personal data.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from scv.streams.app import app


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
