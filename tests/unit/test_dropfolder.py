"""The drop folder's file handling on real files: which are ready, where they go, restarts.

The producer here records what would be sent (the folder logic is what is under test);
tests/integration/test_operations.py runs a watcher against the broker and a worker.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import orjson
import pytest
from recorder import Recorder

from scv.connectors.dropfolder import MARKER, DropFolder, FolderBusy
from scv.connectors.replay import Undelivered


def drop(folder: Path, name: str, n: int = 3, age_s: float = 60.0) -> Path:
    """A JSON-lines file of ``n`` records, last modified ``age_s`` ago."""
    path = folder / name
    path.write_bytes(b"".join(orjson.dumps({"event_id": f"{name}-{i}"}) + b"\n" for i in range(n)))
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_only_complete_files_in_known_formats_are_ready(tmp_path: Path) -> None:
    with DropFolder(tmp_path, settle_s=5.0) as folder:
        old = drop(tmp_path, "b.jsonl", age_s=120)
        older = drop(tmp_path, "c.csv", age_s=300)
        drop(tmp_path, "fresh.jsonl", age_s=0)  # still being written, maybe
        for name in ("x.jsonl.tmp", "x.parquet.part", ".hidden.jsonl", "_SUCCESS", "notes.txt"):
            drop(tmp_path, name)
        assert folder.ready() == [older, old]  # oldest first
        assert folder.ready(now=time.time() + 10) == [older, old, tmp_path / "fresh.jsonl"]
    with DropFolder(tmp_path, settle_s=5.0, fmt="jsonl") as forced:
        assert tmp_path / "notes.txt" in forced.ready()  # a forced format reads any name


def test_files_go_to_done_or_failed_and_the_watch_goes_on(tmp_path: Path) -> None:
    producer = Recorder()
    drop(tmp_path, "1.jsonl", n=4, age_s=30)
    bad = tmp_path / "2.csv"
    bad.write_text("a,a.b\n1,2\n")  # column a clashes with a.b: cannot be read
    os.utime(bad, (time.time() - 20, time.time() - 20))
    drop(tmp_path, "3.jsonl", n=2, age_s=10)
    (tmp_path / "done").mkdir()
    drop(tmp_path / "done", "1.jsonl", n=1)  # same name finished earlier: kept, not overwritten

    with DropFolder(tmp_path, settle_s=1.0) as folder:
        outcomes = list(folder.watch("raw.web.v1", producer, once=True))

    assert [(o.name, o.status, o.records) for o in outcomes] == [
        ("1.jsonl", "done", 4),
        ("2.csv", "failed", 0),
        ("3.jsonl", "done", 2),
    ]
    assert len(producer.values) == 6
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == [
        "1.jsonl",
        "1.jsonl.1",
        "3.jsonl",
    ]
    note = (tmp_path / "failed" / "2.csv.error").read_text()
    assert "clashes" in note and "0 record(s) were sent" in note
    assert (tmp_path / "failed" / "2.csv").read_text() == "a,a.b\n1,2\n"  # kept as it came
    assert not list(tmp_path.glob("*.jsonl")) and not (tmp_path / MARKER).exists()


def test_a_file_delivered_before_a_restart_is_not_sent_again(tmp_path: Path) -> None:
    producer = Recorder()
    sent = drop(tmp_path, "a.jsonl", n=3)
    changed = drop(tmp_path, "b.jsonl", n=2)
    with DropFolder(tmp_path, settle_s=1.0) as folder:
        # As if the process died right after the marker was written, before the move.
        folder._mark_finished(sent, 3)
    with DropFolder(tmp_path, settle_s=1.0) as folder:
        outcomes = list(folder.watch("t", producer, once=True))
    assert [(o.name, o.status) for o in outcomes] == [("a.jsonl", "resumed"), ("b.jsonl", "done")]
    assert len(producer.values) == 2  # only b's records
    assert (tmp_path / "done" / "a.jsonl").exists() and (tmp_path / "done" / "b.jsonl").exists()

    # A marker for a file that changed since (same name, new content) does not skip it.
    again = drop(tmp_path, "a.jsonl", n=5)
    with DropFolder(tmp_path, settle_s=1.0) as folder:
        folder._mark_finished(again, 5)
        again.write_bytes(again.read_bytes() + b'{"event_id": "late"}\n')
        os.utime(again, (time.time() - 60, time.time() - 60))
    with DropFolder(tmp_path, settle_s=1.0) as folder:
        outcomes = list(folder.watch("t", producer, once=True))
    assert [(o.name, o.status, o.records) for o in outcomes] == [("a.jsonl", "done", 6)]
    assert changed.name in {p.name for p in (tmp_path / "done").iterdir()}


def test_undelivered_records_leave_the_file_in_place(tmp_path: Path) -> None:
    path = drop(tmp_path, "a.jsonl")
    with DropFolder(tmp_path, settle_s=1.0) as folder, pytest.raises(Undelivered):
        list(folder.watch("t", Recorder(undelivered=3), once=True))
    assert path.exists()  # sent again once the broker is back
    assert not (tmp_path / MARKER).exists()


def test_one_watcher_per_folder(tmp_path: Path) -> None:
    with DropFolder(tmp_path), pytest.raises(FolderBusy):
        DropFolder(tmp_path).__enter__()
    with DropFolder(tmp_path) as again:  # released when the first one left
        assert again is not None


def test_a_stop_request_ends_the_watch(tmp_path: Path) -> None:
    stop = threading.Event()
    outcomes: list[str] = []

    def run() -> None:
        with DropFolder(tmp_path, settle_s=0.0) as folder:
            for o in folder.watch("t", Recorder(), interval_s=0.05, stop=stop):
                outcomes.append(o.name)

    watcher = threading.Thread(target=run)
    watcher.start()
    tmp = tmp_path / "late.jsonl.tmp"
    tmp.write_bytes(b'{"event_id": "x"}\n')
    tmp.rename(tmp_path / "late.jsonl")  # the rename convention
    deadline = time.monotonic() + 10
    while not outcomes and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    watcher.join(5)
    assert not watcher.is_alive()
    assert outcomes == ["late.jsonl"]
