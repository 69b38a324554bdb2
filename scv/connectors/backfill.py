"""``scv replay``: files or a watched drop folder into a raw topic, with a progress line.

The command-line side of :mod:`scv.connectors.replay` (reading and producing) and
:mod:`scv.connectors.dropfolder` (which files, and where they go afterwards): progress on
stderr, a summary per file on stdout, signals that let the current file finish.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scv.connectors.dropfolder import DropFolder, FolderBusy, Outcome
from scv.connectors.progress import Progress
from scv.connectors.replay import ProducerLike, Undelivered, replay


def _bar(args: argparse.Namespace) -> Callable[[str, int], Progress] | None:
    """A progress factory (label, total bytes) -> Progress, or None with ``--quiet``."""
    if args.quiet:
        return None
    return lambda label, total: Progress(label, total)


def replay_files(
    paths: list[Path], topic: str, producer: ProducerLike, args: argparse.Namespace
) -> int:
    """``scv replay FILE...``: every record of every file, in order."""
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"scv replay: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    make = _bar(args)
    total = sum(p.stat().st_size for p in paths)
    bar = make(f"replay -> {topic}", total) if make else None
    try:
        count = replay(
            paths, topic, producer, key_field=args.key_field, fmt=args.format, progress=bar
        )
    except (ValueError, OSError, Undelivered) as exc:
        print(f"scv replay: {exc}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    print(f"replayed {count} records into {topic}")
    return 0


def watch_folder(inbox: Path, topic: str, producer: ProducerLike, args: argparse.Namespace) -> int:
    """``scv replay --watch DIR``: until SIGINT/SIGTERM (or, with ``--once``, until idle).

    The first signal lets the current file finish (stopping half-way would send it again
    after a restart); a second one stops at once.
    """
    stop = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, request_stop)
    folder = DropFolder(inbox, settle_s=args.settle, fmt=args.format)
    failed = 0
    try:
        with folder:
            print(f"watching {inbox} -> {topic} (settle {args.settle:g}s)", flush=True)
            for outcome in folder.watch(
                topic,
                producer,
                key_field=args.key_field,
                interval_s=args.interval,
                once=args.once,
                stop=stop,
                progress=_bar(args),
            ):
                failed += outcome.status == "failed"
                print(_summary(outcome), flush=True)
    except FolderBusy as exc:
        print(f"scv replay: {exc}", file=sys.stderr)
        return 2
    except Undelivered as exc:
        print(f"scv replay: the broker did not take the records: {exc}", file=sys.stderr)
        return 1
    return 1 if failed and args.once else 0


def _summary(outcome: Outcome) -> str:
    if outcome.status == "failed":
        return f"failed  {outcome.name}: {outcome.error} -> {outcome.moved_to}"
    if outcome.status == "resumed":
        return f"done    {outcome.name}: sent before a restart, not re-sent -> {outcome.moved_to}"
    rate = outcome.records / outcome.seconds if outcome.seconds > 0 else 0.0
    return (
        f"done    {outcome.name}: {outcome.records} records in {outcome.seconds:.1f}s "
        f"({rate:,.0f}/s) -> {outcome.moved_to}"
    )
