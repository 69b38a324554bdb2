"""State survives the worker: a new worker restores the tables from their changelogs.

Three lives of one pipeline on the test broker: a worker with a fresh state directory
(everything replayed from the changelogs), one that reuses a directory (replay from its
checkpoint), and one whose checkpoint claims more than the changelog holds (as after a
broker that lost its data): that partition is wiped and rebuilt.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline import Pipeline, now_iso, uid
from rocksdict import Options, Rdict

from scv.brokers import free_port
from scv.runner import WorkerProcess
from scv.settings import Settings
from scv.streams.state import CHECKPOINT
from scv.topics import create_topics

pytestmark = pytest.mark.integration


def visit(cookie: str, **fields: str) -> dict[str, str]:
    return {
        "event_id": uid("web"),
        "timestamp": now_iso(),
        "type": "page_view",
        "anonymous_id": cookie,
        "session_id": uid("sess"),
        **fields,
    }


def live(settings: Settings, state: Path, log: Path) -> tuple[WorkerProcess, Pipeline]:
    worker = WorkerProcess(
        settings.model_copy(update={"data_dir": state, "web_port": free_port()}), log
    ).start()
    worker.wait_ready(90)
    return worker, Pipeline(worker.settings, worker)


def profile_of(pipeline: Pipeline, cookie: str, events: int) -> dict[str, object]:
    """The profile owning ``cookie`` once it has counted ``events`` events."""

    def probe() -> dict[str, object] | None:
        found = pipeline.profile_with("anonymous_id", cookie)
        return found if found is not None and found["event_count"] == events else None

    return pipeline.wait_for(probe)


def test_a_new_worker_carries_on_where_the_last_one_stopped(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"stage_partitions": 2})
    create_topics(settings)
    cookie = uid("ck")
    login = visit(cookie, customer_id=uid("C")) | {"type": "login"}

    worker, pipeline = live(settings, tmp_path / "a", tmp_path / "a.log")
    try:
        pipeline.send("web", login, key=cookie.encode())
        first = profile_of(pipeline, cookie, 1)
        pipeline.drain()
    finally:
        pipeline.close()
        worker.stop()

    # A fresh directory: the graph and the profile come back from the changelogs alone.
    worker, pipeline = live(settings, tmp_path / "b", tmp_path / "b.log")
    try:
        pipeline.send("web", visit(cookie), key=cookie.encode())
        second = profile_of(pipeline, cookie, 2)
        assert second["profile_id"] == first["profile_id"]
        assert second["identifiers"] == first["identifiers"]
        pipeline.drain()
    finally:
        pipeline.close()
        worker.stop()

    # Directory "a" again, with a checkpoint beyond the changelog's end in every partition
    # of the profiles table: they are rebuilt, and "a" also catches up with what "b" wrote.
    options = Options(raw_mode=True)
    for part in sorted((tmp_path / "a" / "profiles").iterdir()):
        db = Rdict(str(part), options)
        db[CHECKPOINT] = b"1000000"
        db.close()
    worker, pipeline = live(settings, tmp_path / "a", tmp_path / "a2.log")
    try:
        pipeline.send("web", visit(cookie), key=cookie.encode())
        third = profile_of(pipeline, cookie, 3)
        assert third["profile_id"] == first["profile_id"]
        assert "rebuilding" in worker.tail(200)
    finally:
        pipeline.close()
        worker.stop()
