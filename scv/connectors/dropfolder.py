"""A watched drop folder: source systems leave export files, scv replays each one once.

Periodic exports (a CRM's CSV every five minutes, a lake job's Parquet every hour) arrive as
files. ``scv replay --watch DIR`` takes each *complete* file, produces its records exactly
like ``scv replay FILE``, and moves it to ``DIR/done/`` (or ``DIR/failed/`` with a
``.error`` note beside it). What counts as complete:

* **Rename convention (the reliable one).** Write to a name the watcher ignores, then rename
  into place (a rename within one file system is atomic): names starting with ``.`` or
  ``_`` and names ending in ``.tmp``, ``.part``, ``.partial``, ``.filepart``,
  ``.crdownload`` or ``.inprogress`` are never picked up.
* **Settle time (the safety net).** A file is taken only once it has not been modified for
  ``settle_s`` seconds, for writers that cannot rename. A writer that stalls longer than
  that mid-file would be read half-written: use the rename convention for those.
* **Format.** Only ``.jsonl``, ``.ndjson``, ``.csv`` and ``.parquet`` files, unless a format
  is forced, in which case every other complete file is read in it.

Restarts: a finished file is moved out of the folder, so it is never read again. The one
window between "all records delivered" and "moved" is covered by a marker
(``.scv-replay-finished.json``, written before the move); on start a file the marker names,
unchanged since, is moved to ``done/`` without being sent again. A file interrupted half-way
is sent again from its start: at least once. A repeated record links the same identifiers
the same way, orders are de-duplicated by order id and actions by their idempotency key, but
counters such as a profile's ``event_count`` count it twice. One watcher per folder: a lock
file (``.scv-replay.lock``) makes a second one fail at start.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson

from scv.connectors.progress import Progress
from scv.connectors.replay import ProducerLike, Undelivered, replay

__all__ = ["DropFolder", "FolderBusy", "Outcome"]

log = logging.getLogger(__name__)

TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".filepart", ".crdownload", ".inprogress")
FORMATS = (".jsonl", ".ndjson", ".csv", ".parquet")
MARKER = ".scv-replay-finished.json"
LOCK = ".scv-replay.lock"


class FolderBusy(RuntimeError):
    """Another watcher holds the folder's lock."""


@dataclass
class Outcome:
    """What happened to one file."""

    name: str
    status: str  # "done", "failed" or "resumed" (finished before a restart, not re-sent)
    records: int = 0
    seconds: float = 0.0
    error: str | None = None
    moved_to: Path | None = None


@dataclass
class DropFolder:
    """The folder, its ``done/`` and ``failed/`` subfolders, and which files are ready."""

    inbox: Path
    settle_s: float = 5.0
    fmt: str | None = None
    _lock: IO[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def done(self) -> Path:
        return self.inbox / "done"

    @property
    def failed(self) -> Path:
        return self.inbox / "failed"

    def __enter__(self) -> DropFolder:
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.done.mkdir(exist_ok=True)
        self.failed.mkdir(exist_ok=True)
        lock = (self.inbox / LOCK).open("ab")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise FolderBusy(f"{self.inbox} is watched by another process ({LOCK})") from None
        self._lock = lock
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            self._lock.close()  # closing releases the flock
            self._lock = None

    # --- which files -------------------------------------------------------------------
    def wanted(self, path: Path) -> bool:
        """Named like an input file (not hidden, not temporary, a known format)."""
        name = path.name
        if name.startswith((".", "_")) or name.lower().endswith(TEMP_SUFFIXES):
            return False
        return self.fmt is not None or name.lower().endswith(FORMATS)

    def ready(self, now: float | None = None) -> list[Path]:
        """Complete files, oldest first (modification time, then name)."""
        now = time.time() if now is None else now
        found: list[tuple[float, str, Path]] = []
        for entry in os.scandir(self.inbox):
            if not entry.is_file(follow_symlinks=False) or not self.wanted(Path(entry.path)):
                continue
            try:
                mtime = entry.stat().st_mtime
            except FileNotFoundError:  # renamed away between listing and stat
                continue
            if now - mtime >= self.settle_s:
                found.append((mtime, entry.name, Path(entry.path)))
        return [path for _, _, path in sorted(found)]

    # --- the restart marker --------------------------------------------------------------
    def _mark_finished(self, path: Path, records: int) -> None:
        st = path.stat()
        body = {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        tmp = self.inbox / (MARKER + ".tmp")
        with tmp.open("wb") as fh:
            fh.write(orjson.dumps(body | {"records": records}))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.inbox / MARKER)

    def _clear_marker(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.inbox / MARKER).unlink()

    def resume(self) -> Outcome | None:
        """A file delivered before a restart but not yet moved: move it now, unsent."""
        marker = self.inbox / MARKER
        try:
            body = orjson.loads(marker.read_bytes())
        except FileNotFoundError:
            return None
        except orjson.JSONDecodeError:  # torn write: the move had not happened either
            self._clear_marker()
            return None
        path = self.inbox / str(body["name"])
        outcome = None
        with contextlib.suppress(FileNotFoundError):
            st = path.stat()
            if (st.st_size, st.st_mtime_ns) == (body["size"], body["mtime_ns"]):
                moved = _move(path, self.done)
                outcome = Outcome(path.name, "resumed", int(body["records"]), moved_to=moved)
                log.info("%s: delivered before a restart; moved to done/, not re-sent", path.name)
        self._clear_marker()
        return outcome

    # --- one file ------------------------------------------------------------------------
    def take(
        self,
        path: Path,
        topic: str,
        producer: ProducerLike,
        *,
        key_field: str | None = None,
        progress: Callable[[str, int], Progress] | None = None,
    ) -> Outcome:
        """Replay one file and move it to ``done/`` or, if it cannot be read, ``failed/``.

        A delivery failure (the broker is gone) is not the file's fault: it stays where it
        is and the error propagates, so the watcher stops instead of failing every file.
        """
        started = time.monotonic()
        bar = progress(path.name, path.stat().st_size) if progress is not None else None
        seen = [0]

        def tick(records: int, done_bytes: int) -> None:
            seen[0] = records
            if bar is not None:
                bar(records, done_bytes)

        try:
            count = replay(
                [path], topic, producer, key_field=key_field, fmt=self.fmt, progress=tick
            )
        except Undelivered:
            raise
        except Exception as exc:  # unreadable file: park it with the reason, go on
            producer.flush()
            reason = f"{type(exc).__name__}: {exc}"
            moved = _move(path, self.failed)
            note = moved.with_name(moved.name + ".error")
            note.write_text(f"{reason}\n{seen[0]} record(s) were sent before the error\n")
            log.warning("%s -> failed/: %s", path.name, reason)
            took = time.monotonic() - started
            return Outcome(path.name, "failed", seen[0], took, reason, moved)
        finally:
            if bar is not None:
                bar.close()
        self._mark_finished(path, count)
        moved = _move(path, self.done)
        self._clear_marker()
        took = time.monotonic() - started
        log.info("%s: %d record(s) in %.1fs -> done/", path.name, count, took)
        return Outcome(path.name, "done", count, took, moved_to=moved)

    def watch(
        self,
        topic: str,
        producer: ProducerLike,
        *,
        key_field: str | None = None,
        interval_s: float = 2.0,
        once: bool = False,
        stop: threading.Event | None = None,
        progress: Callable[[str, int], Progress] | None = None,
    ) -> Iterator[Outcome]:
        """Take ready files until ``stop`` is set (or, with ``once``, until none is ready).

        A stop request lets the current file finish: stopping half-way would send it again.
        """
        stop = stop or threading.Event()
        resumed = self.resume()
        if resumed is not None:
            yield resumed
        while not stop.is_set():
            batch = self.ready()
            for path in batch:
                if stop.is_set():
                    break
                if not path.exists():  # taken away by someone else meanwhile
                    continue
                yield self.take(path, topic, producer, key_field=key_field, progress=progress)
            if once:
                return
            stop.wait(interval_s)


def _move(path: Path, folder: Path) -> Path:
    """Rename ``path`` into ``folder``; a name already there gets ``.1``, ``.2``, ... added."""
    target = folder / path.name
    n = 0
    while target.exists():
        n += 1
        target = folder / f"{path.name}.{n}"
    path.replace(target)
    return target
