"""The profile API and the single-customer-view page, on every worker's web port.

``GET /profiles/lookup?type=email&value=…`` and ``GET /profiles/{id}`` answer with one
profile: its identifiers and the links that tie them (with rule, event and time), traits,
consent, the recent activity across channels, the actions sent and the merge history.

The data is spread over workers: the identifier index and the graph (``identity-owners``,
``identity-nodes``) on the worker that holds the single resolver partition, the profile state
on the worker that holds the partition its id hashes to. Any worker takes a request: one that
does not hold the graph forwards it to the one that does (found in the
:class:`~scv.streams.directory.Directory`), which reads the graph, then fetches the state
part from its holder (``GET /profiles/{id}/state``, read locally when it holds it too) and
answers with both. A forwarded request is marked (``X-SCV-Forwarded``) and never forwarded
again; a worker that finds the directory out of date (a rebalance is moving partitions)
answers 503 with ``Retry-After``.

Reads run in the web thread while the stream loop writes the same tables. Each key reads as
the loop last wrote it: the partition's pending writes (a dict the loop only adds to and then
replaces whole, so one lookup in it is safe), else the committed RocksDB value.
Decoded objects the stages cache are never touched. A partition closed under a read (a
revoke) answers 503 like one that is not here.

Personal data never reaches a log line or a URL the worker logs: the access log is off and
the token travels in the ``Authorization`` header only.
"""

from __future__ import annotations

import logging
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from aiohttp import web

from scv.domain import households
from scv.domain.graph import GENERIC, HOUSEHOLD, RETIRED, ProfileNode
from scv.domain.normalize import NormalizeConfig, canonical_value
from scv.domain.profile import ProfileState
from scv.domain.view import profile_view, state_view
from scv.kafka import partition_for
from scv.settings import Settings
from scv.streams.directory import Directory, Holdings
from scv.streams.profiles import MOVED
from scv.streams.state import Table
from scv.streams.web import authorized

if TYPE_CHECKING:
    from scv.streams.worker import Worker

log = logging.getLogger(__name__)

#: Identifier types a lookup accepts (every type an event can carry).
IDENTIFIER_TYPES = ("customer_id", "email", "phone", "device_id", "anonymous_id")
#: Marks a request one worker sent another: it is answered locally or not at all.
FORWARDED = "X-SCV-Forwarded"
#: Names the worker that read the graph (the bench tells direct from forwarded answers).
SERVED_BY = "X-SCV-Served-By"
#: Most merges followed from an old profile id to the profile that absorbed it.
MAX_MERGE_HOPS = 8
#: Longest a worker waits for another worker's answer.
PEER_TIMEOUT_S = 3.0

_PROFILE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_MAX_VALUE_LEN = 320
STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
#: The page loads nothing from elsewhere and runs no inline script.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class Unavailable(Exception):
    """The data is on a partition nobody can serve right now (rebalance): retry shortly."""


def _json(body: object, status: int = 200, served_by: str | None = None) -> web.Response:
    headers = {"Cache-Control": "no-store"}
    if served_by is not None:
        headers[SERVED_BY] = served_by
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def _error(status: int, message: str) -> web.Response:
    response = _json({"error": message}, status)
    if status == 503:
        response.headers["Retry-After"] = "1"
    return response


def advertised_url(settings: Settings) -> str:
    """Where other workers reach this one: ``SCV_WEB_URL``, else the bind address (the host
    name when bound to every interface, which peers cannot dial)."""
    if settings.web_url:
        return settings.web_url.rstrip("/")
    host = settings.web_host
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    return f"http://{host}:{settings.web_port}"


def read(table: Table, partition: int, key: bytes) -> bytes | None:
    """``key`` as the stream loop last wrote it (pending, staged, committing, else in
    RocksDB); Unavailable when
    this worker does not hold the partition (or it is closed under the read).

    Consistent per key: a batch's writes become visible key by key as its flush adds them, so
    for an instant an owner may name a profile whose node is not written yet."""
    part = table.open_partitions.get(partition)
    if part is None:
        raise Unavailable(f"{table.name}[{partition}] is not held here")
    # The loop moves a write forward, pending -> staged -> sealed -> RocksDB, replacing each
    # layer whole (or applying to RocksDB before clearing ``sealed``); looking in the same
    # order, a reader finds the newest value it has not already passed.
    for layer in (part.pending, part.staged, part.sealed):
        if key in layer:
            return layer.get(key)
    try:
        value: bytes | None = part.db.get(key)
    except Exception as exc:  # closed by a revoke while we read
        raise Unavailable(f"{table.name}[{partition}] is moving") from exc
    return value


class ProfileApi:
    """The handlers; one per worker, living in the web thread."""

    def __init__(self, settings: Settings, worker: Worker) -> None:
        self.settings = settings
        self.worker = worker
        self.url = advertised_url(settings)
        self.normalize_config = NormalizeConfig(default_region=settings.default_region)
        pipeline = worker.pipeline
        self.owners, self.nodes = pipeline.owners, pipeline.nodes
        self.profiles = pipeline.profile_table
        self.partitions = settings.stage_partitions
        self.directory = Directory(settings, self.url, self.holdings)
        self._session: aiohttp.ClientSession | None = None

    # --- what this worker holds ----------------------------------------------------------
    def holdings(self) -> Holdings:
        """The table partitions this worker can answer for (none until restored)."""
        if not self.worker.ready.is_set():
            return {}
        return {
            table.name: sorted(table.open_partitions.copy())
            for table in (self.nodes, self.profiles)
            if table.open_partitions
        }

    def _holds(self, table: Table, partition: int) -> bool:
        return self.worker.ready.is_set() and partition in table.open_partitions

    # --- lifecycle (aiohttp signals, in the web thread's loop) ----------------------------
    async def start(self, app: web.Application) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PEER_TIMEOUT_S))
        self.directory.start()

    async def stop(self, app: web.Application) -> None:
        self.directory.stop()
        if self._session is not None:
            await self._session.close()

    # --- handlers ------------------------------------------------------------------------
    async def lookup(self, request: web.Request) -> web.Response:
        """``?type=&value=``: the profile that owns the identifier (normalised as events are)."""
        if not authorized(self.settings, request):
            return _error(401, "unauthorized")
        kind, value = request.query.get("type", ""), request.query.get("value", "")
        if kind not in IDENTIFIER_TYPES:
            return _error(400, f"type must be one of {', '.join(IDENTIFIER_TYPES)}")
        if not value.strip() or len(value) > _MAX_VALUE_LEN:
            return _error(400, f"value must be 1 to {_MAX_VALUE_LEN} characters")
        canonical = canonical_value(kind, value, self.normalize_config)
        if canonical is None:
            return _error(400, f"value is not a valid {kind}")
        try:
            if not self._holds(self.nodes, 0):
                return await self._forward(request, self.nodes.name, 0)
            owner = read(self.owners, 0, f"{kind}:{canonical}".encode())
            if owner is None:
                return _error(404, f"no profile has this {kind}")
            if owner.decode() == GENERIC:
                return _error(404, f"this {kind} is shared by several people and links nobody")
            if owner.decode() == HOUSEHOLD:
                store = TableOwners(self.owners)
                hid = households.of_value(store, f"{kind}:{canonical}")
                home = households.snapshot(store, hid) if hid is not None else None
                message = f"this {kind} is shared by a household; look up one of its members"
                return _json({"error": message, "household": home}, status=404)
            return await self._assemble(owner.decode(), request, owned=True)
        except Unavailable as exc:
            return _error(503, str(exc))

    async def profile(self, request: web.Request) -> web.Response:
        """One profile by id; an id merged away answers with the profile that absorbed it."""
        if not authorized(self.settings, request):
            return _error(401, "unauthorized")
        pid = request.match_info["profile_id"]
        if not _PROFILE_ID.match(pid):
            return _error(400, "not a profile id")
        try:
            if not self._holds(self.nodes, 0):
                return await self._forward(request, self.nodes.name, 0)
            return await self._assemble(pid, request)
        except Unavailable as exc:
            return _error(503, str(exc))

    async def state(self, request: web.Request) -> web.Response:
        """The profile-state half of a view, from the worker holding the id's partition:
        ``{"profile": view}``, ``{"profile": null}`` or ``{"moved_to": survivor}``."""
        if not authorized(self.settings, request):
            return _error(401, "unauthorized")
        pid = request.match_info["profile_id"]
        if not _PROFILE_ID.match(pid):
            return _error(400, "not a profile id")
        partition = partition_for(pid.encode(), self.partitions)
        try:
            if not self._holds(self.profiles, partition):
                return await self._forward(request, self.profiles.name, partition)
            return _json(self._local_slot(pid, partition), served_by=self.url)
        except Unavailable as exc:
            return _error(503, str(exc))

    async def workers(self, request: web.Request) -> web.Response:
        """Who holds which table partition (the directory this worker routes by)."""
        if not authorized(self.settings, request):
            return _error(401, "unauthorized")
        return _json({"self": self.url, "workers": self.directory.entries()})

    # --- assembling a view ---------------------------------------------------------------
    async def _assemble(self, pid: str, request: web.Request, owned: bool = False) -> web.Response:
        """Graph here (this worker holds it), state from the id's partition, merges followed.

        ``owned``: an identifier's owner named ``pid``, so its node exists or is being
        written by the same flush (reads are consistent per key): a missing one is a retry."""
        merged: list[str] = []
        for _ in range(MAX_MERGE_HOPS):
            raw = read(self.nodes, 0, pid.encode())
            if raw is None and owned:
                raise Unavailable("the profile is being written")
            if raw is None:
                return _error(404, "no profile with this id")
            if raw == RETIRED:  # merged away, or emptied by a split or erasure
                survivor = (await self._slot(pid, request)).get("moved_to")
                if not survivor:
                    return _error(404, "this profile no longer exists")
                merged.append(pid)
                pid = str(survivor)
                continue
            node = ProfileNode.from_dict(orjson.loads(raw))
            home = households.view_for(TableOwners(self.owners), node.keys())
            body = profile_view(node, (await self._slot(pid, request)).get("profile"), home)
            if merged:
                body["merged_away"] = merged  # the ids asked for, each absorbed by the next
            return _json(body, served_by=self.url)
        return _error(404, "too many merges to follow")

    async def _slot(self, pid: str, request: web.Request) -> dict[str, Any]:
        partition = partition_for(pid.encode(), self.partitions)
        if self._holds(self.profiles, partition):
            return self._local_slot(pid, partition)
        url = self.directory.owner(self.profiles.name, partition)
        if url is None or url == self.url:
            raise Unavailable(f"nobody holds {self.profiles.name}[{partition}] right now")
        status, body, _ = await self._get(url, f"/profiles/{pid}/state", request)
        if status != 200:
            raise Unavailable(f"{self.profiles.name}[{partition}]: its holder answered {status}")
        slot: dict[str, Any] = orjson.loads(body)
        return slot

    def _local_slot(self, pid: str, partition: int) -> dict[str, Any]:
        raw = read(self.profiles, partition, pid.encode())
        if raw is None:
            return {"profile": None}
        stored = orjson.loads(raw)
        if MOVED in stored:
            return {"moved_to": stored[MOVED]}
        return {"profile": state_view(ProfileState.from_dict(stored, copy=False))}

    # --- talking to other workers --------------------------------------------------------
    async def _forward(self, request: web.Request, table: str, partition: int) -> web.Response:
        """Pass ``request`` to the holder of ``table[partition]`` and relay its answer."""
        if request.headers.get(FORWARDED):
            raise Unavailable(f"{table}[{partition}] moved; the directory is catching up")
        url = self.directory.owner(table, partition)
        if url is None or url == self.url:
            raise Unavailable(f"nobody holds {table}[{partition}] right now")
        status, body, served_by = await self._get(url, request.rel_url.path_qs, request)
        response = web.Response(body=body, status=status, content_type="application/json")
        response.headers["Cache-Control"] = "no-store"
        if served_by is not None:
            response.headers[SERVED_BY] = served_by
        if status == 503:
            response.headers["Retry-After"] = "1"
        return response

    async def _get(
        self, base: str, path: str, request: web.Request
    ) -> tuple[int, bytes, str | None]:
        """GET ``path`` from the worker at ``base``: status, body and who served it."""
        assert self._session is not None
        headers = {FORWARDED: "1"}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        try:
            async with self._session.get(base + path, headers=headers) as resp:
                return resp.status, await resp.read(), resp.headers.get(SERVED_BY)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("worker %s did not answer: %s", base, type(exc).__name__)
            raise Unavailable("the worker holding the data did not answer") from exc


class TableOwners:
    """The owners table read as the web thread reads it (:func:`read`), with the one method
    :mod:`scv.domain.households` needs of a graph store."""

    def __init__(self, owners: Table) -> None:
        self.owners = owners

    def get_owner(self, key: str) -> str | None:
        raw = read(self.owners, 0, key.encode())
        return raw.decode() if raw is not None else None


async def _page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers=_PAGE_HEADERS)


async def _to_page(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ui/")


async def _static_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/ui/"):
        response.headers.update(_PAGE_HEADERS)


def add_profile_api(app: web.Application, settings: Settings, worker: Worker) -> ProfileApi:
    """Register the profile API and the page on the worker's web app."""
    api = ProfileApi(settings, worker)
    app.on_startup.append(api.start)
    app.on_cleanup.append(api.stop)
    app.on_response_prepare.append(_static_headers)
    app.router.add_get("/profiles/lookup", api.lookup)
    app.router.add_get("/profiles/{profile_id}", api.profile)
    app.router.add_get("/profiles/{profile_id}/state", api.state)
    app.router.add_get("/workers", api.workers)
    app.router.add_get("/", _to_page)
    app.router.add_get("/ui/", _page)
    app.router.add_static("/ui/", STATIC)
    return api
